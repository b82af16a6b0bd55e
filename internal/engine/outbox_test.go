package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// cutJS is a node's JetStream whose publications can be cut off: their
// answers never come, and (storeAnyway) they are stored or (not) lost on
// the way.
type cutJS struct {
	jetstream.JetStream
	cut, storeAnyway atomic.Bool
	refuse           atomic.Bool // publications fail at once, unsent
}

func (c *cutJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if c.refuse.Load() {
		return nil, nats.ErrConnectionReconnecting
	}
	if !c.cut.Load() {
		return c.JetStream.PublishMsgAsync(m, opts...)
	}
	if c.storeAnyway.Load() {
		c.JetStream.PublishMsg(context.Background(), m, opts...)
	}
	return lostAnswer{}, nil
}

func (c *cutJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if !c.cut.Load() {
		return c.JetStream.PublishMsg(ctx, m, opts...)
	}
	if c.storeAnyway.Load() {
		c.JetStream.PublishMsg(context.Background(), m, opts...)
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestEventualOutbox: with the stream out of reach, eventual-mode writes
// commit on their node at once and are answered as queued; they reach the
// stream once, in order, when it can be reached again, also when the
// first copy of one was stored and its answer lost, and also across a
// restart of the node.
func TestEventualOutbox(t *testing.T) {
	dir := t.TempDir()
	cut := &cutJS{}
	setup := func(e *Engine) {
		cut.JetStream = e.JS
		e.JS = cut
		e.PublishTimeout = 300 * time.Millisecond
		e.SyncQueued = true
	}
	n := newTestNodeOpts(t, dir, false, setup)
	ctx := context.Background()
	db, release := n.createDBWith(t, tenant.Config{Name: "ev", Mode: tenant.ModeEventual})
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", nil)
	insert := func(v string) *ExecResult {
		t.Helper()
		return mustExec(t, db, "INSERT INTO t (v) VALUES (?)", []any{v})
	}
	waitDrained := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); db.queued.Load() > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d writes still queued", db.queued.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Cut off, nothing stored: the first write waits the publish
	// timeout, the others queue behind it at once; all are sent, in
	// order, once the stream can be reached.
	cut.cut.Store(true)
	if res := insert("a"); !res.Queued || res.Seq != 0 {
		t.Fatalf("first write while cut off: queued %v, sequence %d; want queued", res.Queued, res.Seq)
	}
	start := time.Now()
	for _, v := range []string{"b", "c"} {
		if res := insert(v); !res.Queued {
			t.Fatalf("write %s while cut off not queued", v)
		}
	}
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("two writes behind a queued one took %v; want them at once", took)
	}
	if got := count(t, db, "t"); got != 3 {
		t.Fatalf("this copy has %d rows while cut off, want 3", got)
	}
	if info, err := n.eng.Info(ctx, "ev"); err != nil || len(info.Nodes) == 0 || info.Nodes[0].QueuedWrites != 3 {
		t.Errorf("status while cut off: %+v, %v; want 3 queued writes", info, err)
	}
	marker := filepath.Join(dir, "queued", "ev")
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("no marker of the queued writes, to open the database at start: %v", err)
	}
	// Writes that do not go out make the node unready.
	time.Sleep(700 * time.Millisecond)
	if err := n.eng.Ready(ctx); err == nil || !strings.Contains(err.Error(), "queued") {
		t.Errorf("ready with writes queued for 0.7 s: %v", err)
	}
	cut.cut.Store(false)
	waitDrained()
	if err := n.eng.Ready(ctx); err != nil {
		t.Errorf("not ready once the queued writes went out: %v", err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the marker of queued writes stays once they went out: %v", err)
	}
	if res := insert("d"); res.Queued || res.Seq == 0 {
		t.Errorf("write after the outbox emptied: queued %v, sequence %d; want published", res.Queued, res.Seq)
	}

	// Cut off, every copy stored and every answer lost: each write is
	// in the stream once.
	cut.storeAnyway.Store(true)
	cut.cut.Store(true)
	for _, v := range []string{"e", "f", "g"} {
		if res := insert(v); !res.Queued {
			t.Fatalf("write %s while cut off not queued", v)
		}
	}
	cut.cut.Store(false)
	cut.storeAnyway.Store(false)
	waitDrained()

	// Queued when the node stops: sent when it starts again.
	cut.cut.Store(true)
	insert("h")
	release()
	n.close()
	cut = &cutJS{}
	n = newTestNodeOpts(t, dir, false, setup)
	var err error
	db, release, err = n.eng.Acquire(ctx, "ev")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	waitDrained()

	// Publications that fail at once (the connection is down): queued
	// too, the group's later writes behind them.
	cut.refuse.Store(true)
	for _, v := range []string{"i", "j"} {
		if res := insert(v); !res.Queued {
			t.Fatalf("write %s while publications fail not queued", v)
		}
	}
	cut.refuse.Store(false)
	waitDrained()

	// The stream holds every write once, in the order written.
	var got []string
	info, err := db.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range streamMessages(t, db, info.State.LastSeq) {
		for _, c := range m.Changes {
			if c.Operation == change.OpInsert {
				got = append(got, c.NewValues[1].(string))
			}
		}
	}
	if s := strings.Join(got, ""); s != "abcdefghij" {
		t.Errorf("the stream's inserts: %q, want \"abcdefghij\" (each once, in order)", s)
	}
	if c := count(t, db, "t"); c != 10 {
		t.Errorf("copy has %d rows, want 10", c)
	}
}

