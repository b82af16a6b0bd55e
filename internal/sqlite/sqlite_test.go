package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hasvc/internal/change"
	"hasvc/internal/tenant"
)

var memSeq atomic.Int64

// openTest opens a tenant connection to a fresh in-memory database with a
// table t and one of hasvc's own tables.
func openTest(t testing.TB, opts Options) *Conn {
	t.Helper()
	dsn := fmt.Sprintf("file:/sqlite-test-%d?vfs=memdb", memSeq.Add(1))
	c, err := Open(dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	err = c.Internal(func() error {
		return c.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL, n INTEGER CHECK (n >= 0), p INTEGER REFERENCES t(id)); CREATE TABLE _hasvc_state (applied_seq INTEGER)")
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(c *Conn, sql string, params any) ([]Result, error) {
	return c.Run(context.Background(), []Statement{{SQL: sql, Params: params}}, nil)
}

// TestSandboxRefusals runs each statement the sandbox refuses and checks
// that it is EFORBIDDEN, of KindRefused, and says what was refused.
func TestSandboxRefusals(t *testing.T) {
	c := openTest(t, Options{Tenant: true})
	for _, tc := range []struct {
		name, sql, want string
	}{
		{"attach", "ATTACH 'x.db' AS x", "ATTACH and DETACH are not allowed"},
		{"detach", "DETACH main", "ATTACH and DETACH are not allowed"},
		{"begin", "BEGIN", "BEGIN: a request is already one transaction"},
		{"commit", "COMMIT", "COMMIT: a request is already one transaction"},
		{"savepoint", "SAVEPOINT a", "SAVEPOINT, RELEASE and ROLLBACK TO are not allowed here"},
		{"temp table", "CREATE TEMP TABLE x (a)", "temporary tables"},
		{"temp view", "CREATE TEMP VIEW x AS SELECT 1", "temporary tables"},
		{"virtual table", "CREATE VIRTUAL TABLE x USING fts5(a)", "virtual tables are not allowed"},
		{"load_extension", "SELECT load_extension('x')", "load_extension is not allowed"},
		{"pragma assignment", "PRAGMA journal_mode = DELETE", "PRAGMA journal_mode is not allowed"},
		{"pragma write", "PRAGMA user_version = 3", "PRAGMA user_version may only be read"},
		{"pragma unknown", "PRAGMA writable_schema", "PRAGMA writable_schema is not allowed"},
		{"internal read", "SELECT * FROM _hasvc_state", "table _hasvc_state is hasvc's own"},
		{"internal write", "DELETE FROM _HASVC_state", "is hasvc's own"},
		{"internal pragma", "PRAGMA table_info(_hasvc_state)", "PRAGMA table_info is not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(c, tc.sql, nil)
			if got := tenant.ErrorCode(err); got != tenant.EFORBIDDEN {
				t.Fatalf("%s: code %q (%v), want EFORBIDDEN", tc.sql, got, err)
			}
			var se *Error
			if !errors.As(err, &se) || se.Kind != KindRefused {
				t.Fatalf("%s: %v is not a KindRefused *Error", tc.sql, err)
			}
			if msg := tenant.ErrorMessage(err); !strings.Contains(msg, tc.want) {
				t.Fatalf("%s: message %q, want it to say %q", tc.sql, msg, tc.want)
			}
		})
	}
}

// TestSandboxAllows runs what tenants may do, so the sandbox is not
// simply refusing everything.
func TestSandboxAllows(t *testing.T) {
	c := openTest(t, Options{Tenant: true})
	for _, sql := range []string{
		"PRAGMA table_info(t)",
		"PRAGMA user_version",
		"PRAGMA foreign_key_list(t)",
		"SELECT name FROM sqlite_schema",
		"CREATE TABLE u (a)",
		"CREATE INDEX u_a ON u (a)",
		"CREATE VIEW w AS SELECT a FROM u",
		"CREATE TRIGGER tr AFTER INSERT ON u BEGIN SELECT 1; END",
		"DROP TRIGGER tr",
		"ALTER TABLE u RENAME TO u2",
		"ALTER TABLE u2 RENAME COLUMN a TO b",
		"ALTER TABLE u2 ADD COLUMN c",
		"ALTER TABLE u2 DROP COLUMN c",
		"INSERT INTO t (v, n) VALUES ('x', 1)",
	} {
		if _, err := run(c, sql, nil); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

// TestErrorKinds pins each kind of SQL error, which the adapters map to
// SQLSTATEs and statuses, to a statement that raises it.
func TestErrorKinds(t *testing.T) {
	c := openTest(t, Options{Tenant: true})
	if _, err := run(c, "INSERT INTO t (id, v, n) VALUES (1, 'a', 1); CREATE INDEX t_n ON t (n)", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		sql    string
		params any
		want   Kind
		code   string
	}{
		{"syntax", "SELEC 1", nil, KindSyntax, tenant.EINVALID},
		{"incomplete", "SELECT (1", nil, KindSyntax, tenant.EINVALID},
		{"empty", "  -- nothing\n ", nil, KindSyntax, tenant.EINVALID},
		{"nul byte", "SELECT 1\x00; DROP TABLE t", nil, KindSyntax, tenant.EINVALID},
		{"no table", "SELECT * FROM nope", nil, KindNoTable, tenant.EINVALID},
		{"no column", "SELECT nope FROM t", nil, KindNoColumn, tenant.EINVALID},
		{"no column named", "INSERT INTO t (nope) VALUES (1)", nil, KindNoColumn, tenant.EINVALID},
		{"no function", "SELECT nope(1)", nil, KindNoFunction, tenant.EINVALID},
		{"wrong arguments", "SELECT abs(1, 2)", nil, KindNoFunction, tenant.EINVALID},
		{"no index", "DROP INDEX nope", nil, KindNoObject, tenant.EINVALID},
		{"table exists", "CREATE TABLE t (a)", nil, KindTableExists, tenant.EINVALID},
		{"index exists", "CREATE INDEX t_n ON t (n)", nil, KindObjectExists, tenant.EINVALID},
		{"ambiguous", "SELECT id FROM t, t AS u", nil, KindAmbiguousColumn, tenant.EINVALID},
		{"unique", "INSERT INTO t (v, n) VALUES ('a', 1)", nil, KindUnique, tenant.EINVALID},
		{"primary key", "INSERT INTO t (id, v, n) VALUES (1, 'b', 1)", nil, KindUnique, tenant.EINVALID},
		{"not null", "INSERT INTO t (n) VALUES (1)", nil, KindNotNull, tenant.EINVALID},
		{"check", "INSERT INTO t (v, n) VALUES ('c', -1)", nil, KindCheck, tenant.EINVALID},
		{"foreign key", "INSERT INTO t (v, n, p) VALUES ('d', 1, 99)", nil, KindForeignKey, tenant.EINVALID},
		{"too few params", "SELECT ?, ?", []any{int64(1)}, KindParams, tenant.EINVALID},
		{"missing param", "SELECT :a", map[string]any{"b": int64(1)}, KindParams, tenant.EINVALID},
		{"params for two", "SELECT 1; SELECT 2", []any{}, KindParams, tenant.EINVALID},
		{"too big", "SELECT zeroblob(100000000)", nil, KindTooBig, tenant.ETOOLARGE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(c, tc.sql, tc.params)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("%q: %v is not an *Error", tc.sql, err)
			}
			if se.Kind != tc.want {
				t.Fatalf("%q: kind %d (%s), want %d", tc.sql, se.Kind, se.Message, tc.want)
			}
			if got := tenant.ErrorCode(err); got != tc.code {
				t.Fatalf("%q: code %s, want %s", tc.sql, got, tc.code)
			}
			if tenant.ErrorStatement(err) != 0 {
				t.Fatalf("%q: statement %d, want 0", tc.sql, tenant.ErrorStatement(err))
			}
		})
	}
}

// TestInterrupted: a context done before or while a statement runs, or a
// deadline passing, interrupts it, and the error says so (ETIMEOUT,
// KindInterrupted; "timed out" for a deadline). The connection goes on.
func TestInterrupted(t *testing.T) {
	const endless = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
	c := openTest(t, Options{Tenant: true})
	interrupted := func(what string, err error, msg string) {
		t.Helper()
		var se *Error
		if !errors.As(err, &se) || se.Kind != KindInterrupted || tenant.ErrorCode(err) != tenant.ETIMEOUT || !strings.Contains(err.Error(), msg) {
			t.Fatalf("%s: got %v, want an interrupted statement (%s)", what, err, msg)
		}
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Run(done, []Statement{{SQL: endless}}, nil)
	interrupted("cancelled before", err, "interrupted")
	_, _, err = c.RunIfReadOnly(done, Statement{SQL: endless}, nil)
	interrupted("cancelled before, one read", err, "interrupted")

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, _, err = c.RunIfReadOnly(ctx, Statement{SQL: endless}, nil)
	interrupted("cancelled while running", err, "interrupted")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cancelled after 50ms, stopped after %v", took)
	}

	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	start = time.Now()
	_, err = c.Run(context.Background(), []Statement{{SQL: endless}}, nil)
	interrupted("deadline", err, "timed out")
	if took := time.Since(start); took < 50*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a deadline 50ms away stopped the statement after %v", took)
	}
	c.SetDeadline(time.Time{})
	if res, err := run(c, "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000) SELECT count(*) FROM r", nil); err != nil || res[0].Rows[0][0] != int64(100000) {
		t.Fatalf("after the deadline is cleared: %v %v", res, err)
	}
}

// TestValueRoundTrip binds every storage class and reads it back with the
// same class and value.
func TestValueRoundTrip(t *testing.T) {
	c := openTest(t, Options{Tenant: true})
	values := []any{nil, int64(math.MinInt64), int64(math.MaxInt64), 0.5, math.Inf(1), -0.25,
		"", "héllo\x01", string([]byte{0xff, 0xfe, 'A'}), []byte{}, []byte{0, 1, 0xff}}
	for i, v := range values {
		res, err := run(c, "SELECT ?1, typeof(?1)", []any{v})
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		got := res[0].Rows[0][0]
		if a, b := string(change.AppendValue(nil, got)), string(change.AppendValue(nil, v)); a != b || fmt.Sprintf("%T", got) != fmt.Sprintf("%T", v) {
			t.Errorf("value %d: got %s (%T), want %s (%T)", i, a, got, b, v)
		}
		if s, ok := v.(string); ok && got.(string) != s {
			t.Errorf("value %d: text %q came back as %q", i, s, got)
		}
	}
}

// TestReadOnly classifies statements as the engine's read path does.
func TestReadOnly(t *testing.T) {
	c := openTest(t, Options{Tenant: true})
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", true},
		{"SELECT 1;  ", true},
		{"SELECT 1; SELECT 2", false},
		{"INSERT INTO t (v) VALUES ('x')", false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", true},
		{"CREATE TABLE z (a)", false},
	} {
		got, err := c.ReadOnly(context.Background(), tc.sql)
		if err != nil || got != tc.want {
			t.Errorf("ReadOnly(%q) = %v, %v; want %v", tc.sql, got, err, tc.want)
		}
	}
	if _, err := c.ReadOnly(context.Background(), "  "); tenant.ErrorCode(err) != tenant.EINVALID {
		t.Errorf("empty: %v, want EINVALID", err)
	}
}

// TestCapture checks that a write's row changes are captured with names,
// rowids and values, and that Truncate forgets a failed statement's.
func TestCapture(t *testing.T) {
	c := openTest(t, Options{Tenant: true, Capture: true})
	cp := c.Capture()
	cp.Reset()
	if err := c.Internal(func() error { return c.Exec("BEGIN") }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(context.Background(), []Statement{{SQL: "INSERT INTO t (id, v, n) VALUES (7, 'x', 1)"}, {SQL: "UPDATE t SET n = 2"}}, cp); err != nil {
		t.Fatal(err)
	}
	got := cp.Changes()
	if len(got) != 2 || got[0].Operation != change.OpInsert || got[1].Operation != change.OpUpdate ||
		*got[0].NewRowID != 7 || strings.Join(got[0].Columns, ",") != "id,v,n,p" || got[1].NewValues[2] != int64(2) {
		t.Fatalf("captured %+v", got)
	}
	mark := cp.Len()
	if _, err := c.Run(context.Background(), []Statement{{SQL: "DELETE FROM t"}}, cp); err != nil {
		t.Fatal(err)
	}
	cp.Truncate(mark)
	if cp.Len() != 2 {
		t.Fatalf("after Truncate: %d changes, want 2", cp.Len())
	}
	c.Internal(func() error { return c.Exec("ROLLBACK") })
}

// FuzzSplit runs arbitrary SQL texts: every text either runs or fails,
// and nothing loops (the statement splitter always advances).
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"SELECT 1", "\x00", "SELECT 1\x00; DROP TABLE t", "SELECT 1;;;", "/* x", "-- x\nSELECT 2",
		"SELECT 'a\x00b'", ";", "SELECT 1; SELECT 2", "CREATE TABLE x(a); DROP TABLE x", "\"", "'"} {
		f.Add(s)
	}
	c := openTest(f, Options{Tenant: true})
	f.Fuzz(func(t *testing.T, sql string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2e9)
		defer cancel()
		if err := c.Internal(func() error { return c.Exec("SAVEPOINT fuzz") }); err != nil {
			t.Fatal(err)
		}
		c.Run(ctx, []Statement{{SQL: sql}}, nil)
		c.Internal(func() error { return c.Exec("ROLLBACK TO fuzz; RELEASE fuzz") })
		c.RolledBack()
	})
}

