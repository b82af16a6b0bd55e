package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/broker"
	"hasvc/internal/change"
	"hasvc/internal/registry"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// testNode is an engine on a real embedded NATS server.
type testNode struct {
	eng *Engine
	srv *broker.Server
	js  jetstream.JetStream
}

func newTestNode(t testing.TB, dir string) *testNode {
	t.Helper()
	return newTestNodeWith(t, dir, false)
}

// newTestNodeWith is newTestNode whose databases, with accounts, go to the
// databases' NATS accounts, as a node's with its embedded server do.
func newTestNodeWith(t testing.TB, dir string, accounts bool) *testNode {
	t.Helper()
	return newTestNodeOpts(t, dir, accounts, nil)
}

// newTestNodeOpts is newTestNodeWith whose engine, with set, is set up
// further before it opens.
func newTestNodeOpts(t testing.TB, dir string, accounts bool, set func(*Engine)) *testNode {
	t.Helper()
	return newTestNodeFsync(t, dir, accounts, "", func(e *Engine, _ *broker.Server) {
		if set != nil {
			set(e)
		}
	})
}

// newTestNodeFsync is newTestNodeOpts with the server's fsync policy
// (broker.Config.Fsync), whose set also gets the server.
func newTestNodeFsync(t testing.TB, dir string, accounts bool, fsync string, set func(*Engine, *broker.Server)) *testNode {
	t.Helper()
	srv, err := broker.Start(broker.Config{Name: "t", Host: "127.0.0.1", Port: -1, StoreDir: filepath.Join(dir, "js"), User: "u", Password: "p", Fsync: fsync})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg, err := registry.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{DataDir: dir, Node: "t", NC: nc, JS: js, Registry: reg}
	if accounts {
		e.Accounts = true
		e.ConnectAccount = func(account string) (*nats.Conn, jetstream.JetStream, error) {
			nc, err := srv.ConnectAccount("test", account)
			if err != nil {
				return nil, nil, err
			}
			js, err := jetstream.New(nc)
			return nc, js, err
		}
	}
	if set != nil {
		set(e, srv)
	}
	if err := e.Open(ctx); err != nil {
		t.Fatal(err)
	}
	n := &testNode{eng: e, srv: srv, js: js}
	t.Cleanup(n.close)
	return n
}

func (n *testNode) close() {
	if n.eng == nil {
		return
	}
	n.eng.Close()
	n.eng.NC.Close()
	n.srv.Shutdown()
	n.eng = nil
}

// createDB creates database name and opens it.
func (n *testNode) createDB(t testing.TB, name string) (*DB, func()) {
	t.Helper()
	return n.createDBWith(t, tenant.Config{Name: name})
}

