package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/lib/pq"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/auth"
)

// pgDSN is a keyword/value connection string to database db on n.
func (n *node) pgDSN(db, token string) string {
	host, port, _ := net.SplitHostPort(n.m.PGAddr())
	return fmt.Sprintf("host=%s port=%s user=tester password=%s dbname=%s sslmode=disable", host, port, token, db)
}

func (n *node) pgConnect(db, token string) *pgx.Conn {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, n.pgDSN(db, token))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// sqlstate returns the SQLSTATE of a PostgreSQL error, or "".
func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func wantState(t *testing.T, err error, code string) {
	t.Helper()
	if got := sqlstate(err); got != code {
		t.Fatalf("want SQLSTATE %s, got %v (%s)", code, err, got)
	}
}

// TestPGTypes checks values and column types through pgx in each of its
// query modes: the statement cache (Parse/Describe, binary results), the
// describe-each-time mode, and the simple protocol (text).
func TestPGTypes(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("shop")
	ctx := context.Background()
	c := n.pgConnect("shop", n.admin)
	if _, err := c.Exec(ctx, `CREATE TABLE v (i INTEGER, f REAL, s TEXT, b BLOB, flag BOOLEAN, d DATE)`); err != nil {
		t.Fatal(err)
	}
	tag, err := c.Exec(ctx, `INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6), (NULL, NULL, NULL, NULL, NULL, NULL)`,
		int64(math.MaxInt64), 1.5, "héllo, 'world'", []byte{0, 1, 2, 255}, true, "2026-11-26")
	if err != nil {
		t.Fatal(err)
	}
	if tag.String() != "INSERT 0 2" || tag.RowsAffected() != 2 {
		t.Fatalf("tag %q", tag)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			rows, err := c.Query(ctx, `SELECT i, f, s, b, flag, d FROM v ORDER BY i IS NULL`, mode)
			if err != nil {
				t.Fatal(err)
			}
			var oids []uint32
			for _, fd := range rows.FieldDescriptions() {
				oids = append(oids, fd.DataTypeOID)
			}
			if fmt.Sprint(oids) != "[20 701 25 17 16 25]" {
				t.Errorf("column types %v", oids)
			}
			var got [][]any
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, vals)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprint([][]any{{int64(math.MaxInt64), 1.5, "héllo, 'world'", []byte{0, 1, 2, 255}, true, "2026-11-26"}, {nil, nil, nil, nil, nil, nil}})
			if fmt.Sprint(got) != want {
				t.Errorf("rows\n got %v\nwant %s", got, want)
			}
			// $n binds by number, not by order of appearance; a cast
			// types a parameter, as in PostgreSQL.
			var diff int64
			var text string
			if err := c.QueryRow(ctx, `SELECT $2::int8 - $1::int8, $1::text || $2::text`, mode, 10, 3).Scan(&diff, &text); err != nil {
				t.Fatal(err)
			}
			if diff != -7 || text != "103" {
				t.Errorf("$2 - $1 = %d, $1 || $2 = %q", diff, text)
			}
			var cnt int64
			var name string
			if err := c.QueryRow(ctx, `SELECT count(*), current_database() FROM v WHERE i = $1`, mode, int64(math.MaxInt64)).Scan(&cnt, &name); err != nil {
				t.Fatal(err)
			}
			if cnt != 1 || name != "shop" {
				t.Errorf("count %d, database %q", cnt, name)
			}
		})
	}
	// Column names follow PostgreSQL's rules where SQLite names a column
	// by its expression.
	rows, err := c.Query(ctx, `SELECT count(*), max(i) AS m, 1::text, 'x', i FROM v GROUP BY i`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fd := range rows.FieldDescriptions() {
		names = append(names, fd.Name)
	}
	rows.Close()
	if fmt.Sprint(names) != "[count m text ?column? i]" {
		t.Errorf("column names %v", names)
	}
}

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