// TestEventualLastWriterWins: in eventual mode a write that reaches the
// stream after another but is older by its clock loses on every copy, and
// the conflict log shows it; a later write made on top of a version
// replaces it without a conflict.
func TestEventualLastWriterWins(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	ctx := context.Background()
	db, release := n.createDBWith(t, tenant.Config{Name: "lw", Mode: tenant.ModeEventual})
	defer release()
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", nil)
	res := mustExec(t, db, "INSERT INTO t (id, v) VALUES (1, 'here')", nil)
	raw, err := db.stream.GetMsg(ctx, res.Seq)
	if err != nil {
		t.Fatal(err)
	}
	var mine change.Message
	if err := json.Unmarshal(raw.Data, &mine); err != nil {
		t.Fatal(err)
	}
	if !mine.LWW || mine.Changes[0].Base != nil {
		t.Fatalf("this node's message: lww %v, base %v; want an LWW message replacing no version", mine.LWW, mine.Changes[0].Base)
	}
	// Another node's writes, as they would come: published directly.
	other := func(ts int64, base *change.Version, v string) uint64 {
		t.Helper()
		m := change.Message{Node: "other", Timestamp: ts, LWW: true, Changes: []change.Change{{
			Database: "main", Table: "t", Columns: []string{"id", "v"}, Operation: change.OpUpdate,
			OldRowID: change.RowID(1), NewRowID: change.RowID(1), OldValues: change.Values{int64(1), "here"}, NewValues: change.Values{int64(1), v}, Base: base,
		}}}
		ack, err := n.js.Publish(ctx, tenant.Subject("lw"), m.AppendJSON(nil))
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	read := func(seq uint64) string {
		t.Helper()
		res, err := db.Exec(ctx, []sqlite.Statement{{SQL: "SELECT v FROM t WHERE id = 1"}}, ExecOptions{MinSeq: seq})
		if err != nil {
			t.Fatal(err)
		}
		return res.Results[0].Rows[0][0].(string)
	}
	// Later in the stream, older by its clock, made without seeing ours.
	seq := other(mine.Timestamp-int64(time.Second), nil, "stale")
	if got := read(seq); got != "here" {
		t.Errorf("row after an older concurrent write: %q, want \"here\"", got)
	}
	list, err := n.eng.Conflicts(ctx, "lw", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Lost.Node != "other" || list[0].Won.Node != "t" || list[0].Values[1] != "stale" || *list[0].RowID != 1 {
		t.Fatalf("conflicts: %s; want the stale write, lost to this node's", jsonOf(list))
	}
	// Newer, made on top of ours: it wins, and is no conflict.
	seq = other(mine.Timestamp+int64(time.Hour), &change.Version{Timestamp: mine.Timestamp, Node: "t"}, "newer")
	if got := read(seq); got != "newer" {
		t.Errorf("row after a later write: %q, want \"newer\"", got)
	}
	if list, _ := n.eng.Conflicts(ctx, "lw", 10); len(list) != 1 {
		t.Errorf("%d conflicts after a write on top of the row's version, want still 1", len(list))
	}
	// This node's clock follows: its next write wins over the newer one.
	mustExec(t, db, "UPDATE t SET v = 'again' WHERE id = 1", nil)
	if got := read(0); got != "again" {
		t.Errorf("row after this node's next write: %q, want \"again\"", got)
	}
}