// TestCaptureLimit: a statement whose row images pass the capture limit
// is stopped with ETOOLARGE before it copies much more than the limit.
func TestCaptureLimit(t *testing.T) {
	c := openTest(t, Options{Tenant: true, Capture: true})
	cp := c.Capture()
	cp.Limit = 1 << 20
	cp.Reset()
	c.Internal(func() error { return c.Exec("BEGIN") })
	defer c.Internal(func() error { return c.Exec("ROLLBACK") })
	if _, err := run(c, "CREATE TABLE big (b BLOB)", nil); err != nil {
		t.Fatal(err)
	}
	cp.Reset()
	_, err := c.Run(context.Background(), []Statement{{SQL: "INSERT INTO big SELECT zeroblob(300000) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 20) SELECT i FROM r)"}}, cp)
	if tenant.ErrorCode(err) != tenant.ETOOLARGE {
		t.Fatalf("got %v, want ETOOLARGE", err)
	}
	if cp.Bytes() > cp.Limit {
		t.Fatalf("captured %d bytes, over the %d limit", cp.Bytes(), cp.Limit)
	}
	// SQLite rolls back the whole transaction of an interrupted write.
	if !c.Autocommit() {
		t.Fatal("the transaction is still open after the interrupt")
	}
	c.Internal(func() error { return c.Exec("BEGIN") })
	if _, err := run(c, "CREATE TABLE big (b BLOB)", nil); err != nil {
		t.Fatal(err)
	}
	// One value larger than the limit is not copied either.
	cp.Reset()
	_, err = c.Run(context.Background(), []Statement{{SQL: "INSERT INTO big VALUES (zeroblob(5000000))"}}, cp)
	if tenant.ErrorCode(err) != tenant.ETOOLARGE || cp.Bytes() != 0 {
		t.Fatalf("got %v with %d bytes captured, want ETOOLARGE and none", err, cp.Bytes())
	}
}

