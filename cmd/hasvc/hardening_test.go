package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"hasvc/internal/auth"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestNULByte: SQL holding a NUL byte is refused at once; it used to spin
// a goroutine forever (read token) or trap the database's writer (write
// token) because the statement splitter never advanced.
func TestNULByte(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("nul")
	n.ok("POST", "/db/nul", `{"sql": "CREATE TABLE pv (x)"}`)
	read := n.token(auth.PermRead, time.Hour, "nul")
	start := time.Now()
	status, body := n.do("POST", "/db/nul", read, `{"sql": "\u0000"}`)
	wantError(t, status, body, 400, "EINVALID")
	status, body = n.do("POST", "/db/nul", n.admin, `{"sql": "SELECT 1\u0000; DROP TABLE pv"}`)
	wantError(t, status, body, 400, "EINVALID")
	if !strings.Contains(body, "NUL byte") {
		t.Fatalf("message does not say why: %s", body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusals took %v", d)
	}
	// The writer is free and the table is still there.
	n.ok("POST", "/db/nul", `{"sql": "INSERT INTO pv VALUES (1)"}`)
	if got := n.ok("POST", "/db/nul", `{"sql": "SELECT count(*) FROM pv"}`); !strings.Contains(got, "[[1]]") {
		t.Fatalf("got %s", got)
	}
}

// TestDataDirLock: a second node on the same data directory refuses to
// start (both would answer the same sequence for different writes).
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	startNode(t, dir, nil)
	m := NewMain()
	m.Config.Name = "n2"
	m.Config.Host = "127.0.0.1"
	m.Config.Port = 0
	m.Config.NATSPort = -1
	m.Config.PGPort = -1
	m.Config.DataDir = dir
	err := m.Run(context.Background())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "in use by another hasvc process") {
		t.Fatalf("second node on the same directory: %v", err)
	}
}

// endless is a query that never ends by itself.
const endless = `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r`

// TestMaxStatementTime: a runaway statement is interrupted after the
// node's --max-statement-time, or its database's own max_statement_time,
// over HTTP (504 ETIMEOUT) and pgwire (57014), and the database serves
// the next request.
func TestMaxStatementTime(t *testing.T) {
	// The node's limit is far from the database's own, so that which one
	// held shows even on a loaded machine.
	n := startNode(t, t.TempDir(), func(c *Config) { c.MaxStatementTime = 3 * time.Second })
	n.createDB("slow")
	n.ok("POST", "/databases", `{"name": "quick", "max_statement_time": "150ms"}`)
	if got := n.ok("GET", "/databases/quick", ""); !strings.Contains(got, `"max_statement_time":"150ms"`) {
		t.Fatalf("status does not show the limit: %s", got)
	}
	read := n.token(auth.PermRead, time.Hour, "slow", "quick")
	for _, c := range []struct {
		db       string
		min, max time.Duration
	}{{"slow", 2500 * time.Millisecond, 15 * time.Second}, {"quick", 100 * time.Millisecond, 2 * time.Second}} {
		start := time.Now()
		status, body := n.do("POST", "/db/"+c.db, read, `{"sql": "`+endless+`"}`)
		took := time.Since(start)
		wantError(t, status, body, 504, "ETIMEOUT")
		if took < c.min || took > c.max {
			t.Errorf("%s: interrupted after %v, want between %v and %v", c.db, took, c.min, c.max)
		}
		// A write that runs away is stopped too, and writes go on.
		status, body = n.do("POST", "/db/"+c.db, n.admin, `[{"sql": "CREATE TABLE IF NOT EXISTS t (x)"}, {"sql": "INSERT INTO t `+endless+`"}]`)
		wantError(t, status, body, 504, "ETIMEOUT")
		n.ok("POST", "/db/"+c.db, `{"sql": "CREATE TABLE IF NOT EXISTS t (x)"}`)
	}
	status, body := n.do("POST", "/databases", n.admin, `{"name": "bad", "max_statement_time": "2h"}`)
	wantError(t, status, body, 400, "EINVALID")

	ctx := context.Background()
	pc := n.pgConnect("slow", n.admin)
	start := time.Now()
	var cnt int64
	err := pc.QueryRow(ctx, endless).Scan(&cnt)
	wantState(t, err, "57014")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("pgwire statement interrupted after %v", took)
	}
	if err := pc.QueryRow(ctx, "SELECT 1").Scan(&cnt); err != nil {
		t.Fatalf("the session does not go on: %v", err)
	}
}

