package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"hasvc/internal/change"
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

	writer *conn
	ops    chan *op

	readerMu  sync.Mutex
	readers   []*conn // idle readers
	readerSem chan struct{}

	// writes remembers SQL texts that are not read-only, so requests
	// starting with them go to the writer without a try on a reader.
	writes sync.Map

	applied atomic.Uint64
	stuck   atomic.Pointer[string] // why the database cannot apply its stream, if it cannot

	// appliedMu guards appliedCh, closed and replaced whenever applied
	// advances, for readers waiting for a sequence.
	appliedMu sync.Mutex
	appliedCh chan struct{}

	// ahead holds the sequences of this node's own eventual-mode writes
	// that are committed here beyond the applied sequence (other nodes'
	// messages came between). Apply replays their rows in stream order
	// but not their schema changes, which already ran. Writer only.
	ahead map[uint64]bool

	// atomic: the stream takes atomic batches, so a strong-mode group is
	// published in one round trip.
	atomic bool

	// version counts the writer's commits (requests, applied messages,
	// transactions). A transaction that read on a reader may go on writing
	// on the writer only if no commit came between.
	version atomic.Uint64

	lag       lagWindow   // replication lag of messages from other nodes
	following atomic.Bool // the apply loop is consuming the stream

	closed chan struct{}
	wg     sync.WaitGroup
}

// ExecResult is the outcome of a request: one result per statement, and
// the stream sequence the request committed at (0 if it wrote nothing).
type ExecResult struct {
	Results []Result
	Seq     uint64
}

// op is a unit of work for the writer goroutine: a tenant request, or (fn
// non-nil) an operation of hasvc's own that needs the writer alone.
type op struct {
	ctx   context.Context
	stmts []Statement
	fn    func(*conn) error
	done  chan struct{}

	res ExecResult
	err error

	fut       jetstream.PubAckFuture
	data      []byte // the message, while it waits for its group's atomic batch
	expect    uint64 // sequence the message must get
	acked     bool
	savepoint string
}

const maxBatch = 128

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
}

// Exec runs a request as one transaction. Requests whose statements are all
// read-only run on a reader and publish nothing; others go to the writer.
func (d *DB) Exec(ctx context.Context, stmts []Statement, opts ExecOptions) (*ExecResult, error) {
	if len(stmts) == 0 {
		return nil, tenant.Errorf(tenant.EINVALID, "no statements")
	}
	if opts.MinSeq > 0 || opts.Strong {
		if err := d.waitFor(ctx, opts); err != nil {
			return nil, err
		}
	}
	readOnly := opts.ReadOnly
	if _, known := d.writes.Load(stmts[0].SQL); !known {
		res, isRead, err := d.read(ctx, stmts)
		if isRead || (readOnly && err != nil) {
			return res, err
		}
	}
	if readOnly {
		return nil, tenant.Errorf(tenant.EFORBIDDEN, "this token may only read; the request writes")
	}
	o := &op{ctx: ctx, stmts: stmts, done: make(chan struct{})}
	if err := d.submit(ctx, o); err != nil {
		return nil, err
	}
	if o.err != nil {
		return nil, o.err
	}
	return &o.res, nil
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

// do runs fn on the writer, alone.
func (d *DB) do(ctx context.Context, fn func(*conn) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan struct{})}
	if err := d.submit(ctx, o); err != nil {
		return err
	}
	return o.err
}