// TestCTASTravelsAsRows: CREATE TABLE ... AS SELECT is captured as the
// table SQLite made and its rows, never as its SELECT (which would run
// again, differently, on every copy).
func TestCTASTravelsAsRows(t *testing.T) {
	c := openTest(t, Options{Tenant: true, Capture: true})
	cp := c.Capture()
	cp.Reset()
	if _, err := c.Run(context.Background(), []Statement{{SQL: "CREATE TABLE c AS SELECT random() AS r, ?1 AS p UNION ALL SELECT 2, 3", Params: []any{int64(5)}}}, cp); err != nil {
		t.Fatal(err)
	}
	got := cp.Changes()
	if len(got) != 3 || got[0].Operation != change.OpSQL || strings.Contains(got[0].SQL, "random") ||
		got[1].Operation != change.OpInsert || got[1].NewValues[1] != int64(5) || got[2].NewValues[0] != int64(2) {
		t.Fatalf("captured %+v", got)
	}
	// IF NOT EXISTS on an existing table changes nothing.
	cp.Reset()
	// SQLite sees the table exists while preparing: the statement is an
	// ordinary no-op schema statement, replayed as such.
	if _, err := c.Run(context.Background(), []Statement{{SQL: "CREATE TABLE IF NOT EXISTS c AS SELECT 1"}}, cp); err != nil {
		t.Fatal(err)
	}
	for _, ch := range cp.Changes() {
		if ch.Operation != change.OpSQL || !strings.Contains(ch.SQL, "IF NOT EXISTS") {
			t.Fatalf("captured %+v", cp.Changes())
		}
	}
}