// TestPGErrors checks SQLSTATEs of failed statements and connections.
func TestPGErrors(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("e")
	ctx := context.Background()
	c := n.pgConnect("e", n.admin)
	for _, sql := range []string{
		"CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n INTEGER CHECK (n > 0))",
		"CREATE TABLE ch (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))",
		"INSERT INTO p VALUES (1, 'a', 1)",
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for sql, code := range map[string]string{
		"INSERT INTO p VALUES (1, 'b', 1)":  "23505",
		"INSERT INTO p VALUES (2, 'a', 1)":  "23505",
		"INSERT INTO p VALUES (2, NULL, 1)": "23502",
		"INSERT INTO p VALUES (2, 'b', 0)":  "23514",
		"INSERT INTO ch VALUES (1, 99)":     "23503",
		"SELEC 1":                           "42601",
		"SELECT * FROM nope":                "42P01",
		"SELECT nope FROM p":                "42703",
		"SELECT nope(1)":                    "42883",
		"CREATE TABLE p (x)":                "42P07",
		"ATTACH DATABASE 'x' AS x":          "42501",
		"SELECT * FROM _hasvc_state":        "42501",
		"SAVEPOINT s":                       "25P01", // outside a transaction block
		"SHOW no_such_setting":              "42704",
		"SET client_encoding = 'LATIN1'":    "22023",
	} {
		_, err := c.Exec(ctx, sql)
		if got := sqlstate(err); got != code {
			t.Errorf("%s: want %s, got %v", sql, code, err)
		}
	}
	// The connection still works after every error.
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("after errors: %v", err)
	}

	connErr := func(db, token string) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, n.pgDSN(db, token))
		if err == nil {
			c.Close(ctx)
		}
		return err
	}
	wantState(t, connErr("nosuchdb", n.admin), "3D000")
	wantState(t, connErr("e", "not-a-token"), "28P01")
	// An expired token opens no session, and a session ends when its
	// token expires.
	expired := n.token(auth.PermRead, 2*time.Second, "e")
	short := n.pgConnect("e", expired)
	if err := short.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	wantState(t, connErr("e", expired), "28P01")
	err := short.QueryRow(ctx, "SELECT 1").Scan(&one)
	wantState(t, err, "28P01")
	wantState(t, connErr("e", n.token(auth.PermRead, time.Hour, "other")), "28P01")

	r := n.pgConnect("e", n.token(auth.PermRead, time.Hour, "e"))
	var cnt int
	if err := r.QueryRow(ctx, "SELECT count(*) FROM p").Scan(&cnt); err != nil || cnt != 1 {
		t.Fatalf("read token reads: %d %v", cnt, err)
	}
	_, err = r.Exec(ctx, "INSERT INTO p VALUES (5, 'e', 1)")
	wantState(t, err, "42501")
	_, err = r.Exec(ctx, "BEGIN")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Exec(ctx, "DELETE FROM p")
	wantState(t, err, "42501")
}

// TestPGCancel cancels a running statement with a CancelRequest and
// bounds one with statement_timeout; the connection stays usable.
func TestPGCancel(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("c")
	ctx := context.Background()
	c := n.pgConnect("c", n.admin)
	forever := "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"
	returned, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		// A cancel request that arrives before the statement runs is
		// ignored, as in PostgreSQL: send one every 300 ms until it ends.
		for range 30 {
			select {
			case <-returned:
				return
			case <-time.After(300 * time.Millisecond):
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.PgConn().CancelRequest(cctx)
			cancel()
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	start := time.Now()
	_, err := c.Exec(ctx, forever)
	close(returned)
	<-stopped // no cancel request is still on its way
	wantState(t, err, "57014")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	if _, err := c.Exec(ctx, "SET statement_timeout = 200"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, forever)
	wantState(t, err, "57014")
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestPGPool runs concurrent pooled writers and readers; every
// acknowledged insert is there afterwards.
func TestPGPool(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("pool")
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(n.pgDSN("pool", n.admin))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, w INTEGER, k INTEGER)"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 50 {
				var id int64
				var err error
				if k%5 == 0 {
					// A two-statement transaction.
					err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, "INSERT INTO log (w, k) VALUES ($1, $2)", w, k); err != nil {
							return err
						}
						return tx.QueryRow(ctx, "INSERT INTO log (w, k) VALUES ($1, $2) RETURNING id", w, -k).Scan(&id)
					})
					if err == nil {
						mu.Lock()
						acked += 2
						mu.Unlock()
					} else if sqlstate(err) != "40001" {
						t.Error(err)
					}
					continue
				}
				err = pool.QueryRow(ctx, "INSERT INTO log (w, k) VALUES ($1, $2) RETURNING id", w, k).Scan(&id)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var cnt int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM log").Scan(&cnt); err != nil {
		t.Fatal(err)
	}
	if cnt != acked {
		t.Fatalf("%d acknowledged inserts, %d rows", acked, cnt)
	}
}

