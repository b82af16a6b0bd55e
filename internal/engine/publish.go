package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"hasvc/internal/change"
	"hasvc/internal/tenant"
)

// This file is the one commit path. Everything that writes a database (a
// group of HTTP requests, a pgwire transaction, an import) runs its SQL in
// the writer's open transaction, then hands its message(s) to a commitGroup:
// the group publishes them, waits for JetStream's acknowledgements, rolls
// back what JetStream did not take, records the new applied sequence in the
// same SQLite transaction, commits, and catches up from the stream whenever
// the outcome left this copy behind it. See doc.go for the whole write path.

// pending is one message of the writer's open transaction on its way to the
// stream, and what became of it.
type pending struct {
	// savepoint is rolled back to if the message is not kept; "" means
	// the message is the whole transaction.
	savepoint string

	data   []byte      // the message (strong mode: while it waits for its group's atomic batch)
	header nats.Header // its headers (an idempotency key's), or nil
	ts     int64       // the message's timestamp (eventual mode: it names the write)
	expect uint64      // the sequence it must get (strong mode)
	fut    jetstream.PubAckFuture

	acked    bool   // JetStream stored it, at seq
	seq      uint64 // its stream sequence, once acked
	ok       bool   // acked and applied here (or queued): the writer may answer success
	queued   bool   // eventual mode: committed here, to the outbox, not (known to be) in the stream
	sent     bool   // queued after it went out without an answer
	conflict bool   // strong mode: another node's write took its place
	err      error  // why it is not ok
}

// commitGroup publishes the messages of the writer's open transaction and
// then finishes the transaction. It keeps this invariant: the transaction
// commits exactly the messages JetStream acknowledged before the first one
// it did not, together with the applied sequence they bring, so the SQLite
// file never holds a write the stream lacks, nor misses one it holds
// below the applied sequence.
type commitGroup struct {
	d       *DB
	strong  bool // messages expect the stream's last sequence
	batched bool // strong messages go to the stream as one atomic batch
	// queue: eventual mode with writes in the outbox: this group's
	// messages go there too, behind them, without being published.
	queue bool
	base  uint64
	next  uint64 // the sequence the next strong message expects to get

	// One deadline for the group; once passed it stays passed, so no
	// later acknowledgement is waited for either.
	deadline context.Context
	cancel   context.CancelFunc

	pubs        []*pending
	firstFailed int  // index in pubs of the first message not acknowledged, or -1
	needCatchUp bool // the stream may hold what this copy lacks
}

// newGroup starts a commit group on the writer's open transaction. With
// batched, strong-mode messages wait for finish and go to the stream as
// one atomic batch (the stream must allow them: see openDB). The group
// waits for JetStream until the publish timeout, or until, if sooner (a
// request's earlier attempts used the rest).
func (d *DB) newGroup(strong, batched bool, until time.Time) *commitGroup {
	if limit := time.Now().Add(d.eng.publishTimeout()); until.IsZero() || until.After(limit) {
		until = limit
	}
	deadline, cancel := context.WithDeadline(context.Background(), until)
	base := d.applied.Load()
	return &commitGroup{
		d: d, strong: strong, batched: strong && batched, queue: !strong && len(d.outbox) > 0,
		base: base, next: base,
		deadline: deadline, cancel: cancel,
		firstFailed: -1,
	}
}

// failed reports whether a message of the group was not acknowledged.
func (g *commitGroup) failed() bool { return g.firstFailed >= 0 }