// TestSequenceTable: tenants cannot write sqlite_sequence (it would not
// replicate), and AUTOINCREMENT still works.
func TestSequenceTable(t *testing.T) {
	c := openTest(t, Options{Tenant: true})
	if _, err := run(c, "CREATE TABLE s (id INTEGER PRIMARY KEY AUTOINCREMENT, v); INSERT INTO s (v) VALUES (1)", nil); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"UPDATE sqlite_sequence SET seq = 100", "DELETE FROM sqlite_sequence", "INSERT INTO sqlite_sequence VALUES ('s', 5)"} {
		if _, err := run(c, sql, nil); tenant.ErrorCode(err) != tenant.EFORBIDDEN {
			t.Errorf("%s: %v, want EFORBIDDEN", sql, err)
		}
	}
	if _, err := run(c, "SELECT seq FROM sqlite_sequence", nil); err != nil {
		t.Errorf("reading sqlite_sequence: %v", err)
	}
	for _, sql := range []string{"ALTER TABLE s RENAME TO s2", "DROP TABLE s2"} {
		if _, err := run(c, sql, nil); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

// TestMaxSize: a write past max_size fails with ETOOLARGE (KindQuota);
// apply mode is not bounded.
func TestMaxSize(t *testing.T) {
	c := openTest(t, Options{Tenant: true})
	if err := c.SetMaxSize(64 << 10); err != nil {
		t.Fatal(err)
	}
	_, err := run(c, "CREATE TABLE big (b); INSERT INTO big SELECT randomblob(1000) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 200) SELECT i FROM r)", nil)
	var se *Error
	if tenant.ErrorCode(err) != tenant.ETOOLARGE || !errors.As(err, &se) || se.Kind != KindQuota {
		t.Fatalf("got %v, want ETOOLARGE of KindQuota", err)
	}
	if err := c.ApplyMode(true); err != nil {
		t.Fatal(err)
	}
	err = c.Internal(func() error {
		return c.Exec("CREATE TABLE IF NOT EXISTS big (b); INSERT INTO big SELECT randomblob(1000) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 200) SELECT i FROM r)")
	})
	if err != nil {
		t.Fatalf("apply mode is bounded: %v", err)
	}
	if err := c.ApplyMode(false); err != nil {
		t.Fatal(err)
	}
}

func TestIsSelect(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT 1":                           true,
		"select*from t":                      true,
		"  -- why\n/* c */ Select 1":         true,
		"SELECT":                             true,
		"SELECTED":                           false,
		"select_x()":                         false,
		"WITH x AS (SELECT 1) DELETE FROM t": false,
		"INSERT INTO t SELECT 1":             false,
		"":                                   false,
		"-- SELECT 1":                        false,
		"/* SELECT 1":                        false,
	} {
		if got := IsSelect(sql); got != want {
			t.Errorf("IsSelect(%q) = %v, want %v", sql, got, want)
		}
	}
}

// BenchmarkOpenClose opens a connection to a file, reads from it and
// closes it, with other connections open beside it: what a database's
// cold open and an evicted one's close cost a node that holds many open.
// The cost must not grow with the connections open (it did, through the
// driver's walk of every connection's callbacks at close).
func BenchmarkOpenClose(b *testing.B) {
	path := b.TempDir() + "/db"
	c, err := Open("file:"+path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Exec("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		b.Fatal(err)
	}
	c.Close()
	for _, open := range []int{0, 1000, 4000} {
		b.Run(fmt.Sprintf("open=%d", open), func(b *testing.B) {
			var held []*Conn
			for range open {
				h, err := Open("file:"+path, Options{ReadOnly: true, Tenant: true})
				if err != nil {
					b.Fatal(err)
				}
				held = append(held, h)
			}
			defer func() {
				for _, h := range held {
					h.Close()
				}
			}()
			for b.Loop() {
				r, err := Open("file:"+path, Options{ReadOnly: true, Tenant: true})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := run(r, "SELECT count(*) FROM t", nil); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}