// TestPGLibPQ goes through database/sql with lib/pq (text parameters of
// unknown type, unnamed statements).
func TestPGLibPQ(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("lp")
	db, err := sql.Open("postgres", n.pgDSN("lp", n.admin))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, raw BLOB)"); err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec("INSERT INTO t (id, name, score, raw) VALUES ($1, $2, $3, $4)", 7, "seven", 7.25, []byte("\x00\x07"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rows affected %d", n)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t (id, name) VALUES ($1, $2)", 8, "eight"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var (
		id    int64
		name  string
		score float64
		raw   []byte
	)
	if err := db.QueryRow("SELECT id, name, score, raw FROM t WHERE id = $1", 7).Scan(&id, &name, &score, &raw); err != nil {
		t.Fatal(err)
	}
	if id != 7 || name != "seven" || score != 7.25 || string(raw) != "\x00\x07" {
		t.Fatalf("got %d %q %v %q", id, name, score, raw)
	}
	var cnt int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&cnt); err != nil || cnt != 2 {
		t.Fatalf("count %d %v", cnt, err)
	}
}

// TestPGProtocol speaks the protocol directly: protocol negotiation,
// SSLRequest and GSSENCRequest without TLS, portals with row limits,
// skipping to Sync after an error, the message size limit and the
// connection limit.
func TestPGProtocol(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *Config) {
		c.PGMaxConns = 3
		c.MaxRequestBytes = 64 << 10
	})
	n.createDB("proto")
	n.ok("POST", "/db/proto", `[{"sql":"CREATE TABLE s (i INTEGER)"},{"sql":"INSERT INTO s VALUES (1),(2),(3),(4),(5)"}]`)
	addr := n.m.PGAddr()

	dial := func() (net.Conn, *pgproto3.Frontend) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn, pgproto3.NewFrontend(conn, conn)
	}
	recv := func(fe *pgproto3.Frontend) pgproto3.BackendMessage {
		t.Helper()
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// login sends the startup and the token and reads to ReadyForQuery.
	login := func(fe *pgproto3.Frontend, version uint32, extra map[string]string) []pgproto3.BackendMessage {
		t.Helper()
		params := map[string]string{"user": "raw", "database": "proto"}
		for k, v := range extra {
			params[k] = v
		}
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: version, Parameters: params})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var seen []pgproto3.BackendMessage
		for {
			m := recv(fe)
			// Received messages are reused by the next Receive: keep copies.
			switch m := m.(type) {
			case *pgproto3.ParameterStatus:
				c := *m
				seen = append(seen, &c)
			case *pgproto3.BackendKeyData:
				c := *m
				seen = append(seen, &c)
			case *pgproto3.NegotiateProtocolVersion:
				c := *m
				seen = append(seen, &c)
			case *pgproto3.ErrorResponse:
				c := *m
				seen = append(seen, &c)
			default:
				seen = append(seen, m)
			}
			switch m := m.(type) {
			case *pgproto3.AuthenticationCleartextPassword:
				fe.Send(&pgproto3.PasswordMessage{Password: n.admin})
				fe.Flush()
			case *pgproto3.ErrorResponse:
				return seen
			case *pgproto3.ReadyForQuery:
				if m.TxStatus != 'I' {
					t.Fatalf("status %c", m.TxStatus)
				}
				return seen
			}
		}
	}

	// SSLRequest and GSSENCRequest are refused with 'N', then startup
	// goes on; a 3.2 client with an option gets NegotiateProtocolVersion.
	conn, _ := dial()
	for _, code := range []uint32{80877103, 80877104} {
		var b [8]byte
		binary.BigEndian.PutUint32(b[:], 8)
		binary.BigEndian.PutUint32(b[4:], code)
		conn.Write(b[:])
		var r [1]byte
		if _, err := conn.Read(r[:]); err != nil || r[0] != 'N' {
			t.Fatalf("request %d answered %q %v", code, r[0], err)
		}
	}
	fe := pgproto3.NewFrontend(conn, conn)
	seen := login(fe, pgproto3.ProtocolVersion32, map[string]string{"_pq_.test_option": "1"})
	npv, ok := seen[0].(*pgproto3.NegotiateProtocolVersion)
	if !ok || npv.NewestMinorProtocol != 0 || fmt.Sprint(npv.UnrecognizedOptions) != "[_pq_.test_option]" {
		t.Fatalf("first message %#v", seen[0])
	}
	statuses := map[string]string{}
	var key *pgproto3.BackendKeyData
	for _, m := range seen {
		switch m := m.(type) {
		case *pgproto3.ParameterStatus:
			statuses[m.Name] = m.Value
		case *pgproto3.BackendKeyData:
			key = m
		}
	}
	for _, name := range []string{"server_version", "server_encoding", "client_encoding", "DateStyle", "integer_datetimes", "standard_conforming_strings", "TimeZone", "application_name", "is_superuser", "session_authorization"} {
		if _, ok := statuses[name]; !ok {
			t.Errorf("no ParameterStatus %s", name)
		}
	}
	if statuses["client_encoding"] != "UTF8" || statuses["integer_datetimes"] != "on" || key == nil {
		t.Errorf("statuses %v, key %v", statuses, key)
	}

	// A portal with a row limit: PortalSuspended, then the rest.
	fe.Send(&pgproto3.Parse{Name: "s1", Query: "SELECT i FROM s WHERE i >= $1 ORDER BY i"})
	fe.Send(&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("2")}, ResultFormatCodes: []int16{1}})
	fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	fe.Send(&pgproto3.Execute{MaxRows: 2})
	fe.Send(&pgproto3.Execute{MaxRows: 2})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	fe.Flush()
	var trace []string
	for {
		m := recv(fe)
		switch m := m.(type) {
		case *pgproto3.DataRow:
			trace = append(trace, fmt.Sprintf("row:%d", binary.BigEndian.Uint64(m.Values[0])))
		case *pgproto3.RowDescription:
			trace = append(trace, fmt.Sprintf("desc:%d/%d", m.Fields[0].DataTypeOID, m.Fields[0].Format))
		case *pgproto3.CommandComplete:
			trace = append(trace, string(m.CommandTag))
		default:
			trace = append(trace, fmt.Sprintf("%T", m)[len("*pgproto3."):])
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	// What PostgreSQL 15 sends for the same messages.
	want := "[ParseComplete BindComplete desc:20/1 row:2 row:3 PortalSuspended row:4 row:5 PortalSuspended SELECT 0 ReadyForQuery]"
	if fmt.Sprint(trace) != want {
		t.Errorf("portal\n got %v\nwant %s", trace, want)
	}

	// An error skips to Sync.
	fe.Send(&pgproto3.Parse{Query: "SELEC 1"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	fe.Send(&pgproto3.Query{String: "SELECT 42"})
	fe.Flush()
	trace = trace[:0]
	for done := 0; done < 2; {
		m := recv(fe)
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			trace = append(trace, "error:"+m.Code)
		case *pgproto3.DataRow:
			trace = append(trace, "row:"+string(m.Values[0]))
		case *pgproto3.ReadyForQuery:
			trace = append(trace, "ready")
			done++
		}
	}
	if fmt.Sprint(trace) != "[error:42601 ready row:42 ready]" {
		t.Errorf("after an error: %v", trace)
	}

	// A message over the limit ends the connection with 54000.
	fe.Send(&pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 100<<10) + "'"})
	fe.Flush()
	if m, ok := recv(fe).(*pgproto3.ErrorResponse); !ok || m.Code != "54000" || m.Severity != "FATAL" {
		t.Errorf("oversized message: %#v", m)
	}

	// Connection limit: three sessions at once, the fourth is refused.
	for range 3 {
		_, fe := dial()
		if m := login(fe, pgproto3.ProtocolVersion30, nil); len(m) == 0 {
			t.Fatal("no answer")
		}
	}
	_, fe4 := dial()
	seen = login(fe4, pgproto3.ProtocolVersion30, nil)
	if e, ok := seen[len(seen)-1].(*pgproto3.ErrorResponse); !ok || e.Code != "53300" {
		t.Errorf("fourth connection: %#v", seen[len(seen)-1])
	}
}

