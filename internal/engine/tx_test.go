package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"

	"github.com/prometheus/client_golang/prometheus"
)

func txExec(t testing.TB, tx *Tx, sql string) *sqlite.Result {
	t.Helper()
	res, err := tx.Exec(context.Background(), sqlite.Statement{SQL: sql})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return res
}

func count(t testing.TB, db *DB, table string) int64 {
	t.Helper()
	return mustExec(t, db, "SELECT count(*) FROM "+table, nil).Results[0].Rows[0][0].(int64)
}

// TestTxCommitIsOneMessage: a transaction's writes commit together as one
// stream message, and a rolled-back one leaves nothing.
func TestTxCommitIsOneMessage(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "tx")
	defer release()
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", nil)
	before := db.Applied()

	tx := db.Begin(false)
	txExec(t, tx, "SELECT count(*) FROM t") // starts on a reader
	txExec(t, tx, "INSERT INTO t (v) VALUES ('a')")
	txExec(t, tx, "INSERT INTO t (v) VALUES ('b')")
	if got := txExec(t, tx, "SELECT count(*) FROM t").Rows[0][0]; got != int64(2) {
		t.Fatalf("the transaction sees %v rows, want its own 2", got)
	}
	seq, err := tx.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if seq != before+1 || db.Applied() != seq {
		t.Fatalf("commit at %d (applied %d), want one message at %d", seq, db.Applied(), before+1)
	}
	if got := count(t, db, "t"); got != 2 {
		t.Fatalf("%d rows after commit, want 2", got)
	}

	tx = db.Begin(false)
	txExec(t, tx, "INSERT INTO t (v) VALUES ('c')")
	tx.Rollback()
	if got := count(t, db, "t"); got != 2 || db.Applied() != seq {
		t.Fatalf("after rollback: %d rows, applied %d; want 2 rows at %d", got, db.Applied(), seq)
	}
}

