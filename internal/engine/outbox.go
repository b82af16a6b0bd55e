package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// The outbox keeps eventual mode's promise: a write commits on its node at
// once, whether or not the stream can be reached.
//
// A group's messages are published as usual; those JetStream does not
// acknowledge in time are not rolled back but committed here with a row
// each in _hasvc_outbox (in the same SQLite transaction, flushed to disk
// under --fsync always), and answered as queued. While the outbox holds
// any row, later writes queue behind it without being published, so this
// node's writes reach the stream in the order they committed. A goroutine
// (publishQueued) sends the rows in order whenever the stream can be
// reached and records each one's sequence as this node's own, ahead of the
// applied sequence, like any eventual-mode write.
//
// The invariant: a queued write reaches the stream exactly once. A row
// that went out without an answer (sent) may be stored already: before it
// goes again, this copy applies the stream to its end (apply recognises
// the message by its node and timestamp, and deletes the row), and it is
// sent only if the stream still ends there (an expected last sequence), so
// a copy stored late cannot be followed by a second.

// queuedSeq is the sequence a queued write's idempotency key records until
// the write's sequence is known.
const queuedSeq = -1

// outboxBatch is how many queued messages go out together.
const outboxBatch = 64

// How long the publisher waits after a failed attempt, doubling up to the
// most.
const (
	outboxRetryMin = 100 * time.Millisecond
	outboxRetryMax = 2 * time.Second
)

// queuedMsg is a row of _hasvc_outbox.
type queuedMsg struct {
	ts      int64
	data    []byte
	key     string
	results []byte
	sent    bool
}

// msg is the row as the message published on subject.
func (q *queuedMsg) msg(subject string) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: q.data, Header: requestHeader(q.key, q.results)}
}

// loadOutbox reads the outbox of a database being opened, on its writer.
func (d *DB) loadOutbox() error {
	w := d.writer
	d.outbox = map[int64]bool{}
	err := w.Internal(func() error {
		return w.Query("SELECT ts FROM _hasvc_outbox", nil, func(s *sqlite.Stmt) error {
			ts, _ := s.Column(0).(int64)
			d.outbox[ts] = true
			d.lastTS = max(d.lastTS, ts)
			return nil
		})
	})
	d.queued.Store(int64(len(d.outbox)))
	if len(d.outbox) > 0 {
		d.stalledSince.Store(d.eng.now().UnixNano())
	}
	return err
}

// outboxChanged brings along, after the outbox's rows changed, what is
// kept beside it: the count other goroutines read, the marker that has
// the database opened at start, and the time of the last progress (a row
// left: progress). Writer only.
func (d *DB) outboxChanged(progress bool) {
	n := int64(len(d.outbox))
	defer d.queued.Store(n) // last: whoever reads it sees the marker already as it says
	switch was := d.queued.Load(); {
	case n == 0 && was > 0:
		d.log.Info("queued writes are all in the stream")
		d.eng.markQueued(d.name, false)
		d.stalledSince.Store(0)
	case n > 0 && was == 0:
		d.log.Warn("the stream is out of reach: writes are committed here and queued")
		d.eng.markQueued(d.name, true)
		d.stalledSince.Store(d.eng.now().UnixNano())
	case n > 0 && progress:
		d.stalledSince.Store(d.eng.now().UnixNano())
	}
}

// enqueue writes the queued messages to the outbox, in the writer's open
// transaction.
func (d *DB) enqueue(queued []*pending) error {
	w := d.writer
	for _, p := range queued {
		var key, results any
		if k := p.header.Get(requestKeyHeader); k != "" {
			key = k
			if r := p.header.Get(requestResultsHeader); r != "" {
				results = r
			}
		}
		sent := 0
		if p.sent {
			sent = 1
		}
		if err := w.Exec("INSERT INTO _hasvc_outbox (ts, data, key, results, sent) VALUES (?, ?, ?, ?, ?)", p.ts, p.data, key, results, sent); err != nil {
			return err
		}
	}
	return nil
}

