package engine

import (
	"context"
	"sync"
	"time"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// read runs stmts, classified as reads, on a reader. isRead is false if
// a statement is not read-only after all (nothing was changed: readers are
// query_only) or could not be prepared there.
func (d *DB) read(ctx context.Context, deadline time.Time, stmts []sqlite.Statement, sink sqlite.Sink) (*ExecResult, bool, error) {
	if len(stmts) == 1 {
		return d.readOne(ctx, deadline, stmts[0], sink)
	}
	r, h, err := d.reader(ctx, deadline)
	if err != nil {
		return nil, true, err
	}
	defer d.putBack(r, h)
	// One snapshot for the whole request.
	if err := r.Internal(func() error { return r.Exec("BEGIN") }); err != nil {
		return nil, true, err
	}
	defer r.Internal(func() error { return r.Exec("COMMIT") })
	if sink != nil {
		if err := r.RunTo(ctx, stmts, sink); err != nil {
			return nil, true, err
		}
		return &ExecResult{Streamed: true}, true, nil
	}
	results, err := r.Run(ctx, stmts, nil)
	if err != nil {
		return nil, true, err
	}
	return &ExecResult{Results: results}, true, nil
}

// readOne runs one statement, classified as a read, on a reader, in the
// read transaction the reader keeps if no commit came since it began
// (keptReader). The statement prepared to see whether it only reads is
// the one that runs.
func (d *DB) readOne(ctx context.Context, deadline time.Time, st sqlite.Statement, sink sqlite.Sink) (*ExecResult, bool, error) {
	r, h, err := d.keptReader(ctx, deadline)
	if err != nil {
		return nil, true, err
	}
	defer d.putBack(r, h)
	res, ran, err := r.RunIfReadOnly(ctx, st, sink)
	if err != nil && h.kept {
		// Whatever stopped the statement (its deadline, a cancel, an
		// error), the transaction is not kept.
		d.endKept(r)
		h.kept = false
	}
	if ran {
		if err != nil {
			return nil, true, err
		}
		if sink != nil {
			return &ExecResult{Streamed: true}, true, nil
		}
		return oneResult(res), true, nil
	}
	if err != nil {
		// It does not prepare: as a write it would not either.
		return nil, true, err
	}
	d.texts.set(st.SQL, false)
	return nil, false, nil
}

// Kept read transactions. A reader's single reads run in a read
// transaction it keeps open from one read to the next for as long as the
// writer commits nothing: its snapshot is then the one a new transaction
// would take, and beginning and ending a transaction per statement costs
// SQLite its WAL read lock (the fcntl calls as the process's first reader
// takes a lock and its last lets go), about a tenth of a point select.
// version counts the writer's commits and is counted after each: a
// transaction kept since version v is used only while version is still v
// (loaded before the transaction began, so it is no older than any commit
// counted by v); otherwise it ends and a new one begins. A kept
// transaction holds back the WAL from being checkpointed past its
// snapshot: the checkpointer ends those of idle readers that a commit has
// made stale (endStaleKept), and a reader taken for anything but a single
// read (a transaction block, several statements) ends its own first.

// keptReader is reader for a single read: the reader comes with a read
// transaction open, kept or begun now (h.since says since which version).
// Not in memory mode: a memdb copy has no WAL, and a reader's open
// transaction (its shared lock) would hold off the writer's commits.
func (d *DB) keptReader(ctx context.Context, deadline time.Time) (*sqlite.Conn, held, error) {
	if d.eng.Memory {
		return d.reader(ctx, deadline)
	}
	r, h, err := d.takeReader(ctx, deadline, true)
	if err != nil {
		return nil, h, err
	}
	v := d.version.Load()
	if h.kept && h.since == v {
		return r, h, nil
	}
	// A stale transaction ends; so would one left open by anyone else
	// (BEGIN would fail in it).
	d.endKept(r)
	if err := r.Internal(func() error { return r.Exec("BEGIN") }); err != nil {
		h.kept = false
		d.putBack(r, h)
		return nil, held{}, err
	}
	h.kept, h.since = true, v
	return r, h, nil
}

// endKept ends r's kept read transaction. A read transaction changed
// nothing: ending it cannot fail in a way that leaves it open, but if it
// does, a rollback is tried too.
func (d *DB) endKept(r *sqlite.Conn) {
	if r.Autocommit() {
		return
	}
	if err := r.Internal(func() error { return r.Exec("COMMIT") }); err != nil {
		r.Internal(func() error { return r.Exec("ROLLBACK") })
	}
}

// endStaleKept ends the kept read transactions of idle readers that began
// before the writer's last commit, so that they do not hold the WAL back
// from the checkpoint that follows. Under readerMu: ending a read
// transaction takes microseconds.
func (d *DB) endStaleKept() {
	v := d.version.Load()
	d.readerMu.Lock()
	defer d.readerMu.Unlock()
	for r, since := range d.kept {
		if since != v {
			d.endKept(r)
			delete(d.kept, r)
		}
	}
}

// reader returns a reader for a single read, and its client's share of
// the readers it holds (both go back through putBack). It waits while readerSem's readers are all busy, and while the
// request's client (WithClient) holds all of them but one: a client's long
// reads leave a reader for everyone else. Waiting, and the statements run
// on the reader, end at deadline (the zero time: only when ctx is done).
func (d *DB) reader(ctx context.Context, deadline time.Time) (*sqlite.Conn, held, error) {
	return d.takeReader(ctx, deadline, false)
}

// takeReader is reader; with keep, a reader's kept read transaction is
// left open (h.since says since which version), else it is ended.
func (d *DB) takeReader(ctx context.Context, deadline time.Time, keep bool) (*sqlite.Conn, held, error) {
	if err := ctx.Err(); err != nil {
		return nil, held{}, err
	}
	leave, err := d.clientShare(ctx, deadline)
	if err != nil {
		return nil, held{}, err
	}
	if err := d.take(ctx, deadline, d.readerSem); err != nil {
		leave()
		return nil, held{}, err
	}
	r, since, kept, err := d.popReader()
	if err != nil {
		<-d.readerSem
		leave()
		return nil, held{}, err
	}
	h := held{leave: leave}
	switch {
	case kept && keep:
		h.kept, h.since = true, since
	case kept:
		d.endKept(r)
	}
	r.SetDeadline(deadline)
	return r, h, nil
}

// held is what a reader taken by reader holds: its client's share, which
// goes back with the reader (putBack; a value, not a function to call, so
// that nobody gives back the share and keeps the reader), and whether it
// keeps a read transaction, begun at version since.
type held struct {
	leave func()
	kept  bool
	since uint64
}

// putBack gives back what reader returned.
func (d *DB) putBack(r *sqlite.Conn, h held) {
	r.SetDeadline(time.Time{})
	d.readerMu.Lock()
	d.readers = append(d.readers, r)
	if h.kept {
		if d.kept == nil {
			d.kept = map[*sqlite.Conn]uint64{}
		}
		d.kept[r] = h.since
	}
	d.readerMu.Unlock()
	<-d.readerSem
	h.leave()
}

// take puts a token into sem (a semaphore of readers), waiting while it
// is full until ctx is done, deadline passes (the zero time: none) or the
// database closes. Only a wait makes a timer.
func (d *DB) take(ctx context.Context, deadline time.Time, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-d.closed:
		return tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing", d.name)
	}
}