func (d *DB) submit(ctx context.Context, o *op) error {
	select {
	case d.ops <- o:
	case <-d.closed:
		return tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing", d.name)
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the op always completes: the writer answers every op it
	// takes, and a cancelled context only makes it fail faster.
	<-o.done
	return nil
}

// read tries stmts on a reader. isRead is false if a statement is not
// read-only (nothing was changed: readers are query_only) or could not be
// prepared there.
func (d *DB) read(ctx context.Context, stmts []Statement) (*ExecResult, bool, error) {
	r, err := d.reader(ctx)
	if err != nil {
		return nil, true, err
	}
	defer d.putReader(r)
	if len(stmts) == 1 {
		// One statement: the statement prepared to see whether it only
		// reads is the one that runs.
		s, used, err := r.prepare(stmts[0].SQL, 0)
		if err != nil {
			return nil, false, tenant.AtStatement(r.sqlError(ctx, err), 0)
		}
		if s != nil && used == len(stmts[0].SQL) && s.readonly() {
			stop := r.watch(ctx)
			results := make([]Result, 1)
			size := 0
			err := r.step(ctx, s, stmts[0].Params, &results[0], nil, &size)
			r.release(s)
			stop()
			if err != nil {
				return nil, true, tenant.AtStatement(err, 0)
			}
			return &ExecResult{Results: results}, true, nil
		}
		if s != nil {
			r.release(s)
		}
	}
	for i := range stmts {
		s, used, err := r.prepare(stmts[i].SQL, 0)
		if err != nil {
			return nil, false, tenant.AtStatement(r.sqlError(ctx, err), i)
		}
		if s == nil {
			continue
		}
		ro := s.readonly() && used == len(stmts[i].SQL)
		r.release(s)
		if !ro {
			if i == 0 {
				d.writes.Store(stmts[0].SQL, true)
			}
			return nil, false, nil
		}
	}
	multi := len(stmts) > 1
	if multi {
		// One snapshot for the whole request.
		if err := r.internal(func() error { return r.exec("BEGIN") }); err != nil {
			return nil, true, err
		}
		defer r.internal(func() error { return r.exec("COMMIT") })
	}
	results, err := r.run(ctx, stmts, nil)
	if err != nil {
		return nil, true, err
	}
	return &ExecResult{Results: results}, true, nil
}

// reader returns a reader for a single read, waiting while readerSem's
// readers are all busy.
func (d *DB) reader(ctx context.Context) (*conn, error) {
	select {
	case d.readerSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.closed:
		return nil, tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing", d.name)
	}
	r, err := d.txReader()
	if err != nil {
		<-d.readerSem
	}
	return r, err
}

// txReader returns an idle reader, or a new one. Used alone, for a
// transaction's snapshot, it does not count against the readers that serve
// single reads (readerSem): a client may keep a transaction open for as
// long as it likes (PostgreSQL drivers that never autocommit do), and
// those must not starve everyone else's reads.
func (d *DB) txReader() (*conn, error) {
	d.readerMu.Lock()
	if n := len(d.readers); n > 0 {
		r := d.readers[n-1]
		d.readers = d.readers[:n-1]
		d.readerMu.Unlock()
		return r, nil
	}
	d.readerMu.Unlock()
	r, err := openConn(d.eng.dsn(d.name), true)
	if err != nil {
		return nil, err
	}
	r.tenant = true
	return r, nil
}

// putTxReader gives back a transaction's reader: kept idle while the pool
// has room, closed otherwise.
func (d *DB) putTxReader(r *conn) {
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
		r.close()
	}
}

func (d *DB) putReader(r *conn) {
	d.readerMu.Lock()
	d.readers = append(d.readers, r)
	d.readerMu.Unlock()
	<-d.readerSem
}

// loop is the writer goroutine.
func (d *DB) loop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.closed:
			d.failPending()
			return
		case o := <-d.ops:
			if o.fn != nil {
				o.err = o.fn(d.writer)
				close(o.done)
				continue
			}
			batch := []*op{o}
			var next *op
		fill:
			for len(batch) < maxBatch {
				select {
				case o2 := <-d.ops:
					if o2.fn != nil {
						next = o2
						break fill
					}
					batch = append(batch, o2)
				default:
					break fill
				}
			}
			d.commitWithRetry(batch)
			if next != nil {
				next.err = next.fn(d.writer)
				close(next.done)
			}
		}
	}
}

// Strong mode runs a request that lost the race to the stream up to this
// many times, backing off exponentially (with jitter, up to maxBackoff)
// between tries, before it answers ECONFLICT.
const (
	maxAttempts = 16
	maxBackoff  = 50 * time.Millisecond
)

// commitWithRetry commits batch, then runs again (after catching up) the
// requests that another node's write beat to the stream.
func (d *DB) commitWithRetry(batch []*op) {
	for attempt := 1; len(batch) > 0; attempt++ {
		retry := d.commit(batch)
		for _, o := range batch {
			if !slices.Contains(retry, o) {
				close(o.done)
			}
		}
		if attempt >= maxAttempts {
			for _, o := range retry {
				close(o.done) // with its ECONFLICT
			}
			return
		}
		if len(retry) > 0 && attempt > 1 {
			// The first retry runs at once on the caught-up copy; later
			// ones back off, so nodes that keep colliding spread out.
			b := min(maxBackoff, time.Millisecond<<min(attempt-1, 10))
			time.Sleep(b/2 + time.Duration(rand.Int64N(int64(b))))
		}
		batch = retry
	}
}

