package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPGTransactions checks BEGIN..COMMIT/ROLLBACK, the transaction status
// in ReadyForQuery, 25P02 after an error, 40001 when the data a
// transaction read changed before it wrote, and rollback on disconnect.
func TestPGTransactions(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("bank")
	ctx := context.Background()
	a := n.pgConnect("bank", n.admin)
	b := n.pgConnect("bank", n.admin)
	mustExec := func(c *pgx.Conn, sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	count := func(c *pgx.Conn) int64 {
		t.Helper()
		var n int64
		if err := c.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	mustExec(a, "CREATE TABLE acct (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
	mustExec(a, "INSERT INTO acct VALUES (1, 100), (2, 100)")

	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := a.PgConn().TxStatus(); s != 'T' {
		t.Fatalf("status after BEGIN %c", s)
	}
	if _, err := tx.Exec(ctx, "UPDATE acct SET balance = balance - 30 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE acct SET balance = balance + 30 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	var inside int64
	if err := tx.QueryRow(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&inside); err != nil || inside != 70 {
		t.Fatalf("inside the transaction: %d %v", inside, err)
	}
	var outside int64
	if err := b.QueryRow(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&outside); err != nil || outside != 100 {
		t.Fatalf("outside before commit: %d %v", outside, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if s := a.PgConn().TxStatus(); s != 'I' {
		t.Fatalf("status after COMMIT %c", s)
	}
	if err := b.QueryRow(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&outside); err != nil || outside != 70 {
		t.Fatalf("after commit: %d %v", outside, err)
	}
	// The transaction is one message in the stream.
	body := n.ok("POST", "/db/bank", `{"sql":"SELECT sum(balance) FROM acct"}`)
	if !strings.Contains(body, `[[200]]`) {
		t.Fatalf("HTTP sees %s", body)
	}

	// Rollback.
	mustExec(a, "BEGIN")
	mustExec(a, "INSERT INTO acct VALUES (3, 5)")
	if count(a) != 3 {
		t.Fatal("insert not visible in its transaction")
	}
	mustExec(a, "ROLLBACK")
	if count(a) != 2 {
		t.Fatal("rolled-back insert visible")
	}

	// An error aborts the block until ROLLBACK.
	mustExec(a, "BEGIN")
	_, err = a.Exec(ctx, "INSERT INTO acct VALUES (1, 0)")
	wantState(t, err, "23505")
	if s := a.PgConn().TxStatus(); s != 'E' {
		t.Fatalf("status after an error %c", s)
	}
	_, err = a.Exec(ctx, "SELECT 1")
	wantState(t, err, "25P02")
	if ct, err := a.PgConn().Exec(ctx, "COMMIT").ReadAll(); err != nil || ct[0].CommandTag.String() != "ROLLBACK" {
		t.Fatalf("COMMIT of a failed block: %v %v", ct, err)
	}

	// A transaction that read, then writes after another commit: 40001.
	mustExec(a, "BEGIN")
	var bal int64
	if err := a.QueryRow(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&bal); err != nil {
		t.Fatal(err)
	}
	mustExec(b, "UPDATE acct SET balance = balance + 1 WHERE id = 1")
	_, err = a.Exec(ctx, "UPDATE acct SET balance = $1 WHERE id = 1", bal-10)
	wantState(t, err, "40001")
	mustExec(a, "ROLLBACK")
	if err := a.QueryRow(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&bal); err != nil || bal != 71 {
		t.Fatalf("balance after the refused write: %d %v", bal, err)
	}

	// Disconnecting rolls back, and frees the writer for others.
	c := n.pgConnect("bank", n.admin)
	mustExec(c, "BEGIN")
	mustExec(c, "INSERT INTO acct VALUES (4, 1)")
	c.Close(ctx)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := b.Exec(wctx, "INSERT INTO acct VALUES (5, 1)"); err != nil {
		t.Fatalf("write after a disconnected transaction: %v", err)
	}
	rows, _ := b.Query(ctx, "SELECT id FROM acct ORDER BY id")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[1 2 5]" {
		t.Fatalf("ids %v", ids)
	}
}

// TestPGSavepoints: ROLLBACK TO undoes the changes since a savepoint, in
// the copy and in the replicated message, and ends a block's failed state;
// RELEASE keeps them.
func TestPGSavepoints(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("sp")
	ctx := context.Background()
	c := n.pgConnect("sp", n.admin)
	run := func(sql string) error {
		_, err := c.Exec(ctx, sql)
		return err
	}
	for _, sql := range []string{
		"CREATE TABLE t (id INTEGER PRIMARY KEY)",
		"BEGIN",
		"SAVEPOINT before_reads", // set while the transaction only reads
		"SELECT count(*) FROM t",
		"INSERT INTO t VALUES (1)",
		"SAVEPOINT a",
		"INSERT INTO t VALUES (2)",
		"ROLLBACK TO SAVEPOINT a",
	} {
		if err := run(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	wantState(t, run("INSERT INTO t VALUES (1)"), "23505")
	if s := c.PgConn().TxStatus(); s != 'E' {
		t.Fatalf("status after an error %c", s)
	}
	if err := run("ROLLBACK TO a"); err != nil {
		t.Fatal(err)
	}
	if s := c.PgConn().TxStatus(); s != 'T' {
		t.Fatalf("status after ROLLBACK TO %c", s)
	}
	for _, sql := range []string{"SAVEPOINT b", "INSERT INTO t VALUES (3)", "RELEASE SAVEPOINT b", "SAVEPOINT c", "INSERT INTO t VALUES (4)", "ROLLBACK TO c", "COMMIT"} {
		if err := run(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if got := n.ok("POST", "/db/sp", `{"sql":"SELECT id FROM t ORDER BY id"}`); !strings.Contains(got, `"rows":[[1],[3]]`) {
		t.Fatalf("rows %s", got)
	}
	// The stream's message of the transaction holds exactly rows 1 and 3.
	stream, err := dbJS(t, n, "sp").Stream(ctx, "HASVC_sp")
	if err != nil {
		t.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, "hasvc.db.sp")
	if err != nil {
		t.Fatal(err)
	}
	msg := string(last.Data)
	if !strings.Contains(msg, `"new_values":[1]`) || !strings.Contains(msg, `"new_values":[3]`) ||
		strings.Contains(msg, `"new_values":[2]`) || strings.Contains(msg, `"new_values":[4]`) {
		t.Fatalf("message %s", msg)
	}
	wantState(t, run("BEGIN; ROLLBACK TO nope"), "3B001")
	run("ROLLBACK")
}

// TestPGPipelineIsOneTransaction: the Executes a client sends before Sync
// (a pgx batch) commit together, as one message, or not at all.
func TestPGPipelineIsOneTransaction(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("pipe")
	ctx := context.Background()
	c := n.pgConnect("pipe", n.admin)
	if _, err := c.Exec(ctx, "CREATE TABLE u (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	streamSeq := func() uint64 {
		var info struct {
			StreamSeq uint64 `json:"stream_seq"`
		}
		if err := json.Unmarshal([]byte(n.ok("GET", "/databases/pipe", "")), &info); err != nil {
			t.Fatal(err)
		}
		return info.StreamSeq
	}
	before := streamSeq()

	b := &pgx.Batch{}
	b.Queue("INSERT INTO u VALUES ($1)", 1)
	b.Queue("INSERT INTO u VALUES ($1)", 2)
	b.Queue("INSERT INTO u VALUES ($1)", 1) // fails: the whole batch rolls back
	err := c.SendBatch(ctx, b).Close()
	wantState(t, err, "23505")

	b = &pgx.Batch{}
	b.Queue("INSERT INTO u VALUES ($1)", 10)
	var seen int64
	b.Queue("SELECT count(*) FROM u").QueryRow(func(r pgx.Row) error { return r.Scan(&seen) })
	b.Queue("INSERT INTO u VALUES ($1) RETURNING id", 11)
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if seen != 1 {
		t.Fatalf("the batch's read saw %d rows, want its own insert", seen)
	}
	rows, _ := c.Query(ctx, "SELECT id FROM u ORDER BY id")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[10 11]" {
		t.Fatalf("rows %v", ids)
	}
	if after := streamSeq(); after != before+1 {
		t.Fatalf("stream went from %d to %d: want one message for the batch", before, after)
	}
}

// TestPGManyOpenTransactions: more sessions than a database has readers
// sit in transactions that have read (as drivers that never autocommit
// leave them); reads from other sessions still run, and each of those
// transactions can still prepare and run statements.
func TestPGManyOpenTransactions(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("open")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	setup := n.pgConnect("open", n.admin)
	if _, err := setup.Exec(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	var txs []*pgx.Conn
	for range 10 {
		c := n.pgConnect("open", n.admin)
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		var cnt int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&cnt); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, c)
	}
	// Ten snapshots are open; an autocommit read still runs.
	var cnt int
	if err := setup.QueryRow(ctx, "SELECT count(*) FROM t WHERE id > $1", 0).Scan(&cnt); err != nil {
		t.Fatalf("read while transactions are open: %v", err)
	}
	// Each transaction prepares a new statement (parameter types, Describe)
	// and writes; the first commits, the others read data that has changed
	// since and get 40001.
	committed := 0
	for i, c := range txs {
		_, err := c.Exec(ctx, "INSERT INTO t (id, v) VALUES ($1, $2)", i, "x")
		if err == nil {
			_, err = c.Exec(ctx, "COMMIT")
		}
		switch {
		case err == nil:
			committed++
		case sqlstate(err) == "40001":
			c.Exec(ctx, "ROLLBACK")
		default:
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	if committed != 1 {
		t.Fatalf("%d transactions committed, want 1", committed)
	}
}

// TestPGSequence: every committed write reports its stream sequence
// (ParameterStatus hasvc.sequence, SHOW hasvc.sequence), from a statement,
// a transaction block and a batch; hasvc.min_seq makes reads wait for it.
func TestPGSequence(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("seq")
	ctx := context.Background()
	c := n.pgConnect("seq", n.admin)
	reported := func() string { return c.PgConn().ParameterStatus("hasvc.sequence") }
	show := func() string {
		var s string
		if err := c.QueryRow(ctx, "SHOW hasvc.sequence").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := show(); got != "0" || reported() != "" {
		t.Fatalf("before any write: %q / %q", got, reported())
	}
	if _, err := c.Exec(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if reported() != "1" || show() != "1" {
		t.Fatalf("after the first write: %q / %q", reported(), show())
	}
	if err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO t VALUES (1)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if reported() != "2" {
		t.Fatalf("after a transaction: %q", reported())
	}
	b := &pgx.Batch{}
	b.Queue("INSERT INTO t VALUES (2)")
	b.Queue("INSERT INTO t VALUES (3)")
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if reported() != "3" || show() != "3" {
		t.Fatalf("after a batch: %q / %q", reported(), show())
	}
	_, err := c.Exec(ctx, "SET hasvc.sequence = 7")
	wantState(t, err, "55P02")
	_, err = c.Exec(ctx, "SET hasvc.min_seq = 'soon'")
	wantState(t, err, "22023")

	// A session asking for a sequence this node has reached reads at
	// once; one asking for a sequence nobody wrote times out.
	cfg, err := pgx.ParseConfig(n.pgDSN("seq", n.admin) + " options='-c hasvc.min_seq=3'")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var cnt int64
	if err := other.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&cnt); err != nil || cnt != 3 {
		t.Fatalf("%d rows, %v", cnt, err)
	}
	if _, err := other.Exec(ctx, "SET hasvc.min_seq = 1000"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = other.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&cnt)
	wantState(t, err, "57014")
	if took := time.Since(start); took < 4*time.Second || took > 15*time.Second {
		t.Fatalf("waited %v for an unreached sequence, want about 5s", took)
	}
	_, err = other.Exec(ctx, "BEGIN")
	if err == nil {
		_, err = other.Exec(ctx, "SELECT count(*) FROM t")
	}
	wantState(t, err, "57014")
}

// TestPGReadOnlyTransactions: a READ ONLY transaction (BEGIN READ ONLY,
// START TRANSACTION READ ONLY, SET TRANSACTION READ ONLY, pgx's
// AccessMode, default_transaction_read_only) reads and refuses writes with
// 25006, as in PostgreSQL, and leaves the data as it was.
func TestPGReadOnlyTransactions(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("ro")
	ctx := context.Background()
	c := n.pgConnect("ro", n.admin)
	exec := func(sql string) error {
		_, err := c.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	if err := exec("INSERT INTO t VALUES (1, 'one')"); err != nil {
		t.Fatal(err)
	}
	show := func() string {
		var v string
		if err := c.QueryRow(ctx, "SHOW transaction_read_only").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, begin := range [][]string{
		{"BEGIN READ ONLY"},
		{"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY"},
		{"BEGIN", "SET TRANSACTION READ ONLY"},
	} {
		for _, sql := range begin {
			if err := exec(sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		if got := show(); got != "on" {
			t.Errorf("%v: transaction_read_only = %s, want on", begin, got)
		}
		var v string
		if err := c.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "one" {
			t.Errorf("%v: read %q %v", begin, v, err)
		}
		wantState(t, exec("INSERT INTO t VALUES (2, 'two')"), "25006")
		if err := exec("ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	}
	if got := show(); got != "off" {
		t.Errorf("after the read-only transactions: transaction_read_only = %s, want off", got)
	}

	// pgx's own way, and READ WRITE at BEGIN overriding the default.
	tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "UPDATE t SET v = 'changed'")
	wantState(t, err, "25006")
	tx.Rollback(ctx)
	if err := exec("SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	wantState(t, exec("DELETE FROM t"), "25006")
	if err := exec("BEGIN READ WRITE"); err != nil {
		t.Fatal(err)
	}
	if err := exec("INSERT INTO t VALUES (3, 'three')"); err != nil {
		t.Errorf("INSERT in BEGIN READ WRITE with the default read only: %v", err)
	}
	if err := exec("COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := exec("RESET default_transaction_read_only"); err != nil {
		t.Fatal(err)
	}
	// The access mode is set before the first statement: after it, an
	// error that aborts the block.
	if err := exec("BEGIN"); err != nil {
		t.Fatal(err)
	}
	if err := exec("INSERT INTO t VALUES (4, 'four')"); err != nil {
		t.Fatal(err)
	}
	wantState(t, exec("SET TRANSACTION READ ONLY"), "25001")
	if err := exec("ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	var count int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&count); err != nil || count != 2 {
		t.Errorf("rows: %d %v, want 2 (one, three)", count, err)
	}
}
