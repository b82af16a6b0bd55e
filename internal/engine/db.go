package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// DB is one database open on this node: one writer connection owned by a
// goroutine that commits write requests in groups, and a pool of read-only
// readers.
//
// The invariant the writer keeps: the SQLite file holds exactly the
// messages 1..applied of the database's stream, and applied is stored in
// _hasvc_state in the same transaction as the data. A write is published
// to the stream before the local commit, and its client is answered after
// the commit; a crash in between leaves a message beyond applied, which
// catch-up applies at the next open.
type DB struct {
	name   string
	cfg    tenant.Config
	eng    *Engine
	log    *slog.Logger
	stream jetstream.Stream
	nats   *natsAccount // of the stream's account

	writer *sqlite.Conn
	ops    chan *op

	readerMu sync.Mutex
	readers  []*sqlite.Conn // idle readers
	// kept has the idle readers that keep a read transaction open, and
	// the version it began at (readers.go).
	kept      map[*sqlite.Conn]uint64
	readerSem chan struct{}
	clients   clientShares // readers held by each client (readers.go)

	// texts remembers which SQL texts only read and which write
	// (classify.go); classifier prepares the others.
	texts        *sqlTexts
	classifierMu sync.Mutex
	classifier   *sqlite.Conn
	// classifierSaw is version when the classifier last followed the
	// schema (withClassifier).
	classifierSaw uint64

	applied atomic.Uint64
	// leader is the node that leads the stream, as last asked (forward.go);
	// leaderAsking is set while a refresh runs.
	leader       atomic.Pointer[leader]
	leaderAsking atomic.Bool
	stuck        atomic.Pointer[string] // why the database cannot apply its stream, if it cannot

	// writerDone is closed when the writer goroutine (loop) has returned.
	writerDone chan struct{}

	// snapMu makes this node take one snapshot of the database at a time.
	snapMu sync.Mutex
	// rebuilding is set once this copy is to be rebuilt from a snapshot
	// (rebuildLater).
	rebuilding atomic.Bool

	// appliedMu guards appliedCh, closed and replaced whenever applied
	// advances, for readers waiting for a sequence.
	appliedMu sync.Mutex
	appliedCh chan struct{}

	// ahead holds the sequences of this node's own eventual-mode writes
	// that are committed here beyond the applied sequence (other nodes'
	// messages came between). Apply replays their rows in stream order
	// but not their schema changes, which already ran. Writer only.
	ahead map[uint64]bool
	// lastAhead is the highest sequence ever put in ahead: the apply loop
	// reads it (see followFrom) to tell a consumer that delivers nothing.
	lastAhead atomic.Uint64

	// outbox holds the message timestamps of this node's eventual-mode
	// writes committed here but not yet known to be in the stream
	// (_hasvc_outbox, outbox.go); queued is its size, for status and
	// metrics; publishing is set while a goroutine sends them. lastTS is
	// the newest message timestamp given out: each of this node's
	// messages gets a later one, so a timestamp names one write. Writer
	// only, but queued and publishing.
	outbox     map[int64]bool
	queued     atomic.Int64
	publishing atomic.Bool
	lastTS     int64
	// stalledSince is when the outbox last made progress (became
	// non-empty, or sent a message), unix nanos; 0 while it is empty.
	stalledSince atomic.Int64

	// atomic: the stream takes atomic batches, so a strong-mode group is
	// published in one round trip.
	atomic bool

	// version counts the writer's commits (requests, applied messages,
	// transactions). A transaction that read on a reader may go on writing
	// on the writer only if no commit came between.
	version atomic.Uint64

	// maxStatementTime is the database's max_statement_time (0: the
	// node's); it changes with PATCH /databases/<name>.
	maxStatementTime atomic.Int64

	lag       lagWindow   // replication lag of messages from other nodes
	following atomic.Bool // the apply loop is consuming the stream

	// closed is closed, and ctx cancelled, when the database closes: the
	// writer, the apply loop and the checkpointer (owned by wg) stop.
	closed chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// keyedWrites counts the writer's requests with an idempotency key:
	// every 64th deletes the keys past their day. Writer goroutine only.
	keyedWrites int
}

// ExecResult is the outcome of a request: one result per statement, and
// the stream sequence the request committed at (0 if it wrote nothing).
type ExecResult struct {
	Results []sqlite.Result
	Seq     uint64
	// Queued: an eventual-mode write committed on this node while the
	// stream was out of reach (or behind such a write); it goes to the
	// stream, and gets its sequence, once the stream can be reached.
	Queued bool
	// Streamed: the results went to ExecOptions.Sink, not into Results.
	Streamed bool
	// Replayed: the request's idempotency key had committed already;
	// these are that commit's results and sequence (idempotency.go).
	Replayed bool
	one      [1]sqlite.Result // Results of a single statement: see oneResult
}

// oneResult is the result of a single statement: one allocation, not two
// (a point read is the commonest request there is).
func oneResult(res sqlite.Result) *ExecResult {
	er := &ExecResult{one: [1]sqlite.Result{res}}
	er.Results = er.one[:]
	return er
}

// ExecOptions qualifies a request.
type ExecOptions struct {
	// ReadOnly: the caller may only read; a request that would write
	// fails with EFORBIDDEN.
	ReadOnly bool
	// MinSeq: run only once this node has applied at least this stream
	// sequence (read-your-writes across nodes).
	MinSeq uint64
	// Strong: run only once this node has applied every write the stream
	// held when the request arrived.
	Strong bool
	// Wait bounds the wait for MinSeq or Strong (default 5s); past it the
	// request fails with ETIMEOUT.
	Wait time.Duration
	// Sink, if set, receives the results of a request that only reads as
	// they are produced, while the reader is held (ExecResult.Streamed).
	// A request that writes returns its results once committed, as
	// without a sink.
	Sink sqlite.Sink
	// Key is the request's idempotency key ("": none), for a write: a
	// request with a key that committed already is not run again, and
	// gets that commit's answer (idempotency.go).
	Key string

	// forwarded: another node sent this write here (forward.go); it runs
	// here whoever leads the stream now.
	forwarded bool
}