func (d *DB) failPending() {
	for {
		select {
		case o := <-d.ops:
			o.err = tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing", d.name)
			close(o.done)
		default:
			return
		}
	}
}

// commit runs a group of write requests in one SQLite transaction, each in
// a savepoint of its own, and publishes one message per request that
// changed something. In strong mode each message expects the sequence
// before it and is acknowledged before the next request runs; in eventual
// mode publishes are pipelined and awaited together. It rolls back to the
// first request JetStream did not acknowledge, records the new applied
// sequence and commits. Every acknowledged request is answered with
// success only once its changes are committed here. It returns the
// requests to run again: in strong mode, those that lost to another node's
// write.
func (d *DB) commit(batch []*op) (retry []*op) {
	w := d.writer
	for _, o := range batch {
		o.err, o.fut, o.data, o.acked, o.res = nil, nil, nil, false, ExecResult{}
	}
	if s := d.stuck.Load(); s != nil {
		for _, o := range batch {
			o.err = tenant.Errorf(tenant.EUNAVAILABLE, "database is stuck: %s", *s)
		}
		return nil
	}
	if err := w.internal(func() error { return w.exec("BEGIN IMMEDIATE") }); err != nil {
		for _, o := range batch {
			o.err = tenant.Wrap(tenant.EUNAVAILABLE, err, "cannot begin a transaction")
		}
		return nil
	}
	strong := d.cfg.Mode != tenant.ModeEventual
	batched := strong && d.atomic && len(batch) > 1
	base := d.applied.Load()
	next := base
	var published []*op
	aborted := false
	// One deadline for the batch; once passed it stays passed, so no later
	// acknowledgement is waited for either.
	deadline, cancelDeadline := context.WithTimeout(context.Background(), d.eng.publishTimeout())
	defer cancelDeadline()
	firstFailed := -1 // index in published
	needCatchUp := false
	await := func(j int, o *op) {
		select {
		case ack := <-o.fut.Ok():
			if strong && ack.Sequence != o.expect {
				o.err = tenant.Errorf(tenant.EINTERNAL, "stream stored the write at %d, expected %d", ack.Sequence, o.expect)
				needCatchUp = true
			} else {
				o.acked = true
				o.res.Seq = ack.Sequence
			}
		case err := <-o.fut.Err():
			o.err = publishError(err)
		case <-deadline.Done():
			o.err = tenant.Errorf(tenant.EUNAVAILABLE, "replication did not acknowledge the write in time; it may or may not be committed")
			needCatchUp = true
		}
		if !o.acked && firstFailed < 0 {
			firstFailed = j
		}
		if o.acked && firstFailed >= 0 {
			needCatchUp = true
		}
	}
	for i, o := range batch {
		if aborted {
			o.err = tenant.Errorf(tenant.EUNAVAILABLE, "transaction aborted by an earlier request; retry")
			continue
		}
		if strong && firstFailed >= 0 {
			// The stream moved on without this copy: run the rest of
			// the group again after catching up.
			o.err = tenant.Errorf(tenant.ECONFLICT, "another write was committed first; retry")
			continue
		}
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		o.savepoint = fmt.Sprintf("r%d", i)
		if err := w.internal(func() error { return w.exec("SAVEPOINT " + o.savepoint) }); err != nil {
			o.err = tenant.Wrap(tenant.EINTERNAL, err, "savepoint failed")
			aborted = w.raw.autocommit()
			continue
		}
		err := d.runWrite(o, next, strong, batched)
		if err == nil && (o.fut != nil || o.data != nil) {
			next++
			o.expect = next
			published = append(published, o)
			if strong && !batched {
				// Without atomic batches, strong mode waits for each
				// acknowledgement before the next request runs: a
				// request must never run on top of a write the stream
				// may refuse.
				await(len(published)-1, o)
			}
		}
		if err != nil {
			o.err = err
			if w.raw.autocommit() {
				// SQLite rolled back the whole transaction (I/O error,
				// out of memory): nothing more runs in this batch.
				aborted = true
				continue
			}
			if rerr := w.internal(func() error { return w.exec("ROLLBACK TO " + o.savepoint) }); rerr != nil {
				aborted = true
			}
			w.rolledBack()
		}
	}
	needCatchUp = needCatchUp || aborted
	if batched && len(published) > 0 && aborted {
		// SQLite rolled the group back: publish none of it.
		for _, o := range published {
			o.err = tenant.Errorf(tenant.EUNAVAILABLE, "transaction aborted by an earlier request; retry")
		}
		firstFailed = 0
	} else if batched && len(published) > 0 {
		// The group's messages go to the stream as one atomic batch: all
		// stored, right after base, or none. Requests ran on top of each
		// other's unacknowledged writes, which is safe only because of
		// that all-or-nothing.
		d.publishGroup(published, base, deadline)
		for j, o := range published {
			if !o.acked {
				firstFailed = j
				if tenant.ErrorCode(o.err) != tenant.ECONFLICT {
					needCatchUp = true
				}
				break
			}
		}
	}
	if !strong {
		// Eventual mode pipelines: wait for JetStream in publication
		// order.
		for j, o := range published {
			await(j, o)
		}
	}

	// What this transaction commits: the acknowledged requests before the
	// first failure. In strong mode their sequences follow the applied one;
	// in eventual mode other nodes' messages may lie between, and the
	// sequences beyond the contiguous run are remembered as applied locally
	// ahead of the stream.
	kept := published
	if firstFailed >= 0 {
		kept = published[:firstFailed]
	}
	applied := base
	var ahead []uint64
	for _, o := range kept {
		if o.res.Seq == applied+1 && len(ahead) == 0 {
			applied = o.res.Seq
		} else {
			ahead = append(ahead, o.res.Seq)
		}
	}
	committed := false
	if !w.raw.autocommit() {
		var err error
		if firstFailed >= 0 {
			err = w.internal(func() error { return w.exec("ROLLBACK TO " + published[firstFailed].savepoint) })
		}
		if err == nil {
			err = d.commitApplied(applied, ahead)
		}
		if err != nil {
			d.log.Error("commit failed", "err", err)
			w.internal(func() error { return w.exec("ROLLBACK") })
			needCatchUp = true
		} else {
			committed = true
		}
	}
	needCatchUp = needCatchUp || firstFailed >= 0
	if needCatchUp {
		w.rolledBack() // before ddlRan is reset: it decides what to forget
	}
	w.ddlRan = false
	if needCatchUp {
		// JetStream is the truth: apply whatever it holds beyond what
		// this copy committed (another node's writes, acknowledged writes
		// after a failure, writes whose acknowledgement was lost).
		if err := d.catchUp(context.Background()); err != nil {
			d.log.Error("catch-up after a failed publish", "err", err)
		}
	}
	now := d.applied.Load()
	for _, o := range published {
		switch {
		case o.acked && (o.res.Seq <= now || (committed && d.ahead[o.res.Seq])):
			o.err = nil
			d.eng.counters.writes.Add(1)
		case o.acked:
			o.err = tenant.Errorf(tenant.EUNAVAILABLE, "write is in the log at sequence %d but not yet applied on this node", o.res.Seq)
		case strong && tenant.ErrorCode(o.err) == tenant.ECONFLICT:
			d.eng.counters.conflicts.Add(1)
			retry = append(retry, o)
		}
	}
	return retry
}

