package engine

import (
	"context"
	"time"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Tx is an interactive transaction: statements arrive one at a time
// (pgwire's BEGIN .. COMMIT) and commit together, as one message.
//
// A transaction starts on a reader, in a read snapshot, and moves to the
// writer at its first statement that writes. It may move only if no commit
// came between the start of its snapshot and the move: then the writer's
// state is the snapshot and everything the transaction read still holds.
// Otherwise that statement fails with ECONFLICT (PostgreSQL's 40001), as in
// a serializable PostgreSQL transaction. On the writer the transaction holds
// the database's only writer: other writes on this node, and the apply of
// other nodes' messages, wait until it ends, and TxIdleTimeout bounds how
// long it may sit idle.
//
// At commit its changes go to the stream as one message; in strong mode
// with the expected last sequence of the copy it ran on. If another node's
// write came first, the transaction rolls back and Commit returns
// ECONFLICT: the client runs it again.
//
// A Tx is used by one goroutine at a time.
type Tx struct {
	d        *DB
	readOnly bool // the caller may only read

	r       *sqlite.Conn // the reader, while the transaction only reads
	version uint64       // d.version before the reader's snapshot began

	readSavepoints []string // savepoints set while the transaction only read

	reqs chan txReq    // to the writer, once the transaction writes
	done chan struct{} // closed when the writer has left the transaction
	err  error         // why the writer ended the transaction by itself

	// remote: the transaction runs on the node that leads the stream
	// (remotetx.go), not on this node's writer.
	remote *remoteTx
}

type txReq struct {
	ctx          context.Context
	st           *sqlite.Statement
	savepoint    savepointOp
	name         string
	describe     string
	describeOpts sqlite.DescribeOptions
	commit       bool
	rollback     bool
	reply        chan txReply
}

type txReply struct {
	res  *sqlite.Result
	desc *sqlite.Description
	seq  uint64
	err  error
}

// savepointOp is what a request does to a savepoint.
type savepointOp int

const (
	noSavepoint savepointOp = iota
	spCreate
	spRelease
	spRollbackTo
)

// Savepoint sets a savepoint: RollbackTo it undoes the transaction's
// changes made since, in SQLite and in the message the transaction will
// publish.
func (t *Tx) Savepoint(ctx context.Context, name string) error {
	return t.savepointReq(ctx, spCreate, name)
}

// Release forgets a savepoint and the ones set after it, keeping their
// changes. ENOTFOUND if there is no such savepoint.
func (t *Tx) Release(ctx context.Context, name string) error {
	return t.savepointReq(ctx, spRelease, name)
}

// RollbackTo undoes the changes made since a savepoint, which stays set.
// ENOTFOUND if there is no such savepoint.
func (t *Tx) RollbackTo(ctx context.Context, name string) error {
	return t.savepointReq(ctx, spRollbackTo, name)
}

func (t *Tx) savepointReq(ctx context.Context, op savepointOp, name string) error {
	if !t.Writing() {
		// The transaction has only read: a savepoint holds no changes yet,
		// so it is a name until the transaction moves to the writer.
		i := len(t.readSavepoints) - 1
		for i >= 0 && t.readSavepoints[i] != name {
			i--
		}
		switch {
		case op == spCreate:
			t.readSavepoints = append(t.readSavepoints, name)
		case i < 0:
			return tenant.Errorf(tenant.ENOTFOUND, "savepoint %q does not exist", name)
		case op == spRelease:
			t.readSavepoints = t.readSavepoints[:i]
		default:
			t.readSavepoints = t.readSavepoints[:i+1]
		}
		return nil
	}
	rep, err := t.send(ctx, txReq{savepoint: op, name: name})
	if err != nil {
		return err
	}
	return rep.err
}

// setReadSavepoints sets, at the move to the writer, the savepoints the
// transaction set while it only read.
func (t *Tx) setReadSavepoints(ctx context.Context) error {
	for _, name := range t.readSavepoints {
		rep, err := t.send(ctx, txReq{savepoint: spCreate, name: name})
		if err == nil {
			err = rep.err
		}
		if err != nil {
			return err
		}
	}
	t.readSavepoints = nil
	return nil
}

// DefaultTxIdleTimeout is how long a transaction holding the writer may wait
// for its next statement before it is rolled back.
const DefaultTxIdleTimeout = time.Minute

func (e *Engine) txIdleTimeout() time.Duration {
	if e.TxIdleTimeout > 0 {
		return e.TxIdleTimeout
	}
	return DefaultTxIdleTimeout
}

// Begin starts a transaction. With readOnly, statements that write fail
// with EFORBIDDEN. Nothing is held until the first statement.
func (d *DB) Begin(readOnly bool) *Tx {
	return &Tx{d: d, readOnly: readOnly}
}

// Writing reports whether the transaction holds the writer.
func (t *Tx) Writing() bool { return t.reqs != nil || t.remote != nil }

// Exec runs one statement in the transaction.
func (t *Tx) Exec(ctx context.Context, st sqlite.Statement) (*sqlite.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d.statementTime())
	defer cancel()
	if !t.Writing() {
		res, isRead, err := t.read(ctx, st)
		if isRead {
			return res, err
		}
		if t.readOnly {
			return nil, tenant.Errorf(tenant.EFORBIDDEN, "this token may only read; the statement writes")
		}
		if err := t.toWriter(ctx); err != nil {
			return nil, err
		}
		if err := t.setReadSavepoints(ctx); err != nil {
			return nil, err
		}
	}
	rep, err := t.send(ctx, txReq{st: &st})
	if err != nil {
		return nil, err
	}
	return rep.res, rep.err
}

