package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/broker"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// lostAnswer is a publication whose answer never comes: the request went
// to a stream leader that stopped.
type lostAnswer struct{}

func (lostAnswer) Ok() <-chan *jetstream.PubAck { return nil }
func (lostAnswer) Err() <-chan error            { return nil }
func (lostAnswer) Msg() *nats.Msg               { return nil }

// TestResendUnansweredWrite: a strong-mode write whose answer is lost is
// sent again, and ends as what the stream holds at its place: this write
// (whether the first copy or the second was stored, once), or another
// node's (a conflict).
func TestResendUnansweredWrite(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "app")
	defer release()
	mustExec(t, db, "CREATE TABLE t (v TEXT)", nil)
	ctx := context.Background()

	// await runs what the writer does after publishing data at expect,
	// with the first copy's answer lost.
	await := func(expect uint64, data []byte) *pending {
		g := db.newGroup(true, false, time.Time{})
		defer g.cancel()
		p := &pending{expect: expect, fut: lostAnswer{}}
		g.pubs = append(g.pubs, p)
		g.awaitStrong(0, data)
		return p
	}
	last := func() uint64 {
		info, err := db.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	subject := tenant.Subject("app")

	// The first copy was stored; its answer was lost.
	seq := last() + 1
	first := []byte(`{"node":"x","changes":[],"ts":1}`)
	if _, err := n.js.Publish(ctx, subject, first, jetstream.WithExpectLastSequence(seq-1)); err != nil {
		t.Fatal(err)
	}
	if p := await(seq, first); !p.acked || p.seq != seq || p.err != nil {
		t.Errorf("first copy stored: acked %v at %d, err %v; want acked at %d", p.acked, p.seq, p.err, seq)
	}
	if got := last(); got != seq {
		t.Errorf("stream ends at %d after the second copy, want %d (stored once)", got, seq)
	}

	// The first copy was lost on the way: the second is stored.
	seq = last() + 1
	second := []byte(`{"node":"x","changes":[],"ts":2}`)
	if p := await(seq, second); !p.acked || p.seq != seq || p.err != nil {
		t.Errorf("first copy lost: acked %v at %d, err %v; want acked at %d", p.acked, p.seq, p.err, seq)
	}
	if got, err := db.stream.GetMsg(ctx, seq); err != nil || string(got.Data) != string(second) {
		t.Errorf("message %d = %v, %v; want the write", seq, got, err)
	}

	// Another node's write took the place: a conflict, nothing stored.
	seq = last() + 1
	if _, err := n.js.Publish(ctx, subject, []byte(`{"node":"y","changes":[],"ts":3}`), jetstream.WithExpectLastSequence(seq-1)); err != nil {
		t.Fatal(err)
	}
	p := await(seq, []byte(`{"node":"x","changes":[],"ts":4}`))
	if p.acked || tenant.ErrorCode(p.err) != tenant.ECONFLICT {
		t.Errorf("place taken: acked %v, err %v; want ECONFLICT", p.acked, p.err)
	}
	if got := last(); got != seq {
		t.Errorf("stream ends at %d, want %d", got, seq)
	}
}

// TestSettleWaitsForTheStore: a place still empty is not taken for a
// loss until the deadline.
func TestSettleWaitsForTheStore(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "app")
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := db.settle(ctx, 99, []byte("x")); err != errNoAck {
		t.Errorf("settle on an empty place = %v, want errNoAck", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("settle gave up after %v, before its deadline", d)
	}
}