// runWrite runs one request inside the open transaction and, if it changed
// anything, publishes its message. In strong mode JetStream stores it only
// if the stream still ends at sequence last, where this copy's state does.
// That check is enough because commit publishes a strong-mode message only
// after every earlier message of its group was acknowledged: pipelined,
// a message computed on top of one the stream then refused could match
// the expected sequence by coincidence (another node's message taking the
// refused one's place) and overwrite that node's write.
func (d *DB) runWrite(o *op, last uint64, strong, batched bool) error {
	w := d.writer
	cp := w.capture
	cp.changes, cp.err = cp.changes[:0], nil
	cp.on = true
	results, err := w.run(o.ctx, o.stmts, cp)
	cp.on = false
	if err != nil {
		return err
	}
	o.res.Results = results
	if len(cp.changes) == 0 {
		return nil
	}
	if batched {
		o.data, err = d.message(cp.changes)
		return err
	}
	o.fut, err = d.publish(cp.changes, last, strong)
	return err
}

// message encodes a transaction's changes as its stream message.
func (d *DB) message(changes []change.Change) ([]byte, error) {
	msg := change.Message{Node: d.eng.Node, Changes: changes, Timestamp: d.eng.now().UnixNano()}
	data := msg.AppendJSON(make([]byte, 0, 512))
	if max := d.eng.maxMessage(); len(data) > max {
		return nil, tenant.Errorf(tenant.ETOOLARGE, "the transaction's changes take %d bytes, over the %d-byte message limit", len(data), max)
	}
	return data, nil
}