// add publishes the message data of p. In strong mode without batches it
// waits for the acknowledgement: a request must never run on top of a
// write the stream may refuse (pipelined, a message computed on top of a
// refused one could match the expected sequence by coincidence, another
// node's message taking the refused one's place, and overwrite that
// node's write). An error means nothing was published: the caller rolls
// back what produced the message.
func (g *commitGroup) add(p *pending, data []byte) error {
	if max := g.d.eng.maxMessage(); len(data) > max {
		return tenant.Errorf(tenant.ETOOLARGE, "the transaction's changes take %d bytes, over the %d-byte message limit", len(data), max)
	}
	g.next++
	p.expect = g.next
	if g.batched || g.queue {
		p.data, p.queued = data, g.queue
		g.pubs = append(g.pubs, p)
		return nil
	}
	if !g.strong {
		p.data = data // for the outbox, if JetStream does not take it
	}
	var opts []jetstream.PublishOpt
	if g.strong {
		opts = append(opts, jetstream.WithExpectLastSequence(g.next-1))
	}
	fut, err := g.d.nats.js.PublishMsgAsync(&nats.Msg{Subject: tenant.Subject(g.d.name), Data: data, Header: p.header}, opts...)
	if err != nil && !g.strong {
		// Not sent (the connection is down, too many publications wait
		// for answers): this write and the group's next ones queue.
		g.d.log.Warn("publish failed; the write is queued", "err", err)
		g.queue, p.queued = true, true
		g.pubs = append(g.pubs, p)
		return nil
	}
	if err != nil {
		g.next--
		return publishError(err)
	}
	p.fut = fut
	g.pubs = append(g.pubs, p)
	if g.strong {
		g.awaitStrong(len(g.pubs)-1, data)
	}
	return nil
}

// resendAfter is how long a strong-mode write waits for JetStream's answer
// before it sends its message again.
const resendAfter = time.Second

// awaitStrong waits for the acknowledgement of pubs[j], whose message is
// data, and sends the message again when no answer comes: a stream leader
// that stops takes the requests it holds with it, and the new leader never
// answers them, so the write would wait out the whole publish timeout.
// While no leader is elected, the message is sent again until one is.
// Sending again is safe because every copy expects the stream to end at
// expect-1: at most one of them is stored, at expect, and the message
// found there says whether it was this write (see settle).
func (g *commitGroup) awaitStrong(j int, data []byte) {
	p := g.pubs[j]
	fut := p.fut
	resend := time.NewTimer(resendAfter)
	defer resend.Stop()
	again := func() {
		f, err := g.d.nats.js.PublishMsgAsync(&nats.Msg{Subject: tenant.Subject(g.d.name), Data: data, Header: p.header}, jetstream.WithExpectLastSequence(p.expect-1))
		if err == nil {
			fut = f
		}
		resend.Reset(resendAfter)
	}
	for !p.acked && p.err == nil {
		select {
		case ack := <-fut.Ok():
			if ack.Sequence != p.expect {
				p.err = tenant.Errorf(tenant.EINTERNAL, "stream stored the write at %d, expected %d", ack.Sequence, p.expect)
				g.needCatchUp = true
			} else {
				p.acked, p.seq = true, ack.Sequence
			}
		case err := <-fut.Err():
			switch {
			case errors.Is(err, jetstream.ErrNoStreamResponse):
				// No leader yet: try again until one is elected.
				select {
				case <-time.After(100 * time.Millisecond):
					again()
				case <-g.deadline.Done():
				}
			case tenant.ErrorCode(publishError(err)) == tenant.ECONFLICT:
				// An earlier copy may be the one stored; or the leader
				// counts writes it cannot commit (cut off from the
				// majority), and no other write is stored there either.
				if err := g.d.settle(g.deadline, p.expect, data); err != nil {
					p.err = err
					g.needCatchUp = err == errNoAck
				} else {
					p.acked, p.seq = true, p.expect
				}
			default:
				p.err = publishError(err)
			}
		case <-resend.C:
			again()
		case <-g.deadline.Done():
			p.err = errNoAck
			g.needCatchUp = true
		}
	}
	if !p.acked && g.firstFailed < 0 {
		g.firstFailed = j
	}
}