// Describe describes sql as it would run in the transaction now (a table
// the transaction created is known); dry as for DB.Describe.
func (t *Tx) Describe(ctx context.Context, sql string, opts sqlite.DescribeOptions) (*sqlite.Description, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d.statementTime())
	defer cancel()
	if !t.Writing() {
		if t.r != nil {
			// Its own reader: waiting for another while holding one could
			// wait for ever.
			return t.r.Describe(ctx, sql, opts)
		}
		return t.d.Describe(ctx, sql, opts)
	}
	rep, err := t.send(ctx, txReq{describe: sql, describeOpts: opts})
	if err != nil {
		return nil, err
	}
	return rep.desc, rep.err
}

// Commit commits the transaction and returns the stream sequence of its
// message (0 if it wrote nothing).
func (t *Tx) Commit(ctx context.Context) (uint64, error) {
	if !t.Writing() {
		t.endRead()
		return 0, nil
	}
	rep, err := t.send(context.WithoutCancel(ctx), txReq{commit: true})
	if err != nil {
		return 0, err
	}
	return rep.seq, rep.err
}

// Rollback ends the transaction, discarding its changes. It is safe to call
// on a transaction that already ended.
func (t *Tx) Rollback() {
	if !t.Writing() {
		t.endRead()
		return
	}
	t.send(context.Background(), txReq{rollback: true})
}

// read runs st on the transaction's reader if st only reads. isRead is
// false if st writes (nothing ran).
func (t *Tx) read(ctx context.Context, st sqlite.Statement) (*sqlite.Result, bool, error) {
	r := t.r
	if r == nil {
		var err error
		if r, err = t.d.txReader(); err != nil {
			return nil, true, err
		}
	}
	ro, err := r.ReadOnly(ctx, st.SQL)
	if err != nil {
		err = tenant.AtStatement(err, 0)
	}
	if t.r == nil && (err != nil || !ro) {
		// Nothing was read: the transaction has no snapshot yet.
		t.d.putTxReader(r)
		return nil, err != nil, err
	}
	if err != nil {
		return nil, true, err
	}
	if !ro {
		return nil, false, nil
	}
	if t.r == nil {
		// The snapshot begins at the first read after BEGIN: the version
		// is taken before it, so a commit in between makes the check at
		// the move to the writer fail safe.
		t.version = t.d.version.Load()
		if err := r.Internal(func() error { return r.Exec("BEGIN") }); err != nil {
			t.d.putTxReader(r)
			return nil, true, err
		}
		t.r = r
	}
	results, err := r.Run(ctx, []sqlite.Statement{st}, nil)
	if err != nil {
		return nil, true, err
	}
	return &results[0], true, nil
}