// createDBWith creates the database cfg names, as cfg says, and opens it.
func (n *testNode) createDBWith(t testing.TB, cfg tenant.Config) (*DB, func()) {
	t.Helper()
	ctx := context.Background()
	if _, err := n.eng.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	db, release, err := n.eng.Acquire(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	return db, release
}

func mustExec(t testing.TB, db *DB, sql string, params any) *ExecResult {
	t.Helper()
	res, err := db.Exec(context.Background(), []sqlite.Statement{{SQL: sql, Params: params}}, ExecOptions{})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return res
}

func TestWriteCaptureAndRestart(t *testing.T) {
	dir := t.TempDir()
	n := newTestNode(t, dir)
	ctx := context.Background()
	db, release := n.createDB(t, "app")
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v ANY)", nil)
	res := mustExec(t, db, "INSERT INTO t (v) VALUES (?), (?), (?), (?), (?)", []any{int64(-9223372036854775808), 0.1, "héllo", []byte{0, 1, 2}, nil})
	if got, want := res.Seq, uint64(2); got != want {
		t.Fatalf("seq = %d, want %d", got, want)
	}
	got := mustExec(t, db, "SELECT v, typeof(v) FROM t ORDER BY id", nil).Results[0].Rows
	want := [][]any{{int64(-9223372036854775808), "integer"}, {0.1, "real"}, {"héllo", "text"}, {[]byte{0, 1, 2}, "blob"}, {nil, "null"}}
	if a, b := jsonOf(got), jsonOf(want); a != b {
		t.Fatalf("rows = %s, want %s", a, b)
	}
	release()
	n.close()

	// Reopen on the same data directory: the copy holds everything and
	// nothing is applied twice.
	n2 := newTestNode(t, dir)
	db, release, err := n2.eng.Acquire(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if got := db.Applied(); got != 2 {
		t.Fatalf("applied = %d, want 2", got)
	}
	got = mustExec(t, db, "SELECT v, typeof(v) FROM t ORDER BY id", nil).Results[0].Rows
	if a, b := jsonOf(got), jsonOf(want); a != b {
		t.Fatalf("after restart rows = %s, want %s", a, b)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCatchUpFromStream(t *testing.T) {
	dir := t.TempDir()
	n := newTestNode(t, dir)
	ctx := context.Background()
	db, release := n.createDB(t, "app")
	mustExec(t, db, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID", nil)
	mustExec(t, db, "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, msg TEXT)", nil)
	mustExec(t, db, "CREATE TRIGGER tl AFTER INSERT ON t BEGIN INSERT INTO log (msg) VALUES ('ins ' || new.k); END", nil)
	for i := range 20 {
		mustExec(t, db, "INSERT INTO t VALUES (:k, :v) ON CONFLICT (k) DO UPDATE SET v = excluded.v", map[string]any{"k": string(rune('a' + i%5)), "v": int64(i)})
	}
	mustExec(t, db, "DELETE FROM t WHERE k = 'a'", nil)
	mustExec(t, db, "INSERT OR REPLACE INTO log (id, msg) VALUES (1, 'replaced')", nil)
	want := jsonOf(mustExec(t, db, "SELECT * FROM t ORDER BY k", nil).Results[0].Rows) +
		jsonOf(mustExec(t, db, "SELECT * FROM log ORDER BY id", nil).Results[0].Rows)
	release()
	n.close()

	// Lose the SQLite file: the stream alone rebuilds the same database.
	for _, s := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(filepath.Join(dir, "db", "app.db"+s))
	}
	n2 := newTestNode(t, dir)
	db, release, err := n2.eng.Acquire(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	got := jsonOf(mustExec(t, db, "SELECT * FROM t ORDER BY k", nil).Results[0].Rows) +
		jsonOf(mustExec(t, db, "SELECT * FROM log ORDER BY id", nil).Results[0].Rows)
	if got != want {
		t.Fatalf("rebuilt = %s\nwant      %s", got, want)
	}
}

// TestApplyTwiceChangesNothing applies every message of a stream a second
// time: by sequence (what redelivery does) nothing happens, and even
// written again row by row the copy stays the same.
func TestApplyTwiceChangesNothing(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	ctx := context.Background()
	db, release := n.createDB(t, "app")
	defer release()
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)", nil)
	mustExec(t, db, "CREATE TABLE k (a TEXT, b INTEGER, v REAL, PRIMARY KEY (a, b)) WITHOUT ROWID", nil)
	for i := range 10 {
		mustExec(t, db, "INSERT INTO t (v, b) VALUES (?, ?)", []any{fmt.Sprint(i), []byte{byte(i)}})
		mustExec(t, db, "INSERT OR REPLACE INTO k VALUES ('x', ?, ?)", []any{int64(i % 3), float64(i) / 3})
	}
	mustExec(t, db, "UPDATE t SET id = id + 100 WHERE id < 4", nil)
	mustExec(t, db, "DELETE FROM k WHERE b = 1", nil)
	dump := func() string {
		return jsonOf(mustExec(t, db, "SELECT * FROM t ORDER BY id", nil).Results[0].Rows) +
			jsonOf(mustExec(t, db, "SELECT * FROM k ORDER BY a, b", nil).Results[0].Rows)
	}
	before := dump()
	last := db.Applied()

	var msgs []seqMessage
	for i, m := range streamMessages(t, db, last) {
		msgs = append(msgs, seqMessage{seq: uint64(i + 1), msg: m})
	}
	if err := db.do(ctx, func(*sqlite.Conn) error { return db.applyMessages(msgs) }); err != nil {
		t.Fatal(err)
	}
	if got := dump(); got != before || db.Applied() != last {
		t.Fatalf("redelivery changed the copy:\n%s\n%s", got, before)
	}
	// The row changes of the last messages, written again in order.
	err := db.do(ctx, func(w *sqlite.Conn) error {
		if err := w.ApplyMode(true); err != nil {
			return err
		}
		defer w.ApplyMode(false)
		for _, m := range msgs[len(msgs)-6:] {
			if err := w.ApplyChanges(m.msg.Changes, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := dump(); got != before {
		t.Fatalf("applying rows twice changed the copy:\n%s\n%s", got, before)
	}
}

// streamMessages returns messages 1..last of db's stream.
func streamMessages(t testing.TB, db *DB, last uint64) []change.Message {
	t.Helper()
	var out []change.Message
	for seq := uint64(1); seq <= last; seq++ {
		raw, err := db.stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		var m change.Message
		if err := json.Unmarshal(raw.Data, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
