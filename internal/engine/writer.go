package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// op is a unit of work for the writer goroutine: a tenant request, or (fn
// non-nil) an operation of hasvc's own that needs the writer alone.
type op struct {
	ctx   context.Context
	stmts []sqlite.Statement
	fn    func(*sqlite.Conn) error
	done  chan struct{}

	res ExecResult
	err error

	msg       pending // the request's message, if it changed anything
	published bool    // msg went to a commit group

	key   string // idempotency key ("": none)
	again bool   // run in the next group: an earlier request of this one has its key

	// arrived is when the request reached the writer's queue: a
	// strong-mode request is bounded by one publish timeout from then,
	// its wait behind other groups included.
	arrived time.Time
}

// maxBatch bounds how many queued requests the writer commits together.
const maxBatch = 128

// do runs fn on the writer, alone.
func (d *DB) do(ctx context.Context, fn func(*sqlite.Conn) error) error {
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
		return d.closingError()
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the op completes: the writer answers every op it
	// takes, and a cancelled context only makes it fail faster. An op
	// queued while the database closed (the send and d.closed were both
	// ready) may land after the writer's last drain: the writer is gone
	// and will never take it.
	select {
	case <-o.done:
		return nil
	case <-d.writerDone:
		select {
		case <-o.done: // answered just before the writer stopped
			return nil
		default:
			return d.closingError()
		}
	}
}

func (d *DB) closingError() error {
	return tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing", d.name)
}

// loop is the writer goroutine. It takes the queued requests (up to
// maxBatch) and commits them as one group; an operation of hasvc's own
// runs alone, after the group queued before it.
func (d *DB) loop() {
	defer d.wg.Done()
	defer close(d.writerDone)
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
// requests that another node's write beat to the stream. The publish
// timeout bounds the attempts together, not each: past it, a request
// that keeps losing answers ECONFLICT.
func (d *DB) commitWithRetry(batch []*op) {
	timeout := d.eng.publishTimeout()
	until := time.Now().Add(timeout)
	if d.strong() {
		// A request that waited out its publish timeout behind groups
		// that could not publish answers now, without running; the
		// group's deadline is its oldest request's.
		live := batch[:0]
		for _, o := range batch {
			switch {
			case o.arrived.IsZero():
			case time.Since(o.arrived) >= timeout:
				o.err = errQueuedTooLong
				close(o.done)
				continue
			case o.arrived.Add(timeout).Before(until):
				until = o.arrived.Add(timeout)
			}
			live = append(live, o)
		}
		batch = live
	}
	for attempt := 1; len(batch) > 0; attempt++ {
		retry := d.commit(batch, until)
		for _, o := range batch {
			if !slices.Contains(retry, o) {
				close(o.done)
			}
		}
		if attempt >= maxAttempts || !time.Now().Before(until) {
			for _, o := range retry {
				close(o.done) // with its ECONFLICT
			}
			return
		}
		if len(retry) > 0 && attempt > 1 {
			// The first retry runs at once on the caught-up copy; later
			// ones back off, so nodes that keep colliding spread out.
			b := min(maxBackoff, time.Millisecond<<min(attempt-1, 10))
			time.Sleep(min(b/2+time.Duration(rand.Int64N(int64(b))), time.Until(until)))
		}
		batch = retry
	}
}

func (d *DB) failPending() {
	for {
		select {
		case o := <-d.ops:
			o.err = d.closingError()
			close(o.done)
		default:
			return
		}
	}
}

// strong reports whether the database serializes writes through the
// stream (see tenant.ModeStrong).
func (d *DB) strong() bool { return d.cfg.Mode != tenant.ModeEventual }

// Eventual reports whether the database is in eventual mode.
func (d *DB) Eventual() bool { return !d.strong() }

// commit runs a group of write requests in one SQLite transaction, each in
// a savepoint of its own, and hands the message of each request that
// changed something to one commit group (publish.go), which commits what
// JetStream acknowledged. It returns the requests to run again: in strong
// mode, those that lost to another node's write.
func (d *DB) commit(batch []*op, until time.Time) (retry []*op) {
	w := d.writer
	for _, o := range batch {
		o.err, o.res, o.msg, o.published, o.again = nil, ExecResult{}, pending{}, false, false
	}
	if s := d.stuck.Load(); s != nil {
		for _, o := range batch {
			o.err = tenant.Errorf(tenant.EUNAVAILABLE, "database is stuck: %s", *s)
		}
		return nil
	}
	if err := w.Internal(func() error { return w.Exec("BEGIN IMMEDIATE") }); err != nil {
		d.log.Error("begin a write transaction", "err", err)
		for _, o := range batch {
			o.err = tenant.Wrap(tenant.EUNAVAILABLE, err, "cannot begin a transaction")
		}
		return nil
	}
	g := d.newGroup(d.strong(), d.atomic && len(batch) > 1, until)
	aborted := false
	var groupKeys map[string]bool // idempotency keys of this group's requests
	for i, o := range batch {
		switch {
		case aborted:
			o.err = errAborted
			continue
		case g.strong && g.failed():
			// The stream moved on without this copy: run the rest of
			// the group again after catching up.
			o.err = tenant.Errorf(tenant.ECONFLICT, "another write was committed first; retry")
			continue
		case o.ctx.Err() != nil:
			o.err = o.ctx.Err()
			continue
		}
		if o.key != "" && d.answerByKey(o, &groupKeys) {
			continue
		}
		o.msg.savepoint = fmt.Sprintf("r%d", i)
		if err := w.Internal(func() error { return w.Exec("SAVEPOINT " + o.msg.savepoint) }); err != nil {
			d.log.Error("savepoint", "err", err)
			o.err = tenant.Wrap(tenant.EINTERNAL, err, "savepoint failed")
			aborted = w.Autocommit()
			continue
		}
		err := d.runWrite(o, g)
		if err == nil {
			continue
		}
		o.err = err
		if w.Autocommit() {
			// SQLite rolled back the whole transaction (I/O error, out
			// of memory): nothing more runs in this group.
			aborted = true
			continue
		}
		if rerr := w.Internal(func() error { return w.Exec("ROLLBACK TO " + o.msg.savepoint) }); rerr != nil {
			aborted = true
		}
		w.RolledBack()
	}
	g.finish(aborted)
	for _, o := range batch {
		if o.again {
			retry = append(retry, o)
		}
		if !o.published {
			continue
		}
		o.err, o.res.Seq, o.res.Queued = o.msg.err, o.msg.seq, o.msg.queued && o.msg.ok
		if o.msg.conflict {
			retry = append(retry, o)
		}
	}
	return retry
}

// runWrite runs one request inside the open transaction and, if it
// changed anything, hands its message to the group.
func (d *DB) runWrite(o *op, g *commitGroup) error {
	w := d.writer
	cp := w.Capture()
	cp.Reset()
	results, err := w.Run(o.ctx, o.stmts, cp)
	if err != nil {
		return err
	}
	o.res.Results = results
	if cp.Len() == 0 {
		return nil
	}
	data, ts, err := d.message(cp.Changes())
	if err != nil {
		return err
	}
	o.msg.ts = ts
	if o.key != "" {
		if err := d.keepRequest(o, g, data); err != nil {
			return err
		}
	}
	if err := g.add(&o.msg, data); err != nil {
		return err
	}
	o.published = true
	return nil
}