// TestStrongWriteOneDeadline: a strong-mode write is bounded by one
// publish timeout from the moment it reaches the writer's queue, its wait
// behind a group that cannot publish included; one that waited it out
// answers without running.
func TestStrongWriteOneDeadline(t *testing.T) {
	cut := &cutJS{}
	n := newTestNodeOpts(t, t.TempDir(), false, func(e *Engine) {
		cut.JetStream = e.JS
		e.JS = cut
		e.PublishTimeout = time.Second
	})
	db, release := n.createDB(t, "st")
	defer release()
	mustExec(t, db, "CREATE TABLE t (v TEXT)", nil)
	cut.cut.Store(true)
	took := make(chan time.Duration, 2)
	write := func() {
		start := time.Now()
		_, err := db.Exec(context.Background(), []sqlite.Statement{{SQL: "INSERT INTO t VALUES ('x')"}}, ExecOptions{})
		if tenant.ErrorCode(err) != tenant.EUNAVAILABLE {
			t.Errorf("write while cut off: %v, want EUNAVAILABLE", err)
		}
		took <- time.Since(start)
	}
	go write()
	time.Sleep(300 * time.Millisecond) // the first holds the writer
	go write()
	for range 2 {
		if d := <-took; d > 1500*time.Millisecond {
			t.Errorf("a write took %v, over its one publish timeout (1 s) and then some", d)
		}
	}
}

// countFlushes counts the flushes of a database's stream (group commit).
type countFlushes struct {
	Durability
	stream string
	n      atomic.Int64
}

func (c *countFlushes) Stream(account, name string) error {
	if name == c.stream {
		c.n.Add(1)
	}
	return c.Durability.Stream(account, name)
}

// TestGroupCommitFailingRequest: under fsync always, requests that queue
// behind a busy writer commit as one group with one flush of the stream,
// and one of them that fails rolls back alone: the others' rows and
// messages are all there, and nothing of the failed one.
func TestGroupCommitFailingRequest(t *testing.T) {
	flushes := &countFlushes{stream: tenant.StreamName("grp")}
	n := newTestNodeFsync(t, t.TempDir(), false, "always", func(e *Engine, srv *broker.Server) {
		if srv.Flusher() == nil {
			t.Fatal("no group commit under fsync always")
		}
		flushes.Durability = srv.Flusher()
		e.Durable = flushes
	})
	db, release := n.createDB(t, "grp")
	defer release()
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL)", nil)
	mustExec(t, db, "INSERT INTO t (v) VALUES ('taken')", nil)
	before, flushed := db.Applied(), flushes.n.Load()

	ctx := context.Background()
	started, hold := make(chan struct{}), make(chan struct{})
	go db.do(ctx, func(*sqlite.Conn) error { close(started); <-hold; return nil })
	<-started
	const requests, failing = 16, 7
	errs := make([]error, requests)
	var wg sync.WaitGroup
	for i := range requests {
		v := fmt.Sprintf("v%d", i)
		if i == failing {
			v = "taken"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.Exec(ctx, []sqlite.Statement{{SQL: "INSERT INTO t (v) VALUES (?)", Params: []any{v}}}, ExecOptions{})
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); len(db.ops) < requests; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests queued behind the writer", len(db.ops), requests)
		}
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()

	for i, err := range errs {
		if (err != nil) != (i == failing) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if msg := tenant.ErrorMessage(errs[failing]); tenant.ErrorCode(errs[failing]) != tenant.EINVALID || !strings.Contains(msg, "UNIQUE") {
		t.Fatalf("the failing request: %v, want its UNIQUE constraint's error", errs[failing])
	}
	if got := flushes.n.Load() - flushed; got != 1 {
		t.Fatalf("the group flushed the stream %d times, want once", got)
	}
	if got := count(t, db, "t"); got != requests {
		t.Fatalf("%d rows, want %d (one before and %d of the group)", got, requests, requests-1)
	}
	if got := mustExec(t, db, "SELECT count(*) FROM t WHERE v = 'taken'", nil).Results[0].Rows[0][0]; got != int64(1) {
		t.Fatalf("%v rows of the failed request's value", got)
	}
	last := db.Applied()
	if last-before != requests-1 {
		t.Fatalf("the stream went from %d to %d, want a message for each of %d requests that committed", before, last, requests-1)
	}
	values := map[string]bool{}
	for _, m := range streamMessages(t, db, last)[before:] {
		for _, ch := range m.Changes {
			values[fmt.Sprint(ch.NewValues[1])] = true
		}
	}
	if len(values) != requests-1 || values["taken"] {
		t.Fatalf("the group's messages carry %v", values)
	}
}