// Exec runs a request as one transaction. Requests whose statements are all
// read-only run on a reader and publish nothing; others go to the writer.
func (d *DB) Exec(ctx context.Context, stmts []sqlite.Statement, opts ExecOptions) (*ExecResult, error) {
	if len(stmts) == 0 {
		return nil, tenant.Errorf(tenant.EINVALID, "no statements")
	}
	if opts.MinSeq > 0 || opts.Strong {
		if err := d.waitFor(ctx, opts); err != nil {
			return nil, err
		}
	}
	// A read carries its deadline to the reader (readers.go) rather than
	// in a context: no timer per query. A write's context has it.
	deadline := time.Now().Add(d.statementTime())
	readOnly := opts.ReadOnly
	isRead, err := d.classify(ctx, stmts)
	if err != nil && readOnly {
		return nil, err
	}
	if isRead {
		res, isRead, err := d.read(ctx, deadline, stmts, opts.Sink)
		if isRead || (readOnly && err != nil) {
			return res, err
		}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if readOnly {
		return nil, tenant.Errorf(tenant.EFORBIDDEN, "this token may only read; the request writes")
	}
	if !opts.forwarded {
		if res, err, done := d.tryForward(ctx, stmts, opts.Key); done {
			return res, err
		}
	}
	o := &op{ctx: ctx, stmts: stmts, key: opts.Key, done: make(chan struct{}), arrived: time.Now()}
	if err := d.submit(ctx, o); err != nil {
		return nil, err
	}
	if o.err != nil {
		if tenant.ErrorCode(o.err) == tenant.ECONFLICT && !opts.forwarded {
			// Lost every race: nothing of it committed. If another node
			// leads the stream now, it runs the request there.
			if res, err, done := d.tryForward(ctx, stmts, opts.Key); done {
				return res, err
			}
		}
		return nil, o.err
	}
	return &o.res, nil
}

// statementTime is how long a request or statement may run here: the
// database's max_statement_time, else the node's.
func (d *DB) statementTime() time.Duration {
	if t := time.Duration(d.maxStatementTime.Load()); t > 0 {
		return t
	}
	if d.eng.MaxStatementTime > 0 {
		return d.eng.MaxStatementTime
	}
	return DefaultMaxStatementTime
}

// waitFor waits until this copy has applied what opts ask for.
func (d *DB) waitFor(ctx context.Context, opts ExecOptions) error {
	wait := opts.Wait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	target := opts.MinSeq
	if opts.Strong {
		last, err := d.LastSeq(ctx)
		if err != nil {
			return err
		}
		target = max(target, last)
	}
	return d.WaitApplied(ctx, target)
}

// Applied returns the last stream sequence this copy has applied.
func (d *DB) Applied() uint64 { return d.applied.Load() }

// setApplied records a new applied sequence and wakes its waiters.
func (d *DB) setApplied(seq uint64) {
	d.appliedMu.Lock()
	if seq > d.applied.Load() || d.appliedCh == nil {
		d.applied.Store(seq)
		if d.appliedCh != nil {
			close(d.appliedCh)
		}
		d.appliedCh = make(chan struct{})
	}
	d.appliedMu.Unlock()
}

// WaitApplied waits until this copy has applied sequence seq. It returns
// ETIMEOUT if ctx ends first.
func (d *DB) WaitApplied(ctx context.Context, seq uint64) error {
	if seq > d.applied.Load() && !d.following.Load() {
		// Nobody applies what other nodes wrote while this node thinks
		// it is alone: catch up now.
		if err := d.do(ctx, func(*sqlite.Conn) error { return d.catchUp(ctx) }); err != nil {
			d.log.Warn("catch-up for a read", "err", err)
		}
	}
	for {
		d.appliedMu.Lock()
		ch := d.appliedCh
		d.appliedMu.Unlock()
		if d.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-d.closed:
			return d.closingError()
		case <-ctx.Done():
			return tenant.Errorf(tenant.ETIMEOUT, "this node has applied sequence %d, not yet %d", d.applied.Load(), seq)
		}
	}
}

// LastSeq returns the stream's last sequence, as JetStream knows it now.
func (d *DB) LastSeq(ctx context.Context) (uint64, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return 0, tenant.Wrap(tenant.EUNAVAILABLE, err, "stream unavailable: "+err.Error())
	}
	return info.State.LastSeq, nil
}

// Name returns the database's name.
func (d *DB) Name() string { return d.name }

// close stops the writer and closes every connection.
func (d *DB) close() error {
	close(d.closed)
	d.cancel()
	d.wg.Wait()
	if d.eng.Durable != nil {
		d.eng.Durable.Release(d.cfg.Account, tenant.StreamName(d.name)) // its writer is gone
	}
	var first error
	d.readerMu.Lock()
	for _, r := range d.readers {
		if err := r.Close(); err != nil && first == nil {
			first = err
		}
	}
	d.readers, d.kept = nil, nil
	d.readerMu.Unlock()
	d.classifierMu.Lock()
	if d.classifier != nil {
		if err := d.classifier.Close(); err != nil && first == nil {
			first = err
		}
		d.classifier = nil
	}
	d.classifierMu.Unlock()
	if err := d.writer.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// CreatedAt returns when the database was created: tokens issued before
// were for an earlier database of that name.
func (d *DB) CreatedAt() time.Time { return d.cfg.CreatedAt }