// Inspect runs a read-only statement (hasvc's look at the schema: table
// columns, indexes) as the transaction sees the database now, without
// starting its snapshot: on the writer once the transaction writes, on
// its snapshot's reader if it has one, else alone on a reader.
func (t *Tx) Inspect(ctx context.Context, st sqlite.Statement) (*sqlite.Result, error) {
	switch {
	case t.Writing():
		rep, err := t.send(ctx, txReq{st: &st})
		if err != nil {
			return nil, err
		}
		return rep.res, rep.err
	case t.r != nil:
		results, err := t.r.Run(ctx, []sqlite.Statement{st}, nil)
		if err != nil {
			return nil, err
		}
		return &results[0], nil
	}
	res, err := t.d.Exec(ctx, []sqlite.Statement{st}, ExecOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	return &res.Results[0], nil
}

// endRead ends the read snapshot and gives the reader back.
func (t *Tx) endRead() {
	if t.r == nil {
		return
	}
	r := t.r
	t.r = nil
	r.Internal(func() error { return r.Exec("COMMIT") })
	t.d.putTxReader(r)
}

// toWriter moves the transaction to the writer: the writer of the node
// that leads the stream if writes go there and the transaction has not
// read (remotetx.go), else this node's.
func (t *Tx) toWriter(ctx context.Context) error {
	if node := t.d.forwardTo(ctx); node != "" && t.r == nil {
		t.toRemote(node)
		return nil
	}
	return t.toLocalWriter(ctx)
}

// toLocalWriter moves the transaction to this node's writer.
func (t *Tx) toLocalWriter(ctx context.Context) error {
	d := t.d
	hadRead := t.r != nil
	t.endRead()
	t.reqs = make(chan txReq)
	t.done = make(chan struct{})
	started := make(chan error, 1)
	o := &op{ctx: context.Background(), done: make(chan struct{}), fn: func(w *sqlite.Conn) error {
		t.serve(w, hadRead, started)
		return nil
	}}
	select {
	case d.ops <- o:
	case <-d.closed:
		t.reqs = nil
		return tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing", d.name)
	case <-ctx.Done():
		t.reqs = nil
		return ctx.Err()
	}
	// Queued: the writer will serve the transaction. If ctx ends first,
	// the caller's Rollback (or the idle timeout) ends it there.
	began := func(err error) error {
		if err != nil {
			<-t.done
			t.reqs = nil
		}
		return err
	}
	select {
	case err := <-started:
		return began(err)
	case <-d.writerDone:
		// Queued as the database closed, after the writer's last drain
		// (see submit), unless it started just before.
		select {
		case err := <-started:
			return began(err)
		default:
			t.reqs = nil
			return d.closingError()
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send hands a request to the writer and waits for its answer.
func (t *Tx) send(ctx context.Context, req txReq) (txReply, error) {
	if t.remote != nil {
		return t.sendRemote(ctx, req)
	}
	req.ctx = ctx
	req.reply = make(chan txReply, 1)
	select {
	case t.reqs <- req:
	case <-t.done:
		if req.rollback {
			return txReply{}, nil
		}
		if t.err != nil {
			return txReply{}, t.err
		}
		return txReply{}, tenant.Errorf(tenant.EINVALID, "the transaction has ended")
	case <-ctx.Done():
		return txReply{}, ctx.Err()
	}
	return <-req.reply, nil
}

// serve runs on the writer goroutine for as long as the transaction holds
// the writer.
func (t *Tx) serve(w *sqlite.Conn, hadRead bool, started chan<- error) {
	d := t.d
	defer close(t.done)
	if s := d.stuck.Load(); s != nil {
		started <- tenant.Errorf(tenant.EUNAVAILABLE, "database is stuck: %s", *s)
		return
	}
	if hadRead && d.version.Load() != t.version {
		started <- tenant.Errorf(tenant.ECONFLICT, "could not serialize access: the data this transaction read has changed since it began; retry the transaction")
		return
	}
	if err := w.Internal(func() error { return w.Exec("BEGIN IMMEDIATE") }); err != nil {
		started <- tenant.Wrap(tenant.EUNAVAILABLE, err, "cannot begin a transaction")
		return
	}
	started <- nil
	cp := w.Capture()
	cp.Reset()
	var marks []savepointMark
	idleFor := d.eng.txIdleTimeout()
	idle := time.NewTimer(idleFor)
	defer idle.Stop()
	for {
		select {
		case req := <-t.reqs:
			idle.Stop()
			switch {
			case req.st != nil:
				mark := cp.Len()
				results, err := w.Run(req.ctx, []sqlite.Statement{*req.st}, cp)
				if err != nil {
					cp.Truncate(mark)
					if w.Autocommit() {
						// SQLite rolled the whole transaction back (I/O
						// error, out of memory).
						t.forget(w)
						t.err = tenant.Wrap(tenant.EUNAVAILABLE, err, "the transaction was rolled back: "+tenant.ErrorMessage(err))
						req.reply <- txReply{err: err}
						return
					}
					req.reply <- txReply{err: err}
				} else {
					req.reply <- txReply{res: &results[0]}
				}
			case req.savepoint != noSavepoint:
				req.reply <- txReply{err: t.savepoint(w, &marks, req.savepoint, req.name)}
			case req.describe != "":
				desc, err := w.Describe(req.ctx, req.describe, req.describeOpts)
				req.reply <- txReply{desc: desc, err: err}
			case req.commit:
				seq, err := t.commit(w)
				req.reply <- txReply{seq: seq, err: err}
				return
			default:
				t.abort(w)
				req.reply <- txReply{}
				return
			}
			idle.Reset(idleFor)
		case <-idle.C:
			t.abort(w)
			t.err = tenant.Errorf(tenant.ETIMEOUT, "the transaction was idle for more than %v and was rolled back", idleFor)
			return
		case <-d.closed:
			t.abort(w)
			t.err = tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing; the transaction was rolled back", d.name)
			return
		}
	}
}

// savepointMark is a savepoint of the writer's transaction and how many
// captured changes came before it.
type savepointMark struct {
	name    string
	changes int
}

// savepoint runs a savepoint request on the writer.
func (t *Tx) savepoint(w *sqlite.Conn, marks *[]savepointMark, op savepointOp, name string) error {
	cp := w.Capture()
	sql := sqlite.QuoteIdent(name)
	if op == spCreate {
		if err := w.Internal(func() error { return w.Exec("SAVEPOINT " + sql) }); err != nil {
			return tenant.Wrap(tenant.EINTERNAL, err, "savepoint failed")
		}
		*marks = append(*marks, savepointMark{name, cp.Len()})
		return nil
	}
	i := len(*marks) - 1
	for i >= 0 && (*marks)[i].name != name {
		i--
	}
	if i < 0 {
		return tenant.Errorf(tenant.ENOTFOUND, "savepoint %q does not exist", name)
	}
	if op == spRelease {
		if err := w.Internal(func() error { return w.Exec("RELEASE " + sql) }); err != nil {
			return tenant.Wrap(tenant.EINTERNAL, err, "release failed")
		}
		*marks = (*marks)[:i]
		return nil
	}
	if err := w.Internal(func() error { return w.Exec("ROLLBACK TO " + sql) }); err != nil {
		return tenant.Wrap(tenant.EINTERNAL, err, "rollback to savepoint failed")
	}
	// The changes since the savepoint leave the message too.
	cp.Truncate((*marks)[i].changes)
	*marks = (*marks)[:i+1]
	w.RolledBack()
	return nil
}

// abort rolls the writer's transaction back.
func (t *Tx) abort(w *sqlite.Conn) {
	w.Internal(func() error { return w.Exec("ROLLBACK") })
	t.forget(w)
}

// forget resets what the writer kept about the ended transaction.
func (t *Tx) forget(w *sqlite.Conn) {
	w.RolledBack()
	w.TxDone()
	w.Capture().Reset()
}

// commit publishes the transaction's changes and commits them with the new
// applied sequence, on the one commit path (publish.go).
func (t *Tx) commit(w *sqlite.Conn) (uint64, error) {
	d := t.d
	cp := w.Capture()
	if cp.Len() == 0 {
		err := w.Internal(func() error { return w.Exec("COMMIT") })
		if err != nil {
			t.abort(w)
			return 0, tenant.Wrap(tenant.EINTERNAL, err, "commit failed")
		}
		w.TxDone()
		return 0, nil
	}
	defer cp.Reset()
	g := d.newGroup(d.strong(), false, time.Time{})
	data, ts, err := d.message(cp.Changes())
	p := &pending{ts: ts}
	if err == nil {
		err = g.add(p, data)
	}
	if err != nil {
		g.cancel()
		t.abort(w)
		return 0, err
	}
	g.finish(false)
	switch {
	case p.conflict:
		return 0, tenant.Errorf(tenant.ECONFLICT, "could not serialize access: another write was committed first; retry the transaction")
	case !p.ok:
		return 0, p.err
	}
	return p.seq, nil
}
