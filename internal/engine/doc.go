// Package engine owns the SQLite copies of hasvc's databases on this node:
// per-database writer and reader connections, publishing to and applying
// from each database's JetStream stream, backups and imports, cluster
// membership and status. It knows nothing of HTTP or pgwire. SQLite itself
// (connections, the sandbox, capture and apply of row changes) is package
// sqlite; the change format is package change.
//
// # The write path
//
// A request (HTTP statements, a pgwire implicit transaction) comes in
// through DB.Exec. If every statement only reads it runs on a reader
// (readers.go) and never touches the writer. Otherwise it becomes an op
// queued to the database's writer goroutine (writer.go), which owns the
// one writer connection:
//
//  1. The writer takes every op queued (up to maxBatch) and opens one
//     SQLite transaction (BEGIN IMMEDIATE) for the group, each op in a
//     savepoint of its own.
//  2. Each op's statements run with capture on: SQLite's preupdate hook
//     records every row the op writes (triggers and foreign-key actions
//     included) as a row image, and schema statements are recorded as
//     their SQL. An op that fails rolls back to its savepoint.
//  3. The captured changes of an op become one message (package change)
//     handed to the group's commitGroup (publish.go). In strong mode each
//     message expects the stream's last sequence; without atomic batches
//     the writer waits for each acknowledgement before the next op runs,
//     with them the group's messages go out as one atomic batch at the
//     end. In eventual mode publishes are pipelined.
//  4. commitGroup.finish keeps the acknowledged messages before the first
//     one JetStream did not take, makes them durable with one fsync of the
//     stream's files when the node does group commit (Engine.Durable:
//     `--fsync always` without a cluster), rolls back to the first
//     failure's savepoint, writes the new applied sequence into
//     _hasvc_state, and commits.
//  5. Each op is answered: success only once its message is acknowledged
//     and its changes committed here; a strong-mode op another node beat
//     to the stream runs again after catch-up (commitWithRetry), up to
//     maxAttempts, then answers ECONFLICT.
//
// In a cluster, a strong-mode write request first goes to the node that
// leads the database's stream, if that is another node (forward.go): it
// runs there through the steps above and its answer comes back, so
// writes from several nodes do not race for the stream.
//
// An interactive transaction (Tx, pgwire's BEGIN..COMMIT) holds the writer
// from its first write to its end (in a cluster, the writer of the stream
// leader's node if its first statement writes: remotetx.go), and commits
// through the same commitGroup;
// an import (Import) applies its rows and commits them through it too.
// There is one commit path.
//
// The invariant: the SQLite file holds exactly the messages 1..applied of
// the stream (plus, in eventual mode, this node's own messages listed in
// _hasvc_ahead and its queued writes in _hasvc_outbox), and applied is
// stored in the same transaction as the data.
// A crash between publish and commit leaves a message beyond applied, which
// catch-up applies when the database opens again: no acknowledged write
// is lost. A power loss under an fsync interval can leave the copy ahead
// of a stream that lost its newest messages; catch-up then rebuilds the
// copy from the stream.
//
// # The apply loop
//
// While other nodes are live, each open database follows its stream
// (follow.go) with an ordered consumer from applied+1 and applies, on the
// writer, every message it does not have (stream.go): row images are
// written by rowid (or primary key for WITHOUT ROWID tables) with triggers
// and foreign keys off, schema changes run as SQL under the sandbox, and
// messages at or below applied are skipped, so delivering one twice
// changes nothing. A node alone does not follow; a read that asks for a
// sequence beyond applied catches up first.
//
// # Eventual mode: _hasvc_ahead, the outbox, last writer wins
//
// In eventual mode a node commits its own write at once even when other
// nodes' messages lie between applied and its message's sequence. Its
// sequence goes into _hasvc_ahead; when apply later reaches it, nothing of
// it is written again (it is here, with its rows' versions). A write that
// JetStream does not acknowledge in time commits here anyway and waits in
// the outbox (outbox.go) until it can be sent, exactly once and in order.
// Row changes resolve last-writer-wins by version (a hybrid logical clock
// and the node: package apply), so copies agree whatever order their
// messages reach the stream in; each row's version is in _hasvc_versions,
// and versions that lost to writes that had not seen them are in
// _hasvc_conflicts.
//
// # Stuck databases
//
// A message that cannot be applied (a schema change that fails here, a row
// for a table that does not exist) is never skipped: the database is
// marked stuck, refuses writes (EUNAVAILABLE) and keeps serving reads of
// what it has; its status and the hasvc_database_stuck metric say why.
package engine