// publishGroup publishes the messages of a group's requests as one
// JetStream atomic batch that JetStream stores only if the stream still
// ends at sequence last, and marks each request acknowledged (with its
// sequence) or failed.
func (d *DB) publishGroup(ops []*op, last uint64, deadline context.Context) {
	fail := func(err error) {
		for _, o := range ops {
			o.err = err
		}
	}
	id := nuid.Next()
	subject := tenant.Subject(d.name)
	var reply *nats.Msg
	for i, o := range ops {
		m := nats.NewMsg(subject)
		m.Data = o.data
		m.Header.Set(batchIDHeader, id)
		m.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
		if i == 0 {
			m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(last, 10))
		}
		if i < len(ops)-1 {
			if err := d.eng.NC.PublishMsg(m); err != nil {
				fail(publishError(err))
				return
			}
			continue
		}
		m.Header.Set(batchCommitHeader, "1")
		var err error
		reply, err = d.eng.NC.RequestMsgWithContext(deadline, m)
		if err != nil {
			if deadline.Err() != nil || errors.Is(err, nats.ErrTimeout) {
				fail(tenant.Errorf(tenant.EUNAVAILABLE, "replication did not acknowledge the write in time; it may or may not be committed"))
			} else {
				fail(publishError(err))
			}
			return
		}
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Seq   uint64              `json:"seq"`
		Count int                 `json:"count"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		fail(tenant.Wrap(tenant.EUNAVAILABLE, err, "unreadable acknowledgement: "+err.Error()))
		return
	}
	if ack.Error != nil {
		fail(publishError(ack.Error))
		return
	}
	if ack.Count != len(ops) || ack.Seq != last+uint64(len(ops)) {
		fail(tenant.Errorf(tenant.EINTERNAL, "stream stored the group of %d at %d (%d messages), expected it after %d", len(ops), ack.Seq, ack.Count, last))
		return
	}
	for j, o := range ops {
		o.acked = true
		o.res.Seq = last + uint64(j) + 1
		o.data = nil
	}
}

// Headers of JetStream atomic batch publishing.
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// publish sends the message of one transaction's changes. In strong mode
// JetStream stores it only if the stream still ends at sequence last.
func (d *DB) publish(changes []change.Change, last uint64, strong bool) (jetstream.PubAckFuture, error) {
	data, err := d.message(changes)
	if err != nil {
		return nil, err
	}
	var opts []jetstream.PublishOpt
	if strong {
		opts = append(opts, jetstream.WithExpectLastSequence(last))
	}
	fut, err := d.eng.JS.PublishAsync(tenant.Subject(d.name), data, opts...)
	if err != nil {
		return nil, publishError(err)
	}
	return fut, nil
}

// commitApplied stores, in the writer's open transaction, the new applied
// sequence and this node's own sequences committed ahead of it, commits,
// and then brings the in-memory state along. On error the transaction is
// still open: the caller rolls it back.
func (d *DB) commitApplied(applied uint64, ahead []uint64) error {
	w := d.writer
	err := w.internal(func() error {
		for _, seq := range ahead {
			if err := w.exec("INSERT OR IGNORE INTO _hasvc_ahead (seq) VALUES (?)", int64(seq)); err != nil {
				return err
			}
		}
		if err := w.exec("UPDATE _hasvc_state SET applied_seq = ?", int64(applied)); err != nil {
			return err
		}
		return w.exec("COMMIT")
	})
	if err != nil {
		return err
	}
	d.version.Add(1)
	for _, seq := range ahead {
		d.ahead[seq] = true
	}
	d.setApplied(applied)
	return nil
}

// publishError maps a failed publish to a tenant error.
func publishError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return tenant.Wrap(tenant.ECONFLICT, err, "another write was committed first; retry")
		}
	}
	return tenant.Wrap(tenant.EUNAVAILABLE, err, "replication unavailable: "+err.Error())
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
		if err := d.do(ctx, func(*conn) error { return d.catchUp(ctx) }); err != nil {
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
			return tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing", d.name)
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
	d.wg.Wait()
	var first error
	d.readerMu.Lock()
	for _, r := range d.readers {
		if err := r.close(); err != nil && first == nil {
			first = err
		}
	}
	d.readers = nil
	d.readerMu.Unlock()
	if err := d.writer.close(); err != nil && first == nil {
		first = err
	}
	return first
}
