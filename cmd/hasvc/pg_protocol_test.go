package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
)

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
	// statement_timeout given at connection (options=-c ...) bounds
	// statements as SET does.
	o, err := pgx.Connect(ctx, n.pgDSN("c", n.admin)+" options='-c statement_timeout=200'")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	// A value SET would refuse is refused at connection too.
	_, err = pgx.Connect(ctx, n.pgDSN("c", n.admin)+" options='-c statement_timeout=banana'")
	wantState(t, err, "22023")
	start = time.Now()
	_, err = o.Exec(ctx, forever)
	wantState(t, err, "57014")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("statement_timeout from the startup options stopped the statement after %v", d)
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
			trace = append(trace, fmt.Sprintf("row:%d", int32(binary.BigEndian.Uint32(m.Values[0]))))
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
	want := "[ParseComplete BindComplete desc:23/1 row:2 row:3 PortalSuspended row:4 row:5 PortalSuspended SELECT 0 ReadyForQuery]"
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
	// writer is taken back after the transaction idle timeout: b's write
	// waits for it, then goes through.
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
	// Outside a transaction, idleness ends the connection: wait until
	// the server has closed both idle sessions.
	deadline := time.Now().Add(10 * time.Second)
	for n.m.pg.Connections() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_, err = a.Exec(ctx, "SELECT 1")
	if err == nil {
		t.Fatal("idle connection still open")
	}
	if code := sqlstate(err); code != "57P05" && !a.IsClosed() {
		t.Fatalf("idle connection: %v", err)
	}
}