// TestHTTPS serves the API over TLS with --tls-cert.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, t.TempDir())
	n := startNode(t, dir, func(c *Config) { c.TLSCert, c.TLSKey = cert, key })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest("GET", "https://"+n.m.HTTPAddr()+"/databases", nil)
	req.Header.Set("Authorization", "Bearer "+n.admin)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP to the TLS port gets no API.
	if resp, err := http.Get("http://" + n.m.HTTPAddr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
}

// TestPGUnauthenticatedSlots: connections that send a StartupMessage and
// never a password do not take the slots of clients that authenticate
// (105 such connections used to hold all 100 for 30 s).
func TestPGUnauthenticatedSlots(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *Config) { c.PGMaxConns = 3 })
	n.createDB("slots")
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 10 {
		c, err := net.Dial("tcp", n.m.PGAddr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "x", "database": "slots"}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		// The server asks for the password, which never comes.
		if msg, err := fe.Receive(); err != nil {
			t.Fatal(err)
		} else if _, ok := msg.(*pgproto3.AuthenticationCleartextPassword); !ok {
			t.Fatalf("got %T, want a password request", msg)
		}
	}
	ctx := context.Background()
	var one int
	for range 3 {
		c := n.pgConnect("slots", n.admin)
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	// The authenticated slots are full now.
	_, err := pgx.Connect(ctx, n.pgDSN("slots", n.admin))
	wantState(t, err, "53300")
}