// TestTxSavepoints: ROLLBACK TO undoes the changes since the savepoint in
// SQLite and in the published message; RELEASE keeps them.
func TestTxSavepoints(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	ctx := context.Background()
	db, release := n.createDB(t, "sp")
	defer release()
	mustExec(t, db, "CREATE TABLE t (v TEXT)", nil)

	tx := db.Begin(false)
	if err := tx.Savepoint(ctx, "early"); err != nil { // set while reading only
		t.Fatal(err)
	}
	txExec(t, tx, "INSERT INTO t VALUES ('kept')")
	if err := tx.Savepoint(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	txExec(t, tx, "INSERT INTO t VALUES ('undone')")
	if err := tx.RollbackTo(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Savepoint(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	txExec(t, tx, "INSERT INTO t VALUES ('released')")
	if err := tx.Release(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := tx.RollbackTo(ctx, "nope"); tenant.ErrorCode(err) != tenant.ENOTFOUND {
		t.Fatalf("rollback to an unknown savepoint: %v, want ENOTFOUND", err)
	}
	seq, err := tx.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := jsonOf(mustExec(t, db, "SELECT v FROM t ORDER BY rowid", nil).Results[0].Rows)
	if got != `[["kept"],["released"]]` {
		t.Fatalf("rows %s", got)
	}
	raw, err := db.stream.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	if msg := string(raw.Data); strings.Contains(msg, "undone") || !strings.Contains(msg, "released") {
		t.Fatalf("message %s: want the released row and not the undone one", msg)
	}
}

// TestTxSerializationFailure: a transaction whose read snapshot was
// overtaken by another commit fails at its first write with ECONFLICT.
func TestTxSerializationFailure(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "ser")
	defer release()
	mustExec(t, db, "CREATE TABLE t (v INTEGER)", nil)
	tx := db.Begin(false)
	txExec(t, tx, "SELECT count(*) FROM t")
	mustExec(t, db, "INSERT INTO t VALUES (1)", nil)
	_, err := tx.Exec(context.Background(), sqlite.Statement{SQL: "INSERT INTO t VALUES (2)"})
	if tenant.ErrorCode(err) != tenant.ECONFLICT {
		t.Fatalf("got %v, want ECONFLICT", err)
	}
	tx.Rollback()
	if got := count(t, db, "t"); got != 1 {
		t.Fatalf("%d rows, want 1", got)
	}
}

// TestReadOnlyTx: a read-only transaction cannot write.
func TestReadOnlyTx(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "ro")
	defer release()
	mustExec(t, db, "CREATE TABLE t (v INTEGER)", nil)
	tx := db.Begin(true)
	defer tx.Rollback()
	if _, err := tx.Exec(context.Background(), sqlite.Statement{SQL: "INSERT INTO t VALUES (1)"}); tenant.ErrorCode(err) != tenant.EFORBIDDEN {
		t.Fatalf("got %v, want EFORBIDDEN", err)
	}
}

// TestWriteTextsBounded: a tenant sending 100,000 distinct write texts
// (literals instead of parameters) keeps the node's memory flat.
func TestWriteTextsBounded(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "lru")
	defer release()
	mustExec(t, db, "CREATE TABLE t (v INTEGER)", nil)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	const total = 100_000
	stmts := make([]sqlite.Statement, 1)
	var base uint64
	for i := range total {
		if i == total/10 {
			base = heap()
		}
		// Each request is a new text; the delete keeps the table empty,
		// so only the remembered texts could grow.
		stmts[0].SQL = fmt.Sprintf("DELETE FROM t WHERE v = %d", i)
		if _, err := db.Exec(context.Background(), stmts, ExecOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := db.texts.len(); got > defaultTexts {
		t.Fatalf("%d write texts remembered, want at most %d", got, defaultTexts)
	}
	grown := int64(heap()) - int64(base)
	t.Logf("heap grew %d KB over the last %d distinct statements", grown/1024, total*9/10)
	if grown > 8<<20 {
		t.Fatalf("heap grew %d MB over %d distinct statements", grown>>20, total*9/10)
	}
}

// TestMetricsWhileOpening scrapes the metrics while databases open and
// close (run with -race: the scrape must not read a database whose open
// has not finished).
func TestMetricsWhileOpening(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	ctx := context.Background()
	for i := range 4 {
		if _, err := n.eng.Create(ctx, tenant.Config{Name: fmt.Sprintf("m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ch := make(chan prometheus.Metric)
			go func() {
				n.eng.Metrics().Collect(ch)
				close(ch)
			}()
			for range ch {
			}
		}
	}()
	for round := range 20 {
		name := fmt.Sprintf("m%d", round%4)
		_, release, err := n.eng.Acquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		release()
		n.eng.closeDB(name)
	}
	close(stop)
	wg.Wait()
}

// TestCreateAfterHalfCreate: a registry entry left without a stream by a
// create that failed half-way does not block the name forever; one still
// being created (younger than createGrace) is not taken over by a create
// that asks for something else, and is finished by the same request
// again (a client retrying a create that answered 503); a finished
// database still answers ECONFLICT to the same request.
func TestCreateAfterHalfCreate(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	ctx := context.Background()
	young := tenant.Config{Name: "young", Mode: tenant.ModeStrong, Replicas: 1, CreatedAt: time.Now().UTC()}
	old := tenant.Config{Name: "old", Mode: tenant.ModeStrong, Replicas: 1, CreatedAt: time.Now().Add(-2 * createGrace).UTC()}
	for _, cfg := range []tenant.Config{young, old} {
		if err := n.eng.Registry.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.eng.Create(ctx, tenant.Config{Name: "young", Mode: tenant.ModeEventual}); tenant.ErrorCode(err) != tenant.ECONFLICT {
		t.Fatalf("another create over a create in progress: %v, want ECONFLICT", err)
	}
	if _, err := n.eng.Create(ctx, tenant.Config{Name: "young"}); err != nil {
		t.Fatalf("the same create again: %v", err)
	}
	if _, err := n.eng.Create(ctx, tenant.Config{Name: "young"}); tenant.ErrorCode(err) != tenant.ECONFLICT {
		t.Fatalf("the same create of a finished database: %v, want ECONFLICT", err)
	}
	if _, err := n.eng.Create(ctx, tenant.Config{Name: "old"}); err != nil {
		t.Fatalf("create over a half-created database: %v", err)
	}
	for _, name := range []string{"young", "old"} {
		db, release, err := n.eng.Acquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, "CREATE TABLE t (x)", nil)
		release()
	}
}

// TestClientShareOfReaders: many concurrent readers taken for one client
// never hold more than all of the database's readers but one, and every
// slot comes back.
func TestClientShareOfReaders(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "share")
	defer release()
	ctx := WithClient(context.Background(), "one token")
	var held, most atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, share, err := db.reader(ctx, time.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
				return
			}
			h := held.Add(1)
			for {
				m := most.Load()
				if h <= m || most.CompareAndSwap(m, h) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			held.Add(-1)
			db.putBack(r, share)
		}()
	}
	wg.Wait()
	if got, limit := most.Load(), int32(cap(db.readerSem)-1); got != limit {
		t.Fatalf("one client held up to %d readers at once, want exactly %d", got, limit)
	}
	// Every slot came back; a database keeps a few idle shares, and no
	// more however many clients came.
	for i := range 100 {
		r, h, err := db.reader(WithClient(context.Background(), fmt.Sprint("token ", i)), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		db.putBack(r, h)
	}
	db.clients.mu.Lock()
	defer db.clients.mu.Unlock()
	if n := len(db.clients.held); n != keepIdleShares || db.clients.idle != n {
		t.Fatalf("%d client shares kept (%d idle), want %d", n, db.clients.idle, keepIdleShares)
	}
	for client, sh := range db.clients.held {
		if sh.refs != 0 || len(sh.sem) != 0 {
			t.Fatalf("%s: %d references, %d readers held after every reader came back", client, sh.refs, len(sh.sem))
		}
	}
}

// TestReaderWaitEndsAtDeadline: a read that waits for a reader (all
// busy), or for its client's share, gives up at its deadline, and the
// readers it waited for are all there afterwards.
func TestReaderWaitEndsAtDeadline(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "busy")
	defer release()
	var puts []func()
	for i := range cap(db.readerSem) {
		client := "hog" // holds all but one, its share
		if i == 0 {
			client = "other"
		}
		r, h, err := db.reader(WithClient(context.Background(), client), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		puts = append(puts, func() { db.putBack(r, h) })
	}
	for _, client := range []string{"", "hog"} {
		start := time.Now()
		_, _, err := db.reader(WithClient(context.Background(), client), start.Add(100*time.Millisecond))
		if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took < 100*time.Millisecond || took > 5*time.Second {
			t.Fatalf("client %q: %v after %v, want the deadline's error after 100ms", client, err, took)
		}
	}
	for _, put := range puts {
		put()
	}
	if r, h, err := db.reader(context.Background(), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	} else {
		db.putBack(r, h)
	}
	if len(db.readerSem) != 0 {
		t.Fatalf("%d readers still held", len(db.readerSem))
	}
}

// TestSelectTextThatWrites: a lone text starting with SELECT goes to a
// reader without being classified first; one that holds a write after
// its SELECT must still run as a write, and be refused to a read-only
// request, and a SELECT that does not prepare reports its error.
func TestSelectTextThatWrites(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "sel")
	defer release()
	mustExec(t, db, "CREATE TABLE t (v INTEGER)", nil)
	ctx := context.Background()
	sneaky := []sqlite.Statement{{SQL: "SELECT 1; INSERT INTO t VALUES (7)"}}
	for range 2 { // the second time, the text is known as a write
		if _, err := db.Exec(ctx, sneaky, ExecOptions{ReadOnly: true}); tenant.ErrorCode(err) != tenant.EFORBIDDEN {
			t.Fatalf("read-only: got %v, want EFORBIDDEN", err)
		}
	}
	res, err := db.Exec(ctx, sneaky, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq == 0 {
		t.Fatalf("the write was not replicated: %+v", res)
	}
	if got := mustExec(t, db, "SELECT count(*) FROM t WHERE v = 7", nil).Results[0].Rows[0][0]; got != int64(1) {
		t.Fatalf("count = %v, want 1", got)
	}
	if _, err := db.Exec(ctx, []sqlite.Statement{{SQL: "SELECT nope FROM t"}}, ExecOptions{}); tenant.ErrorCode(err) != tenant.EINVALID {
		t.Fatalf("bad select: got %v, want EINVALID", err)
	}
}

// TestSubmitAfterClose: requests that reach a database as it closes fail
// with EUNAVAILABLE instead of waiting forever. The send to the writer's
// buffered queue and the closed channel are both ready then, so a
// request could land in the queue after the writer's last drain (a node's
// shutdown hung on it, with its follow loop waiting in submit).
func TestSubmitAfterClose(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	db, release := n.createDB(t, "closing")
	release()
	n.eng.closeDB("closing")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			o := &op{ctx: context.Background(), done: make(chan struct{}), fn: func(*sqlite.Conn) error { return nil }}
			if err := db.submit(context.Background(), o); tenant.ErrorCode(err) != tenant.EUNAVAILABLE {
				t.Errorf("submit after close: %v", err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("submit after close hung")
	}
}

// TestKeptReadTransactions: single reads run in a read transaction their
// reader keeps while nothing is committed; every read after a commit sees
// it (with readers busy and idle, and concurrent reads), and a kept
// transaction does not keep the WAL from being checkpointed once its
// reader is idle. In memory mode (no WAL, where a reader's open
// transaction would hold off the writer) none is kept, and the same
// reads and writes go through.
func TestKeptReadTransactions(t *testing.T) {
	for _, memory := range []bool{false, true} {
		t.Run(map[bool]string{false: "file", true: "memory"}[memory], func(t *testing.T) {
			testKeptReadTransactions(t, memory)
		})
	}
}

func testKeptReadTransactions(t *testing.T, memory bool) {
	n := newTestNodeOpts(t, t.TempDir(), false, func(e *Engine) { e.Memory = memory })
	db, release := n.createDB(t, "kept")
	defer release()
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)", nil)
	count := func() int64 {
		t.Helper()
		res := mustExec(t, db, "SELECT count(*) FROM t", nil)
		return res.Results[0].Rows[0][0].(int64)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad atomic.Int64
	for range 4 { // keep the readers busy, each seeing no fewer rows than before
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last int64
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := db.Exec(context.Background(), []sqlite.Statement{{SQL: "SELECT count(*) FROM t"}}, ExecOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				if c := res.Results[0].Rows[0][0].(int64); c < last {
					bad.Add(1)
				} else {
					last = c
				}
			}
		}()
	}
	for i := range 200 {
		if c := count(); c != int64(i) {
			t.Fatalf("before insert %d: %d rows", i, c)
		}
		mustExec(t, db, "INSERT INTO t VALUES (?)", []any{int64(i)})
		if c := count(); c != int64(i+1) {
			t.Fatalf("after insert %d acknowledged: %d rows", i, c)
		}
	}
	close(stop)
	wg.Wait()
	if b := bad.Load(); b > 0 {
		t.Fatalf("%d reads went back in time", b)
	}
	// Every reader is idle now, most keeping a transaction from before
	// the last commit: the checkpointer ends them and copies every frame.
	mustExec(t, db, "INSERT INTO t VALUES (1000)", nil)
	count()
	if memory {
		return
	}
	c, err := sqlite.Open(n.eng.dsn("kept"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(checkpointEvery)
		all, err := checkpoint(c)
		if err != nil {
			t.Fatal(err)
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the WAL is still held back from the checkpoint")
		}
	}
}