// settle decides the outcome of a message refused because the stream no
// longer ends at seq-1: if the message stored at seq is data, an earlier
// copy was stored (nil); if it is another, another node's write took the
// place (ECONFLICT). While nothing is stored at seq (a message on its way
// to the store, or a leader cut off from the majority that counts writes
// it cannot commit) it waits until the deadline (errNoAck): an isolated
// leader answers 503 after the publish timeout, not a conflict its
// clients would retry at once, for ever.
func (d *DB) settle(deadline context.Context, seq uint64, data []byte) error {
	for {
		ctx, cancel := context.WithTimeout(deadline, resendAfter)
		raw, err := d.stream.GetMsg(ctx, seq)
		cancel()
		switch {
		case err == nil && bytes.Equal(raw.Data, data):
			return nil
		case err == nil:
			return tenant.Errorf(tenant.ECONFLICT, "another write was committed first; retry")
		}
		// Not stored yet, or the leader is moving: ask again.
		select {
		case <-time.After(50 * time.Millisecond):
		case <-deadline.Done():
			return errNoAck
		}
	}
}

// await waits for the acknowledgement of pubs[j], published without an
// expected sequence (eventual mode pipelines; strong mode: awaitStrong).
func (g *commitGroup) await(j int) {
	p := g.pubs[j]
	select {
	case ack := <-p.fut.Ok():
		p.acked, p.seq = true, ack.Sequence
	case err := <-p.fut.Err():
		p.err = publishError(err)
	case <-g.deadline.Done():
		p.err = errNoAck
		g.needCatchUp = true
	}
	if !p.acked && g.firstFailed < 0 {
		g.firstFailed = j
	}
	if p.acked && g.firstFailed >= 0 {
		g.needCatchUp = true
	}
}

var errNoAck = tenant.Errorf(tenant.EUNAVAILABLE, "replication did not acknowledge the write in time; it may or may not be committed")

// errQueuedTooLong: the writes before this one could not be stored within
// the publish timeout, and this one never ran.
var errQueuedTooLong = tenant.Errorf(tenant.EUNAVAILABLE, "replication did not take the writes queued before this one within the publish timeout; this write did not run")