// syncQueued flushes the writer's last commit to disk, for writes queued
// under --fsync always: the copy is their only record, and its commits
// do not wait for the disk (synchronous=NORMAL, which SQLite does not let
// a transaction change once it has begun). The commit is in the WAL file,
// written; an fsync of that file makes it durable.
func (d *DB) syncQueued() error {
	if !d.eng.SyncQueued || d.eng.Memory {
		return nil
	}
	f, err := os.OpenFile(d.eng.path(d.name)+"-wal", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// queuedCommitted brings the in-memory outbox along after a commit that
// queued messages, and starts the publisher.
func (d *DB) queuedCommitted(queued []*pending) {
	if len(queued) == 0 {
		return
	}
	for _, p := range queued {
		d.outbox[p.ts] = true
	}
	d.outboxChanged(false)
	d.startPublisher()
}

// startPublisher starts publishQueued unless it runs or the outbox is
// empty. Writer only.
func (d *DB) startPublisher() {
	if len(d.outbox) == 0 || d.publishing.Load() {
		return
	}
	d.publishing.Store(true)
	d.wg.Add(1)
	go d.publishQueued()
}

// publishQueued sends the outbox to the stream, oldest first, until it is
// empty or the database closes.
func (d *DB) publishQueued() {
	defer d.wg.Done()
	ctx := d.ctx
	backoff := outboxRetryMin
	var failures int
	for ctx.Err() == nil {
		var batch []queuedMsg
		err := d.do(ctx, func(w *sqlite.Conn) error {
			var err error
			batch, err = d.nextQueued(w)
			if err == nil && len(batch) == 0 {
				d.publishing.Store(false) // on the writer: no write queues meanwhile
			}
			return err
		})
		if err == nil && len(batch) == 0 {
			return
		}
		if err == nil {
			var n int
			n, err = d.sendQueued(ctx, batch)
			if n > 0 {
				failures = 0
			}
			if n > 0 || err == errSendAgain {
				backoff = outboxRetryMin
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		if failures++; failures == 1 || failures%30 == 0 {
			d.log.Warn("queued writes wait for the stream", "err", err, "queued", d.queued.Load(), "attempts", failures)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, outboxRetryMax)
	}
}

// errSendAgain: the stream moved on while a queued message that went out
// without an answer was looked for; look again at once.
var errSendAgain = errors.New("the stream moved on; look again")

// nextQueued reads the oldest queued messages, at most outboxBatch.
func (d *DB) nextQueued(w *sqlite.Conn) ([]queuedMsg, error) {
	var batch []queuedMsg
	err := w.Internal(func() error {
		return w.Query("SELECT ts, data, key, results, sent FROM _hasvc_outbox ORDER BY ts LIMIT ?", []any{outboxBatch}, func(s *sqlite.Stmt) error {
			q := queuedMsg{}
			q.ts, _ = s.Column(0).(int64)
			data, _ := s.Column(1).([]byte)
			q.data = append([]byte(nil), data...)
			q.key, _ = s.Column(2).(string)
			if r, ok := s.Column(3).(string); ok {
				q.results = []byte(r)
			}
			sent, _ := s.Column(4).(int64)
			q.sent = sent != 0
			batch = append(batch, q)
			return nil
		})
	})
	return batch, err
}

// sentMsg is one queued message JetStream stored, at seq.
type sentMsg struct {
	ts  int64
	key string
	seq uint64
}

// sendQueued sends batch (the oldest queued messages) and records those
// JetStream stored. It returns how many left the outbox.
func (d *DB) sendQueued(ctx context.Context, batch []queuedMsg) (int, error) {
	subject := tenant.Subject(d.name)
	if first := batch[0]; first.sent {
		// It may be in the stream: apply the stream to its end, which
		// meets it if it is there, and send it again only right after
		// that end. The writer waits for none of it while the stream
		// cannot be reached.
		if _, err := d.streamState(ctx); err != nil {
			return 0, err
		}
		var last uint64
		var still bool
		err := d.do(ctx, func(*sqlite.Conn) error {
			cctx, cancel := context.WithTimeout(ctx, d.eng.publishTimeout())
			defer cancel()
			if err := d.catchUp(cctx); err != nil {
				return err
			}
			still, last = d.outbox[first.ts], d.applied.Load()
			return nil
		})
		if err != nil {
			return 0, err
		}
		if !still {
			return 1, nil
		}
		pctx, cancel := context.WithTimeout(ctx, d.eng.publishTimeout())
		ack, err := d.nats.js.PublishMsg(pctx, first.msg(subject), jetstream.WithExpectLastSequence(last))
		cancel()
		if err != nil {
			if tenant.ErrorCode(publishError(err)) == tenant.ECONFLICT {
				return 0, errSendAgain
			}
			return 0, err
		}
		return 1, d.recordSent([]sentMsg{{first.ts, first.key, ack.Sequence}})
	}

	// Messages never sent: mark them sent before they go (a crash
	// between the two must not send them again unlooked for), then send
	// them pipelined.
	fresh := batch
	for i, q := range batch {
		if q.sent {
			fresh = batch[:i]
			break
		}
	}
	last := fresh[len(fresh)-1].ts
	err := d.do(ctx, func(w *sqlite.Conn) error {
		return w.Internal(func() error {
			return w.Exec("UPDATE _hasvc_outbox SET sent = 1 WHERE ts <= ? AND sent = 0", last)
		})
	})
	if err != nil {
		return 0, err
	}
	pctx, cancel := context.WithTimeout(ctx, d.eng.publishTimeout())
	defer cancel()
	futs := make([]jetstream.PubAckFuture, 0, len(fresh))
	for i := range fresh {
		fut, err := d.nats.js.PublishMsgAsync(fresh[i].msg(subject))
		if err != nil {
			break
		}
		futs = append(futs, fut)
	}
	var stored []sentMsg
	var failed error
	for i, fut := range futs {
		select {
		case ack := <-fut.Ok():
			stored = append(stored, sentMsg{fresh[i].ts, fresh[i].key, ack.Sequence})
		case err := <-fut.Err():
			failed = err
		case <-pctx.Done():
			failed = errNoAck
		}
		if failed != nil {
			break
		}
	}
	if len(stored) == 0 {
		if failed == nil {
			failed = errNoAck
		}
		return 0, failed
	}
	return len(stored), d.recordSent(stored)
}

// recordSent records, on the writer, that JetStream stored the queued
// messages stored: each leaves the outbox, and its sequence becomes one of
// this node's own ahead of the applied sequence (unless apply met it
// first).
func (d *DB) recordSent(stored []sentMsg) error {
	return d.do(d.ctx, func(w *sqlite.Conn) error {
		applied := d.applied.Load()
		var ahead []uint64
		err := w.Internal(func() error {
			if err := w.Exec("BEGIN IMMEDIATE"); err != nil {
				return err
			}
			err := func() error {
				for _, s := range stored {
					if !d.outbox[s.ts] {
						continue // apply met it
					}
					if err := w.Exec("DELETE FROM _hasvc_outbox WHERE ts = ?", s.ts); err != nil {
						return err
					}
					if s.key != "" {
						if err := w.Exec("UPDATE _hasvc_requests SET seq = ? WHERE key = ? AND seq = ?", int64(s.seq), s.key, queuedSeq); err != nil {
							return err
						}
					}
					if s.seq > applied {
						ahead = append(ahead, s.seq)
					}
				}
				if err := d.insertAhead(ahead); err != nil {
					return err
				}
				return w.Exec("COMMIT")
			}()
			if err != nil {
				w.Exec("ROLLBACK")
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, s := range stored {
			delete(d.outbox, s.ts)
		}
		d.noteAhead(ahead)
		d.outboxChanged(true)
		if d.eng.alone() {
			// No apply loop brings applied past them.
			cctx, cancel := context.WithTimeout(d.ctx, d.eng.publishTimeout())
			defer cancel()
			if err := d.catchUp(cctx); err != nil {
				d.log.Warn("catch-up after queued writes went out", "err", err)
			}
		}
		return nil
	})
}

// stalled returns how long the outbox has waited without sending a
// message, 0 if it is empty.
func (d *DB) stalled(now time.Time) time.Duration {
	since := d.stalledSince.Load()
	if since == 0 || d.queued.Load() == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}

// metQueued reports whether the message of a stream entry is one of this
// node's queued writes (already committed here), for apply.
func (d *DB) metQueued(node string, ts int64) bool {
	return node == d.eng.Node && d.outbox[ts]
}

// queuedDir lists, one empty file each, the databases of this node that
// have queued writes, so that they are opened (and their writes sent)
// when the node starts.
func (e *Engine) queuedDir() string { return filepath.Join(e.DataDir, "queued") }

// markQueued records whether database name has queued writes.
func (e *Engine) markQueued(name string, queued bool) {
	if e.Memory {
		return
	}
	path := filepath.Join(e.queuedDir(), name)
	var err error
	if queued {
		if err = os.MkdirAll(e.queuedDir(), 0o700); err == nil {
			err = os.WriteFile(path, nil, 0o600)
		}
	} else if err = os.Remove(path); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err != nil {
		e.Logger.Error("record a database's queued writes", "db", name, "err", err)
	}
}

// openQueued opens the databases that had queued writes when the node
// stopped: opening one starts sending them.
func (e *Engine) openQueued(ctx context.Context) {
	if e.Memory {
		return
	}
	entries, err := os.ReadDir(e.queuedDir())
	if err != nil {
		return
	}
	for _, ent := range entries {
		name := ent.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		_, release, err := e.Acquire(ctx, name)
		if err != nil {
			e.Logger.Error("open a database with queued writes", "db", name, "err", err)
			continue
		}
		release()
	}
}