// TestRepairStuckCopy: a copy that cannot apply a message of its stream
// is stuck (writes 503, status says why); POST /databases/<name>/repair
// rebuilds it from the stream and it serves again.
func TestRepairStuckCopy(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.createDB("fix")
	n.ok("POST", "/db/fix", `{"sql": "CREATE TABLE t (v TEXT)"}`)
	n.ok("POST", "/db/fix", `{"sql": "INSERT INTO t VALUES ('kept')"}`)
	n.stop()
	// Break the copy behind hasvc's back: its table is gone, and it
	// believes it has not applied the insert yet.
	db, err := sql.Open("sqlite3", filepath.Join(dir, "db", "fix.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DROP TABLE t; UPDATE _hasvc_state SET applied_seq = 1"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	n = startNode(t, dir, nil)
	status, body := n.do("POST", "/db/fix", n.admin, `{"sql": "INSERT INTO t VALUES ('new')"}`)
	wantError(t, status, body, 503, "EUNAVAILABLE")
	// A 503 says when to try again.
	req, _ := http.NewRequest("POST", n.url+"/db/fix", strings.NewReader(`{"sql": "INSERT INTO t VALUES ('new')"}`))
	req.Header.Set("Authorization", "Bearer "+n.admin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("503 without Retry-After: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if got := n.ok("GET", "/databases/fix", ""); !strings.Contains(got, `"stuck":"cannot apply message 2`) {
		t.Fatalf("status does not say the copy is stuck: %s", got)
	}
	status, body = n.do("POST", "/databases/fix/repair", n.token(auth.PermWrite, time.Hour, "fix"), "")
	wantError(t, status, body, 403, "EFORBIDDEN")
	if got := n.ok("POST", "/databases/fix/repair", ""); strings.Contains(got, `"stuck"`) {
		t.Fatalf("still stuck after repair: %s", got)
	}
	n.ok("POST", "/db/fix", `{"sql": "INSERT INTO t VALUES ('new')"}`)
	if got := n.query("fix", "SELECT v FROM t ORDER BY rowid"); got != `[["kept"],["new"]]` {
		t.Fatalf("rows after repair: %s", got)
	}
	status, body = n.do("POST", "/databases/nope/repair", n.admin, "")
	wantError(t, status, body, 404, "ENOTFOUND")
}

// fill inserts about 1 MB per request into table big.
const fill = `{"sql": "INSERT INTO big SELECT randomblob(10000) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100) SELECT i FROM r)"}`

// TestMaxSize: a write that would take a database past its max_size fails
// (413 ETOOLARGE, pgwire 53100) and loses nothing; PATCH raises the limit
// on every node; the status shows the size against the limit.
func TestMaxSize(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	a.ok("POST", "/databases", `{"name": "quota", "max_size": 3000000}`)
	a.ok("POST", "/db/quota", `{"sql": "CREATE TABLE big (b BLOB)"}`)
	var status int
	var body string
	for range 10 {
		if status, body = a.do("POST", "/db/quota", a.admin, fill); status != 200 {
			break
		}
	}
	wantError(t, status, body, 413, "ETOOLARGE")
	if !strings.Contains(body, "max_size") {
		t.Fatalf("the error does not name the limit: %s", body)
	}
	rows := a.query("quota", "SELECT count(*) FROM big")
	if got := a.ok("GET", "/databases/quota", ""); !strings.Contains(got, `"size_limit_bytes":3000000`) || !strings.Contains(got, `"max_size":3000000`) {
		t.Fatalf("status: %s", got)
	}
	// Over pgwire, the same write fails with 53100.
	if _, err := b.pgConnect("quota", b.admin).Exec(context.Background(), "INSERT INTO big SELECT randomblob(10000) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 300) SELECT i FROM r)"); sqlstate(err) != "53100" {
		t.Fatalf("pgwire over the limit: %v", err)
	}
	// The refused writes lost nothing and left both copies alike.
	waitConverged(t, nodes, "quota")
	if got := b.query("quota", "SELECT count(*) FROM big"); got != rows {
		t.Fatalf("rows on the other node %s, want %s", got, rows)
	}
	// PATCH raises the limit; the other node applies it too.
	status, body = a.do("PATCH", "/databases/quota", clusterToken(t, "quota", "write"), `{"max_size": 20000000}`)
	wantError(t, status, body, 403, "EFORBIDDEN")
	status, body = a.do("PATCH", "/databases/quota", a.admin, `{"mode": "eventual"}`)
	wantError(t, status, body, 400, "EINVALID")
	a.ok("PATCH", "/databases/quota", `{"max_size": 20000000, "max_statement_time": "5s"}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body = b.do("POST", "/db/quota", b.admin, fill)
		if status == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status != 200 {
		t.Fatalf("write on the other node after PATCH: %d %s", status, body)
	}
	if got := b.ok("GET", "/databases/quota", ""); !strings.Contains(got, `"max_statement_time":"5s"`) {
		t.Fatalf("status after PATCH: %s", got)
	}
}

// TestPGIdleReadTransaction: a transaction block that only reads holds a
// snapshot (the WAL cannot be checkpointed past it); idle for
// --tx-idle-timeout, its connection is closed (25P03), as a writing one
// is rolled back.
func TestPGIdleReadTransaction(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *Config) { c.TxIdleTimeout = 300 * time.Millisecond })
	n.createDB("snap")
	n.ok("POST", "/db/snap", `{"sql": "CREATE TABLE t (x)"}`)
	ctx := context.Background()
	c := n.pgConnect("snap", n.admin)
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var cnt int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&cnt); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.m.pg.Connections() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n.m.pg.Connections() > 0 {
		t.Fatal("the idle reading transaction still holds its connection")
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&cnt); err == nil {
		t.Fatal("the connection still answers")
	}
	// Writes go on, and the snapshot is gone.
	n.ok("POST", "/db/snap", `{"sql": "INSERT INTO t VALUES (1)"}`)
}

// TestConcurrencyLimits: one database, or one token, cannot take more
// than its share of requests in flight (429 ETOOMANY) or of PostgreSQL
// connections (53300); another database is served meanwhile.
func TestConcurrencyLimits(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *Config) { c.DBConcurrency, c.TokenConcurrency = 2, 3 })
	n.createDB("busy")
	n.createDB("calm")
	n.createDB("third")
	// Two requests whose bodies never finish hold busy's two places (a
	// request counts from its authentication on).
	for range 2 {
		c, err := net.Dial("tcp", n.m.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /db/busy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{\"sql\":", n.admin)
	}
	deadline := time.Now().Add(10 * time.Second)
	var status int
	var body string
	read := n.token(auth.PermRead, time.Hour, "busy")
	for time.Now().Before(deadline) {
		if status, body = n.do("POST", "/db/busy", read, `{"sql": "SELECT 1"}`); status == 429 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantError(t, status, body, 429, "ETOOMANY")
	// Another database, with another token, is served.
	n.ok("POST", "/db/calm", `{"sql": "SELECT 1"}`)

	// pgwire: a database holds at most two connections, a token three.
	tok := n.token(auth.PermRead, time.Hour, "*")
	ctx := context.Background()
	n.pgConnect("third", tok)
	n.pgConnect("third", tok)
	_, err := pgx.Connect(ctx, n.pgDSN("third", tok))
	wantState(t, err, "53300")
	n.pgConnect("calm", tok)
	_, err = pgx.Connect(ctx, n.pgDSN("calm", tok))
	wantState(t, err, "53300")
	if !strings.Contains(err.Error(), "this token") {
		t.Fatalf("the fourth connection of a token: %v", err)
	}
}

// TestLongReadsStarveNothing sends endless reads from PostgreSQL clients
// with one token, as many as a database has readers: a write (a text never
// seen, so it must be classified), a Parse and another token's read still
// go through (one token holds at most all readers but one); the token's own
// next read waits; once the clients vanish without a word their statements
// are cancelled and it runs, long before the statement time limit.
func TestLongReadsStarveNothing(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *Config) { c.MaxStatementTime = 5 * time.Minute })
	n.createDB("busy")
	n.ok("POST", "/db/busy", `{"sql": "CREATE TABLE t (x)"}`)
	const readers = 4 // a database's pooled readers
	var conns []net.Conn
	for range readers {
		conns = append(conns, n.rawQuery("busy", endless))
	}
	time.Sleep(time.Second)
	within := func(what string, limit time.Duration, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if took := time.Since(start); took > limit {
			t.Fatalf("%s took %v with every reader busy", what, took)
		}
	}
	within("a new write", 3*time.Second, func() error {
		if code, body := n.do("POST", "/db/busy", n.admin, `{"sql": "INSERT INTO t VALUES (42)"}`); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	within("a Parse", 3*time.Second, func() error {
		c := n.pgConnect("busy", n.admin)
		defer c.Close(context.Background())
		_, err := c.Prepare(context.Background(), "ins", "INSERT INTO t VALUES ($1)")
		return err
	})
	// Another token's read: one reader is always left to the others.
	within("another token's read", 3*time.Second, func() error {
		if code, body := n.do("POST", "/db/busy", n.token(auth.PermRead, time.Hour, "busy"), `{"sql": "SELECT count(*) FROM t"}`); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	// The busy token's next read waits...
	read := make(chan string, 1)
	go func() {
		code, body, err := n.try("POST", "/db/busy", n.admin, `{"sql": "SELECT count(*) FROM t"}`)
		read <- fmt.Sprintf("%d %s %v", code, body, err)
	}()
	select {
	case got := <-read:
		t.Fatalf("a read ran while every reader was busy: %s", got)
	case <-time.After(2 * time.Second):
	}
	// ...until the clients vanish (no Terminate, no CancelRequest) and
	// their statements are cancelled.
	for _, c := range conns {
		c.Close()
	}
	closed := time.Now()
	select {
	case got := <-read:
		t.Logf("read %v after the close", time.Since(closed))
		if !strings.HasPrefix(got, "200 ") {
			t.Fatalf("read: %s", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the readers are still held 5s after their clients left")
	}
}

// rawQuery logs in to database db over PostgreSQL as a bare client and
// sends sql as a simple query, without waiting for its answer: closing the
// returned connection is a client that vanishes, with neither Terminate
// nor CancelRequest (pgx sends a CancelRequest when its connection fails).
func (n *node) rawQuery(db, sql string) net.Conn {
	n.t.Helper()
	conn, err := net.Dial("tcp", n.m.PGAddr())
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "raw", "database": db}})
	fe.Flush()
	for {
		m, err := fe.Receive()
		if err != nil {
			n.t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			fe.Send(&pgproto3.PasswordMessage{Password: n.admin})
			fe.Flush()
		case *pgproto3.ErrorResponse:
			n.t.Fatalf("login: %s", m.Message)
		case *pgproto3.ReadyForQuery:
			fe.Send(&pgproto3.Query{String: sql})
			if err := fe.Flush(); err != nil {
				n.t.Fatal(err)
			}
			conn.SetDeadline(time.Time{})
			return conn
		}
	}
}

// rowsCTE yields n rows numbered from 1.
func rowsCTE(n int) string {
	return fmt.Sprintf("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < %d) ", n)
}

// TestStreamedResults: a large read is sent as it is produced, so clients
// that ask for large results and never read them cost the node little
// memory; a read that fails after it started sending says so in the body
// and cuts the connection; small results are answered whole.
func TestStreamedResults(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("big")
	read := n.token(auth.PermRead, time.Hour, "big")

	// Whole and correct, with text and integers.
	req, _ := http.NewRequest("POST", n.url+"/db/big", strings.NewReader(`{"sql": "`+rowsCTE(100000)+`SELECT i, 'row ' || i FROM r"}`))
	req.Header.Set("Authorization", "Bearer "+read)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Results []struct {
			Columns []string `json:"columns"`
			Rows    [][]any  `json:"rows"`
		} `json:"results"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if resp.ContentLength >= 0 {
		t.Errorf("a 2 MB result was sent with a Content-Length: not streamed")
	}
	rows := out.Results[0].Rows
	if len(rows) != 100000 || rows[99999][1] != "row 100000" || rows[0][0] != 1.0 {
		t.Fatalf("%d rows, last %v", len(rows), rows[len(rows)-1])
	}
	for _, c := range []struct{ token, body, want string }{
		{read, `[{"sql": "SELECT 1; -- the last"}, {"sql": "SELECT 2; /* two */"}]`, `{"results":[{"columns":["1"],"rows":[[1]]},{"columns":["2"],"rows":[[2]]}]}`},
		{n.admin, `[{"sql": "SELECT 1"}, {"sql": "SELECT 2; SELECT 3"}]`, `{"results":[{"columns":["1"],"rows":[[1]]},{"columns":["3"],"rows":[[3]]}]}`},
	} {
		if code, body := n.do("POST", "/db/big", c.token, c.body); code != 200 || body != c.want+"\n" {
			t.Fatalf("%s: %d %s", c.body, code, body)
		}
	}

	// Clients that never read: 40 MB each.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var stalled []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", n.m.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		body := `{"sql": "` + rowsCTE(40000) + `SELECT randomblob(1000) FROM r"}`
		fmt.Fprintf(c, "POST /db/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", read, len(body), body)
		stalled = append(stalled, c)
	}
	time.Sleep(3 * time.Second)
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grown := int64(during.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Errorf("four unread 40 MB results hold %d MB", grown>>20)
	} else {
		t.Logf("four unread 40 MB results hold %d MB", grown>>20)
	}
	for _, c := range stalled {
		c.Close()
	}
	start := time.Now()
	if code, body := n.do("POST", "/db/big", read, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("readers held %v after their clients left", took)
	}

	// Past the result limit after sending began. The stalled requests
	// may still hold readers for a moment (their connections' end is
	// noticed on the next write): a read refused before it began is
	// tried again.
	var got []byte
	for try := 0; ; try++ {
		req, _ = http.NewRequest("POST", n.url+"/db/big", strings.NewReader(`{"sql": "`+rowsCTE(1000)+`SELECT randomblob(100000) FROM r"}`))
		req.Header.Set("Authorization", "Bearer "+read)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || try == 20 {
			break
		}
		t.Logf("read refused before it began: %d %.200s", resp.StatusCode, got)
		time.Sleep(500 * time.Millisecond)
	}
	if err == nil {
		t.Fatalf("a failed streamed read ended like a complete one: %d %.300s", resp.StatusCode, got)
	}
	if tail := string(got[max(0, len(got)-200):]); !strings.Contains(tail, `"error":{"code":"ETOOLARGE"`) {
		t.Fatalf("the body does not end with the error: ...%s", tail)
	}
}