// finish ends the writer's transaction: it publishes an atomic batch (or
// waits for eventual mode's pipelined acknowledgements), keeps the
// acknowledged messages before the first failure, rolls back the rest,
// commits with the new applied sequence and catches up if this copy may be
// behind the stream. aborted says SQLite or the caller gave the
// transaction up: nothing of it may be published. It sets every pending's
// outcome and reports whether the transaction committed.
func (g *commitGroup) finish(aborted bool) (committed bool) {
	d, w := g.d, g.d.writer
	defer g.cancel()
	g.needCatchUp = g.needCatchUp || aborted
	if g.batched && len(g.pubs) > 0 {
		if aborted {
			for _, p := range g.pubs {
				p.err = errAborted
			}
			g.firstFailed = 0
		} else {
			// All stored, right after base, or none. Requests ran on top
			// of each other's unacknowledged writes, which is safe only
			// because of that all-or-nothing.
			d.publishGroup(g.pubs, g.base, g.deadline)
			for j, p := range g.pubs {
				if !p.acked {
					g.firstFailed = j
					if tenant.ErrorCode(p.err) != tenant.ECONFLICT {
						g.needCatchUp = true
					}
					break
				}
			}
		}
	}
	if !g.strong {
		// Eventual mode pipelines: wait for JetStream in publication
		// order (for what was published: a queued message was not).
		for j, p := range g.pubs {
			if !p.queued {
				g.await(j)
			}
		}
		if !aborted && g.failed() {
			// The stream is out of reach: the writes commit here and
			// wait in the outbox (outbox.go). Any of them may be in
			// the stream already, its answer lost.
			for _, p := range g.pubs[g.firstFailed:] {
				if !p.acked {
					p.queued, p.sent, p.err = true, true, nil
				}
			}
			g.firstFailed = -1
		}
	}

	// Under group commit the writer makes the acknowledged messages
	// durable: one fsync for the whole group, before the copy commits
	// them (a copy must never hold on disk what the stream could lose).
	var flushErr error
	if d.eng.Durable != nil && slices.ContainsFunc(g.pubs, func(p *pending) bool { return p.acked }) {
		if err := d.eng.Durable.Stream(d.cfg.Account, tenant.StreamName(d.name)); err != nil {
			d.log.Error("flush the stream to disk", "err", err)
			flushErr = tenant.Wrap(tenant.EUNAVAILABLE, err, "the write is in the log but could not be flushed to disk; its outcome after a power loss is unknown")
		}
	}

	// What the transaction commits: the acknowledged messages before the
	// first failure. In strong mode their sequences follow the applied
	// one; in eventual mode other nodes' messages may lie between, and the
	// sequences beyond the contiguous run are remembered as applied
	// locally ahead of the stream.
	kept := g.pubs
	if g.failed() {
		kept = g.pubs[:g.firstFailed]
	}
	applied := g.base
	var ahead []uint64
	var queued []*pending
	for _, p := range kept {
		if p.queued {
			queued = append(queued, p)
			continue
		}
		if p.seq == applied+1 && len(ahead) == 0 {
			applied = p.seq
		} else {
			ahead = append(ahead, p.seq)
		}
	}
	if !w.Autocommit() {
		var err error
		if g.failed() {
			if sp := g.pubs[g.firstFailed].savepoint; sp != "" {
				err = w.Internal(func() error { return w.Exec("ROLLBACK TO " + sp) })
			} else {
				err = errRolledBack
			}
		}
		if err == nil {
			err = d.commitApplied(applied, ahead, kept, queued)
		}
		if err != nil {
			if err != errRolledBack {
				d.log.Error("commit failed", "err", err)
			}
			w.Internal(func() error { return w.Exec("ROLLBACK") })
			g.needCatchUp = true
		} else {
			committed = true
		}
	}
	if committed && len(queued) > 0 {
		if err := d.syncQueued(); err != nil {
			d.log.Error("flush queued writes to disk", "err", err)
			flushErr = tenant.Wrap(tenant.EUNAVAILABLE, err, "the write is committed on this node but could not be flushed to disk; its outcome after a power loss is unknown")
		}
	}
	g.needCatchUp = g.needCatchUp || g.failed()
	if g.needCatchUp {
		w.RolledBack() // before TxDone: it decides what to forget
	}
	w.TxDone()
	if g.needCatchUp {
		// JetStream is the truth: apply whatever it holds beyond what
		// this copy committed (another node's writes, acknowledged
		// writes after a failure, writes whose acknowledgement was lost).
		// The requests wait for it, so it gets what is left of their
		// publish timeout (a request is bounded by one deadline as a
		// whole), or a moment if nothing is; the apply loop, a strong
		// write's conflict or a read's min_seq brings the rest.
		budget := catchUpFloor
		if until, ok := g.deadline.Deadline(); ok {
			budget = max(budget, time.Until(until))
		}
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		if err := d.catchUp(ctx); err != nil {
			d.log.Error("catch-up after a failed publish", "err", err)
		}
	}
	// What /readyz reports (health.go): a group with an acknowledged
	// message shows JetStream takes this node's writes.
	switch {
	case slices.ContainsFunc(g.pubs, func(p *pending) bool { return p.acked }):
		d.eng.health.ok()
	case slices.ContainsFunc(g.pubs, func(p *pending) bool {
		return tenant.ErrorCode(p.err) == tenant.EUNAVAILABLE && p.err != errAborted
	}):
		d.eng.health.failed(d.eng.now())
	}
	now := d.applied.Load()
	for _, p := range g.pubs {
		switch {
		case p.queued && committed && flushErr != nil:
			p.err = flushErr
		case p.queued && committed:
			p.ok = true
			d.eng.counters.writes.Add(1)
			d.eng.counters.queued.Add(1)
		case p.queued:
			p.err = tenant.Errorf(tenant.EUNAVAILABLE, "the stream is out of reach and the write could not be committed here; retry")
		case p.acked && flushErr != nil:
			p.err = flushErr
		case p.acked && (p.seq <= now || (committed && d.ahead[p.seq])):
			p.ok, p.err = true, nil
			d.eng.counters.writes.Add(1)
		case p.acked:
			p.err = tenant.Errorf(tenant.EUNAVAILABLE, "write is in the log at sequence %d but not yet applied on this node", p.seq)
		case g.strong && tenant.ErrorCode(p.err) == tenant.ECONFLICT:
			p.conflict = true
			d.eng.counters.conflicts.Add(1)
			// Another node wrote: the stream's leader may have moved.
			d.leaderStale()
		}
	}
	return committed
}