type clientKey struct{}

// WithClient returns ctx naming the client a request comes from (its
// token), for the share of readers one client may hold.
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

// clientShares counts the readers each client holds on a database.
type clientShares struct {
	mu sync.Mutex
	// held has the clients that hold or wait for a reader, and up to
	// keepIdleShares that did: a client's next request, usually soon,
	// then makes nothing new.
	held map[string]*clientShare
	idle int // entries of held with refs 0
}

// keepIdleShares bounds the idle entries a database keeps.
const keepIdleShares = 16

type clientShare struct {
	sem  chan struct{} // one token per reader held
	refs int           // requests holding or waiting
	// leave gives back a reader and the reference: made once.
	leave func()
}

// clientShare waits until the request's client may take one more reader
// (all but one of them), takes the place and returns what gives it back.
func (d *DB) clientShare(ctx context.Context, deadline time.Time) (func(), error) {
	client, _ := ctx.Value(clientKey{}).(string)
	limit := cap(d.readerSem) - 1
	if client == "" || limit < 1 {
		return noShare, nil
	}
	cs := &d.clients
	cs.mu.Lock()
	sh := cs.held[client]
	switch {
	case sh == nil:
		if cs.held == nil {
			cs.held = map[string]*clientShare{}
		}
		sh = &clientShare{sem: make(chan struct{}, limit)}
		sh.leave = func() { <-sh.sem; cs.unref(client, sh) }
		cs.held[client] = sh
	case sh.refs == 0:
		cs.idle--
	}
	sh.refs++
	cs.mu.Unlock()
	if err := d.take(ctx, deadline, sh.sem); err != nil {
		cs.unref(client, sh)
		return nil, err
	}
	return sh.leave, nil
}

// noShare is clientShare's answer for a request that takes no share.
func noShare() {}

// unref drops a request's reference to client's share. A share nobody
// holds stays for the client's next request while there are few such.
func (cs *clientShares) unref(client string, sh *clientShare) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if sh.refs--; sh.refs > 0 {
		return
	}
	if cs.idle < keepIdleShares {
		cs.idle++
		return
	}
	delete(cs.held, client)
}

// txReader returns an idle reader, or a new one. Used alone, for a
// transaction's snapshot, it does not count against the readers that serve
// single reads (readerSem): a client may keep a transaction open for as
// long as it likes (PostgreSQL drivers that never autocommit do), and
// those must not starve everyone else's reads.
func (d *DB) txReader() (*sqlite.Conn, error) {
	r, _, kept, err := d.popReader()
	if kept {
		d.endKept(r)
	}
	return r, err
}

// popReader takes an idle reader, or opens one, and tells whether it keeps
// a read transaction, begun at version since.
func (d *DB) popReader() (r *sqlite.Conn, since uint64, kept bool, err error) {
	d.readerMu.Lock()
	if n := len(d.readers); n > 0 {
		r = d.readers[n-1]
		d.readers = d.readers[:n-1]
		if since, kept = d.kept[r]; kept {
			delete(d.kept, r)
		}
		d.readerMu.Unlock()
		return r, since, kept, nil
	}
	d.readerMu.Unlock()
	r, err = sqlite.Open(d.eng.dsn(d.name), sqlite.Options{ReadOnly: true, Tenant: true})
	return r, 0, false, err
}

// putTxReader gives back a transaction's reader: kept idle while the pool
// has room, closed otherwise.
func (d *DB) putTxReader(r *sqlite.Conn) {
	d.readerMu.Lock()
	keep := len(d.readers) < cap(d.readerSem)
	select {
	case <-d.closed:
		keep = false
	default:
	}
	if keep {
		d.readers = append(d.readers, r)
	}
	d.readerMu.Unlock()
	if !keep {
		r.Close()
	}
}