// TestPGTLS connects with sslmode=require to a node with a certificate.
func TestPGTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	n := startNode(t, dir, func(c *Config) { c.PGCert, c.PGKey = cert, key })
	n.createDB("sec")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, strings.Replace(n.pgDSN("sec", n.admin), "sslmode=disable", "sslmode=require", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("connection is %T, not TLS", c.PgConn().Conn())
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatal(err)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "pg.crt"), filepath.Join(dir, "pg.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestPGTimeouts: a connection idle past --pg-idle-timeout is closed with
// 57P05, and a writing transaction idle past --tx-idle-timeout is rolled
// back, freeing the writer for others.
func TestPGTimeouts(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *Config) {
		c.PGIdleTimeout = 400 * time.Millisecond
		c.TxIdleTimeout = 300 * time.Millisecond
	})
	n.createDB("idle")
	ctx := context.Background()
	a := n.pgConnect("idle", n.admin)
	if _, err := a.Exec(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// Inside a transaction the connection is not idle-closed, but the
	// writer is taken back after the transaction idle timeout.
	time.Sleep(time.Second)
	b := n.pgConnect("idle", n.admin)
	if _, err := b.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("write while another transaction idles: %v", err)
	}
	_, err := a.Exec(ctx, "INSERT INTO t VALUES (3)")
	wantState(t, err, "57014")
	if _, err := a.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	var ids int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&ids); err != nil || ids != 1 {
		t.Fatalf("rows %d %v", ids, err)
	}
	// Outside a transaction, idleness ends the connection.
	time.Sleep(time.Second)
	_, err = a.Exec(ctx, "SELECT 1")
	if err == nil {
		t.Fatal("idle connection still open")
	}
	if code := sqlstate(err); code != "57P05" && !a.IsClosed() {
		t.Fatalf("idle connection: %v", err)
	}
}

// TestMetrics reads /metrics without a token: per-database applied
// sequence and stuck flag, write totals, PostgreSQL sessions.
func TestMetrics(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("m")
	n.ok("POST", "/db/m", `[{"sql":"CREATE TABLE t (x)"},{"sql":"INSERT INTO t VALUES (1)"}]`)
	c := n.pgConnect("m", n.admin)
	if _, err := c.Exec(context.Background(), "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	status, body := n.do("GET", "/metrics", "", "")
	if status != 200 {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	for _, want := range []string{
		`hasvc_database_applied_sequence{database="m"} 2`,
		`hasvc_database_stuck{database="m"} 0`,
		"hasvc_writes_total 2",
		"hasvc_write_conflicts_total 0",
		"hasvc_pg_connections 1",
		"hasvc_databases_open 1",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
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
	js, err := jetstream.New(natsConn(t, n))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "HASVC_sp")
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