// catchUpFloor is the least time a commit's catch-up gets after its
// requests' deadline has passed.
const catchUpFloor = 250 * time.Millisecond

var (
	errAborted    = tenant.Errorf(tenant.EUNAVAILABLE, "transaction aborted by an earlier request; retry")
	errRolledBack = errors.New("the whole transaction is rolled back")
)

// message encodes a transaction's changes as its stream message, and
// returns its timestamp: later than any this node gave the database's
// messages before or applied from other nodes (a hybrid logical clock),
// so that it names the write (outbox.go) and, in eventual mode, its
// version wins over every version this copy holds. In eventual mode the
// rows' versions are recorded in the writer's open transaction (Stamp).
func (d *DB) message(changes []change.Change) (data []byte, ts int64, err error) {
	ts = max(d.eng.now().UnixNano(), d.lastTS+1)
	msg := change.Message{Node: d.eng.Node, Changes: changes, Timestamp: ts, LWW: !d.strong()}
	if msg.LWW {
		if err := d.writer.Stamp(changes, change.Version{Timestamp: ts, Node: d.eng.Node}); err != nil {
			return nil, 0, err
		}
	}
	d.lastTS = ts
	return msg.AppendJSON(make([]byte, 0, 512)), ts, nil
}

// publishGroup publishes the messages of pubs as one JetStream atomic batch
// that JetStream stores only if the stream still ends at sequence last,
// and marks each acknowledged (with its sequence) or failed. Like
// awaitStrong, it sends the batch again (under a new batch id) when no
// answer comes or no leader is elected: at most one copy is stored, right
// after last, and the first message found there says which.
func (d *DB) publishGroup(pubs []*pending, last uint64, deadline context.Context) {
	fail := func(err error) {
		for _, p := range pubs {
			p.err = err
		}
	}
	var reply *nats.Msg
	for reply == nil {
		try, cancel := context.WithTimeout(deadline, resendAfter)
		var err error
		reply, err = d.sendBatch(pubs, last, try)
		cancel()
		switch {
		case err == nil:
		case deadline.Err() != nil:
			fail(errNoAck)
			return
		case errors.Is(err, nats.ErrNoResponders):
			select {
			case <-time.After(100 * time.Millisecond):
			case <-deadline.Done():
			}
		case try.Err() != nil || errors.Is(err, nats.ErrTimeout):
			// No answer: the leader may have gone with the request.
		default:
			fail(publishError(err))
			return
		}
		if reply == nil {
			continue
		}
		var ack struct {
			Error *jetstream.APIError `json:"error"`
			Seq   uint64              `json:"seq"`
			Count int                 `json:"count"`
		}
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			fail(tenant.Wrap(tenant.EUNAVAILABLE, err, "replication sent an unreadable acknowledgement"))
			return
		}
		if ack.Error != nil {
			err := publishError(ack.Error)
			if tenant.ErrorCode(err) == tenant.ECONFLICT {
				// An earlier copy may be the one stored, or the place
				// may be taken by nothing yet (see awaitStrong).
				err = d.settle(deadline, last+1, pubs[0].data)
			}
			if err != nil {
				fail(err)
				return
			}
		} else if ack.Count != len(pubs) || ack.Seq != last+uint64(len(pubs)) {
			fail(tenant.Errorf(tenant.EINTERNAL, "stream stored the group of %d at %d (%d messages), expected it after %d", len(pubs), ack.Seq, ack.Count, last))
			return
		}
	}
	for j, p := range pubs {
		p.acked, p.seq, p.data = true, last+uint64(j)+1, nil
	}
}

// sendBatch sends pubs as one atomic batch expecting the stream to end at
// last, and waits for the answer until ctx ends.
func (d *DB) sendBatch(pubs []*pending, last uint64, ctx context.Context) (*nats.Msg, error) {
	id := nuid.Next()
	subject := tenant.Subject(d.name)
	for i, p := range pubs {
		m := nats.NewMsg(subject)
		m.Data = p.data
		for k, v := range p.header {
			m.Header[k] = v
		}
		m.Header.Set(batchIDHeader, id)
		m.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
		if i == 0 {
			m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(last, 10))
		}
		if i < len(pubs)-1 {
			if err := d.nats.nc.PublishMsg(m); err != nil {
				return nil, err
			}
			continue
		}
		m.Header.Set(batchCommitHeader, "1")
		return d.nats.nc.RequestMsgWithContext(ctx, m)
	}
	return nil, errors.New("empty batch")
}

// Headers of JetStream atomic batch publishing.
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// commitApplied stores, in the writer's open transaction, the new applied
// sequence, this node's own sequences committed ahead of it, the queued
// messages (the outbox) and the sequences of kept messages with an
// idempotency key, commits, and then brings the in-memory state along. On
// error the transaction is still open: the caller rolls it back.
func (d *DB) commitApplied(applied uint64, ahead []uint64, kept, queued []*pending) error {
	w := d.writer
	err := w.Internal(func() error {
		for _, p := range kept {
			// Strong mode recorded each key at its message's sequence
			// already (keepRequest); a queued write's key says so
			// (queuedSeq) until its sequence is known.
			if key := p.header.Get(requestKeyHeader); key != "" && !d.strong() {
				seq := int64(p.seq)
				if p.queued {
					seq = queuedSeq
				}
				if err := w.Exec("UPDATE _hasvc_requests SET seq = ? WHERE key = ?", seq, key); err != nil {
					return err
				}
			}
		}
		if err := d.enqueue(queued); err != nil {
			return err
		}
		if err := d.insertAhead(ahead); err != nil {
			return err
		}
		if err := w.Exec("UPDATE _hasvc_state SET applied_seq = ?", int64(applied)); err != nil {
			return err
		}
		return w.Exec("COMMIT")
	})
	if err != nil {
		return err
	}
	d.version.Add(1)
	d.noteAhead(ahead)
	d.setApplied(applied)
	d.queuedCommitted(queued)
	return nil
}

// insertAhead records, in the writer's open transaction, sequences of
// this node's own messages committed here beyond the applied sequence
// (_hasvc_ahead); noteAhead brings the in-memory set along once the
// transaction committed.
func (d *DB) insertAhead(seqs []uint64) error {
	w := d.writer
	for _, seq := range seqs {
		if err := w.Exec("INSERT OR IGNORE INTO _hasvc_ahead (seq) VALUES (?)", int64(seq)); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) noteAhead(seqs []uint64) {
	for _, seq := range seqs {
		d.ahead[seq] = true
		if seq > d.lastAhead.Load() {
			d.lastAhead.Store(seq)
		}
	}
}

// publishError maps a failed publish to a tenant error. JetStream's own
// text stays in the cause (logged), not in the user's message.
func publishError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return tenant.Wrap(tenant.ECONFLICT, err, "another write was committed first; retry")
		}
	}
	return tenant.Wrap(tenant.EUNAVAILABLE, err, "replication unavailable")
}
