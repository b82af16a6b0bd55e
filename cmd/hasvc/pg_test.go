package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/lib/pq"

	"hasvc/internal/auth"
	"hasvc/internal/tenant"
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
	if _, err := c.Exec(ctx, `CREATE TABLE v (i BIGINT, f REAL, s TEXT, b BLOB, flag BOOLEAN, d DATE)`); err != nil {
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

// TestPGErrors checks SQLSTATEs of failed statements and connections.
func TestPGErrors(t *testing.T) {
	clock := &testClock{}
	n := startNodeClock(t, t.TempDir(), nil, clock)
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
	expired := n.token(auth.PermRead, time.Minute, "e")
	short := n.pgConnect("e", expired)
	if err := short.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
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

// TestMetrics reads /metrics with an admin token (it names every tenant's
// databases): per-database applied sequence and stuck flag, write totals,
// PostgreSQL sessions.
func TestMetrics(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("m")
	n.ok("POST", "/db/m", `[{"sql":"CREATE TABLE t (x)"},{"sql":"INSERT INTO t VALUES (1)"}]`)
	c := n.pgConnect("m", n.admin)
	if _, err := c.Exec(context.Background(), "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	status, body := n.do("GET", "/metrics", "", "")
	wantError(t, status, body, 401, "EUNAUTHORIZED")
	status, body = n.do("GET", "/metrics", n.token(auth.PermWrite, time.Hour, "*"), "")
	wantError(t, status, body, 403, "EFORBIDDEN")
	status, body = n.do("GET", "/metrics", n.admin, "")
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
		`hasvc_build_info{build_date="`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The build, also in GET /cluster, and readiness.
	if got := n.ok("GET", "/cluster", ""); !strings.Contains(got, `"version":"hasvc `) {
		t.Errorf("GET /cluster: %s", got)
	}
	if status, body := n.do("GET", "/readyz", "", ""); status != 200 || body != `{"status":"ready"}`+"\n" {
		t.Errorf("GET /readyz: %d %q", status, body)
	}
}

// TestPGIntegerWidthsAndKeys: INTEGER and SMALLINT columns are int4 and
// int2, as in PostgreSQL; a value SQLite stored that does not fit is never
// cut: the simple protocol announces the column wider, binary results
// refuse it with 22003, text results carry it exactly. SERIAL and IDENTITY
// primary keys are assigned; elsewhere they are refused.
func TestPGIntegerWidthsAndKeys(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("ints")
	ctx := context.Background()
	c := n.pgConnect("ints", n.admin)
	for _, sql := range []string{
		`CREATE TABLE w (i INTEGER, s SMALLINT, b BIGINT, big INTEGER)`,
		`INSERT INTO w VALUES (1, 2, 3, 1700000000000)`,
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := c.Query(ctx, `SELECT i, s, b FROM w`)
	if err != nil {
		t.Fatal(err)
	}
	var oids []uint32
	for _, fd := range rows.FieldDescriptions() {
		oids = append(oids, fd.DataTypeOID)
	}
	rows.Close()
	if fmt.Sprint(oids) != "[23 21 20]" {
		t.Fatalf("column types %v, want int4 int2 int8", oids)
	}
	var i int32
	var s int16
	var b int64
	if err := c.QueryRow(ctx, `SELECT i, s, b FROM w`).Scan(&i, &s, &b); err != nil || i != 1 || s != 2 || b != 3 {
		t.Fatalf("%v: %d %d %d", err, i, s, b)
	}
	var big int64
	err = c.QueryRow(ctx, `SELECT big FROM w`).Scan(&big)
	wantState(t, err, "22003")
	if !strings.Contains(err.Error(), "BIGINT") {
		t.Fatalf("the error does not say what to do: %v", err)
	}
	rows, err = c.Query(ctx, `SELECT big FROM w`, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	oid := rows.FieldDescriptions()[0].DataTypeOID
	rows.Next()
	vals, _ := rows.Values()
	rows.Close()
	if oid != 20 || fmt.Sprint(vals) != "[1700000000000]" {
		t.Fatalf("simple protocol: type %d, values %v", oid, vals)
	}

	for _, sql := range []string{
		`CREATE TABLE s1 (id SERIAL PRIMARY KEY, name TEXT)`,
		`CREATE TABLE s2 (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT)`,
		`CREATE TABLE s3 (id BIGSERIAL, name TEXT, CONSTRAINT pk PRIMARY KEY (id))`,
		`CREATE TABLE s4 (id integer GENERATED BY DEFAULT AS IDENTITY (START WITH 1 INCREMENT BY 1) PRIMARY KEY, name TEXT)`,
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		table := strings.Fields(sql)[2]
		var ids []int64
		rows, err := c.Query(ctx, `INSERT INTO `+table+` (name) VALUES ('a'), ('b') RETURNING id`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			ids = append(ids, id)
		}
		if rows.Close(); fmt.Sprint(ids) != "[1 2]" {
			t.Fatalf("%s: ids %v", table, ids)
		}
	}
	_, err = c.Exec(ctx, `CREATE TABLE s5 (id SERIAL, name TEXT)`)
	wantState(t, err, "0A000")
	_, err = c.Exec(ctx, `CREATE TABLE s6 (n INTEGER, id INTEGER GENERATED ALWAYS AS IDENTITY)`, pgx.QueryExecModeSimpleProtocol)
	wantState(t, err, "0A000")
	// A generated column of SQLite's own kind is not an identity.
	if _, err := c.Exec(ctx, `CREATE TABLE g (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2))`); err != nil {
		t.Fatal(err)
	}
}

// TestPGSimpleQueryValues: in the simple protocol a SELECT's compared
// values are bound as parameters; the answers are those of the literal
// text, and a partial index whose WHERE names a value still serves the
// query (SQLite prepares a statement again with the bound value when the
// value decides whether the index applies): 300 queries take
// milliseconds through the index, about 4 s as scans of 300,000 rows.
func TestPGSimpleQueryValues(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("simple")
	ctx := context.Background()
	c := n.pgConnect("simple", n.admin)
	pgExecAll(t, c, `CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT, n INTEGER, name TEXT)`)
	for k := range 6 { // a transaction's changes are bounded: 50,000 rows at a time
		pgExecAll(t, c, fmt.Sprintf(`INSERT INTO t WITH RECURSIVE s(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM s WHERE i < %d)
			SELECT i, CASE WHEN i %% 30000 = 0 THEN 'active' ELSE 'old' END, i %% 7, 'it''s ' || i FROM s`, k*50000+1, (k+1)*50000))
	}
	simple := func(sql string) string {
		t.Helper()
		return pgRows(t, c, fmt.Sprint, sql, pgx.QueryExecModeSimpleProtocol)
	}
	for _, tc := range []struct{ sql, want string }{
		{`SELECT id, name FROM t WHERE id = 42`, "42it's 42"},
		{`SELECT count(*) FROM t WHERE n >= 5 AND name <> 'it''s 7' AND id < 100`, "28"},
		{`SELECT id = 3, count(*) FROM t WHERE id <= 3 GROUP BY 1 ORDER BY 1`, "0 2; 1 1"},
		{`SELECT count(*) FROM t WHERE status = 'active' AND n = 1.0e0`, "2"},
	} {
		if got := simple(tc.sql); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.sql, got, tc.want)
		}
	}

	pgExecAll(t, c, `CREATE INDEX t_active ON t (n) WHERE status = 'active'`)
	start := time.Now()
	for i := range 300 {
		if got := simple(fmt.Sprintf(`SELECT count(*) FROM t WHERE status = 'active' AND n = %d`, i%7)); got != "1" && got != "2" && got != "0" {
			t.Fatalf("count %s", got)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("300 queries the partial index serves took %v: the index was not used", took)
	}
	var plan string
	if err := c.QueryRow(ctx, `EXPLAIN QUERY PLAN SELECT count(*) FROM t WHERE status = 'active' AND n = 1`, pgx.QueryExecModeSimpleProtocol).Scan(new(any), new(any), new(any), &plan); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "t_active") {
		t.Errorf("plan: %s", plan)
	}
}

// TestPGByteaLiterals: clients that put values into the SQL text (pgx's
// simple protocol here) send bytea as '\x...' literals; a BLOB column
// stores the bytes, as PostgreSQL's bytea does.
func TestPGByteaLiterals(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("bin")
	ctx := context.Background()
	c := n.pgConnect("bin", n.admin)
	if _, err := c.Exec(ctx, `CREATE TABLE f (id INTEGER PRIMARY KEY, data BLOB, note TEXT)`); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0xff, 0x10, '\\', 'x', '\''}
	if _, err := c.Exec(ctx, `INSERT INTO f (id, data, note) VALUES ($1, $2, $3)`, pgx.QueryExecModeSimpleProtocol, 1, want, `\x41 stays text`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `UPDATE f SET data = $1 WHERE data = $2`, pgx.QueryExecModeSimpleProtocol, append(want, 1), want); err != nil {
		t.Fatal(err)
	}
	var got []byte
	var note, typ string
	if err := c.QueryRow(ctx, `SELECT data, note, typeof(data) FROM f WHERE id = 1`).Scan(&got, &note, &typ); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(want, 1)) || note != `\x41 stays text` || typ != "blob" {
		t.Fatalf("data %x (%s), note %q", got, typ, note)
	}
	var ds string
	if err := c.QueryRow(ctx, `SHOW DateStyle`).Scan(&ds); err != nil || ds != "ISO, MDY" || c.PgConn().ParameterStatus("DateStyle") != "ISO, MDY" {
		t.Fatalf("DateStyle %q / %q (%v)", ds, c.PgConn().ParameterStatus("DateStyle"), err)
	}
}

// TestPGPostgresDatabase: psql -l and GUI tools connect to "postgres"
// first. Any valid token opens it: no tables, \l lists the databases the
// token covers, SQL that reads no table runs, writes are refused.
func TestPGPostgresDatabase(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("mine")
	n.createDB("theirs")
	ctx := context.Background()
	tok := n.token(auth.PermWrite, time.Hour, "mine")
	c := n.pgConnect("postgres", tok)
	var v string
	if err := c.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil || !strings.Contains(v, "PostgreSQL") {
		t.Fatalf("%q %v", v, err)
	}
	var one int64
	if err := c.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil || one != 1 {
		t.Fatal(err)
	}
	_, err := c.Exec(ctx, "CREATE TABLE t (x)")
	wantState(t, err, "25006")
	if psql, err := exec.LookPath("psql"); err == nil {
		out, err := exec.Command(psql, "-X", "-l", "-A", "-t", n.pgDSN("postgres", tok)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "mine|") || strings.Contains(string(out), "theirs") {
			t.Fatalf("psql -l: %v\n%s", err, out)
		}
	}
	// A bad token still gets nothing.
	_, err = pgx.Connect(ctx, n.pgDSN("postgres", "garbage"))
	wantState(t, err, "28P01")
	// A database a tenant named postgres is that database, with its own
	// access rules.
	n.createDB("postgres")
	_, err = pgx.Connect(ctx, n.pgDSN("postgres", tok))
	wantState(t, err, "28P01")
}

// TestPGEverydayFunctions: now() and gen_random_uuid() are evaluated
// where a statement runs, also in a prepared statement run twice.
func TestPGEverydayFunctions(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("fn")
	ctx := context.Background()
	c := n.pgConnect("fn", n.admin)
	if _, err := c.Exec(ctx, `CREATE TABLE ev (id TEXT PRIMARY KEY, at TEXT)`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Exec(ctx, `INSERT INTO ev (id, at) VALUES (gen_random_uuid(), now())`); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := c.Query(ctx, `SELECT id, at FROM ev`)
	if err != nil {
		t.Fatal(err)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+00$`)
	seen := map[string]bool{}
	for rows.Next() {
		var id, at string
		rows.Scan(&id, &at)
		if !uuid.MatchString(id) || !stamp.MatchString(at) || seen[id] {
			t.Fatalf("id %q, at %q", id, at)
		}
		seen[id] = true
	}
	if rows.Close(); len(seen) != 2 {
		t.Fatalf("%d rows", len(seen))
	}
	var name string
	if err := c.QueryRow(ctx, `SELECT now()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	fds := func() string {
		r, _ := c.Query(ctx, `SELECT now(), pg_catalog.gen_random_uuid()`)
		defer r.Close()
		return string(r.FieldDescriptions()[0].Name) + "," + string(r.FieldDescriptions()[1].Name)
	}()
	if fds != "now,gen_random_uuid" {
		t.Fatalf("column names %s", fds)
	}
}

// TestPGInformationSchema: information_schema.tables and .columns and
// pg_tables answer ordinary queries (filters, parameters, ORDER BY) with
// the database's tables, as GUI tools and ORMs browse them.
func TestPGInformationSchema(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("info")
	c := n.pgConnect("info", n.admin)
	pgExecAll(t, c,
		`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL DEFAULT 0)`,
		`CREATE INDEX users_name ON users (name)`,
		`CREATE VIEW names AS SELECT name FROM users`)
	collect := func(sql string, args ...any) string {
		t.Helper()
		return pgRows(t, c, fmt.Sprint, sql, args...)
	}
	if got := collect(`SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`); got != "namesVIEW; usersBASE TABLE" {
		t.Errorf("tables: %s", got)
	}
	if got := collect(`SELECT column_name, data_type, is_nullable, ordinal_position FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, "users"); got != "idintegerNO1; nametextNO2; scoredouble precisionYES3" {
		t.Errorf("columns: %s", got)
	}
	if got := collect(`SELECT tablename, hasindexes FROM pg_catalog.pg_tables WHERE schemaname = 'public'`, pgx.QueryExecModeSimpleProtocol); got != "userstrue" {
		t.Errorf("pg_tables: %s", got)
	}
	if got := collect(`SELECT count(*) FROM pg_tables`); got != "1" {
		t.Errorf("count: %s", got)
	}

	// SQLite keeps a view whose body no longer prepares (a function it
	// lacks, a table dropped under it). The catalog lists it without
	// columns; the rest of the schema still answers.
	pgExecAll(t, c,
		`CREATE TABLE gone (x INTEGER)`,
		`CREATE VIEW orphan AS SELECT x FROM gone`,
		`DROP TABLE gone`,
		`CREATE VIEW unknown_fn AS SELECT nosuchfn(1) AS y`)
	if got := collect(`SELECT count(*) FROM pg_tables`); got != "1" {
		t.Errorf("count with broken views: %s", got)
	}
	if got := collect(`SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW' ORDER BY 1`); got != "names; orphan; unknown_fn" {
		t.Errorf("views with broken ones: %s", got)
	}
	if got := collect(`SELECT count(*) FROM information_schema.columns WHERE table_name IN ('orphan', 'unknown_fn')`); got != "0" {
		t.Errorf("broken views' columns: %s", got)
	}
}

// TestPGCatalogBrowse: the queries GUI tools and ORMs browse with
// (pg_class, pg_namespace, pg_attribute, pg_type, pg_index,
// pg_constraint joined and filtered, with regclass casts, format_type,
// = ANY, regular expressions) answer from the database's schema.
func TestPGCatalogBrowse(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("browse")
	ctx := context.Background()
	c := n.pgConnect("browse", n.admin)
	pgExecAll(t, c,
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE, total REAL DEFAULT 0, note VARCHAR(20))`,
		`CREATE INDEX orders_customer ON orders (customer_id, total)`,
		`CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100`)
	spaced := func(vals ...any) string { return strings.TrimSpace(fmt.Sprintln(vals...)) }
	collect := func(sql string, args ...any) string {
		t.Helper()
		return pgRows(t, c, spaced, sql, args...)
	}
	for _, tc := range []struct{ sql, want string }{
		{`SELECT n.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = ANY('{r,v}') AND n.nspname = 'public' ORDER BY 2`,
			"public big_orders v; public customers r; public orders r"},
		{`SELECT relname FROM pg_class WHERE relkind = ANY(ARRAY['i']) AND relname !~ '_pkey$' ORDER BY 1`,
			"customers_name_key; orders_customer"},
		{`SELECT relname FROM pg_class WHERE relname ~* '^ORD' AND relkind <> ALL(ARRAY['i']) ORDER BY 1`, "orders"},
		{`SELECT a.attnum, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,
				pg_get_expr(d.adbin, d.adrelid) AS default
			FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = 'public.orders'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
			"1 id integer true false <nil>; 2 customer_id integer true false <nil>; 3 total double precision false true 0; 4 note text false false <nil>"},
		{`SELECT attname, atttypid::regtype::text FROM pg_attribute WHERE attrelid = 'customers'::regclass ORDER BY attnum`,
			"id integer; name text"},
		{`SELECT indexrelid::regclass::text, indrelid::regclass::text, indisunique, indisprimary, indkey, pg_get_indexdef(indexrelid)
			FROM pg_index WHERE indrelid = 'orders'::regclass ORDER BY indisprimary DESC`,
			"orders_pkey orders true true 1 CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id); " +
				"orders_customer orders false false 2 3 CREATE INDEX orders_customer ON public.orders USING btree (customer_id, total)"},
		{`SELECT conname, contype, confrelid::regclass::text, conkey, confkey, pg_get_constraintdef(oid, true)
			FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY conname`,
			"orders_customer_id_fkey f customers {2} {1} FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE; " +
				"orders_pkey p - {1} <nil> PRIMARY KEY (id)"},
		{`SELECT t.typname, t.typlen FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE t.typname IN ('int4', 'text', 'bool') ORDER BY 1`, "bool 1; int4 4; text -1"},
		{`SELECT count(*) FROM pg_database WHERE datname = current_database()`, "1"},
		{`SELECT viewname, definition FROM pg_views`, "big_orders SELECT * FROM orders WHERE total > 100"},
		{`SELECT schema_name FROM information_schema.schemata`, "public"},
		// Beyond what the rewrites cover: no rows, the columns named.
		{`SELECT r.rolname, ARRAY(SELECT b.rolname FROM pg_catalog.pg_roles b) AS memberof FROM pg_catalog.pg_roles r`, ""},
	} {
		var args []any
		if strings.Contains(tc.sql, "$1") {
			args = append(args, "orders")
		}
		if got := collect(tc.sql, args...); got != tc.want {
			t.Errorf("%s\n got %q\nwant %q", tc.sql, got, tc.want)
		}
	}
	_, err := c.Exec(ctx, `DELETE FROM pg_class`)
	if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("writing the catalog: %v, want 42501", err)
	}
}

// pgExecAll runs statements on c, failing the test at the first error.
func pgExecAll(t *testing.T, c *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, sql := range stmts {
		if _, err := c.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// pgRows runs a query on c and returns its rows, each formatted by
// format, joined by "; ".
func pgRows(t *testing.T, c *pgx.Conn, format func(...any) string, sql string, args ...any) string {
	t.Helper()
	rows, err := c.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, format(vals...))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return strings.Join(out, "; ")
}

// TestPGEventualRowids reads the rowids an eventual-mode database hands
// out (above 2^43: each node has its own range) with pgx in every protocol
// mode: an INTEGER column is int8 there, so no client gets a value out of
// its range.
func TestPGEventualRowids(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.ok("POST", "/databases", `{"name": "ev", "mode": "eventual"}`)
	n.ok("POST", "/db/ev", `{"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, parent INT)"}`)
	c := n.pgConnect("ev", n.admin)
	ctx := context.Background()
	var id int64
	if err := c.QueryRow(ctx, "INSERT INTO t (name) VALUES ($1) RETURNING id", "first").Scan(&id); err != nil {
		t.Fatal(err)
	}
	lo, hi := tenant.RowidRange(1)
	if id < lo || id > hi {
		t.Fatalf("id %d, want one in the node's range %d..%d", id, lo, hi)
	}
	if _, err := c.Exec(ctx, "INSERT INTO t (name, parent) VALUES ('second', $1)", id); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeSimpleProtocol} {
		var got, parent int64
		err := c.QueryRow(ctx, "SELECT id, parent FROM t WHERE name = 'second'", mode).Scan(&got, &parent)
		if err != nil || got != id+1 || parent != id {
			t.Errorf("mode %v: id %d, parent %d (%v), want %d and %d", mode, got, parent, err, id+1, id)
		}
	}
}

// TestSchemaChangeUnderCachedStatements: a statement text cached on a
// reader or on the connection that describes statements, prepared before
// another request changed the schema (a column added under SELECT *),
// answers with the new columns over HTTP and over pgwire, whether the
// client parses it every time (the unnamed statement) or not at all (the
// simple protocol). A statement the client prepared and described before
// the change is refused as PostgreSQL refuses it, and a new one works.
func TestSchemaChangeUnderCachedStatements(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("sc")
	n.ok("POST", "/db/sc", `{"sql": "CREATE TABLE t (a INTEGER, b TEXT)"}`)
	n.ok("POST", "/db/sc", `{"sql": "INSERT INTO t VALUES (1, 'x')"}`)
	ctx := context.Background()
	c := n.pgConnect("sc", n.admin)
	defer c.Close(ctx)
	columns := func(mode pgx.QueryExecMode) []string {
		t.Helper()
		rows, err := c.Query(ctx, "SELECT * FROM t", mode)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var names []string
		for _, f := range rows.FieldDescriptions() {
			names = append(names, f.Name)
		}
		for rows.Next() {
			if vals, err := rows.Values(); err != nil || len(vals) != len(names) {
				t.Fatalf("%v: %d values for %d columns (%v)", mode, len(vals), len(names), err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		return names
	}
	modes := []pgx.QueryExecMode{pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}
	for range 3 { // cached everywhere
		for _, mode := range modes {
			if got := strings.Join(columns(mode), ","); got != "a,b" {
				t.Fatalf("%v before: columns %s", mode, got)
			}
		}
		n.ok("POST", "/db/sc", `{"sql": "SELECT * FROM t"}`)
	}
	if _, err := c.Prepare(ctx, "before", "SELECT * FROM t"); err != nil {
		t.Fatal(err)
	}
	n.ok("POST", "/db/sc", `{"sql": "ALTER TABLE t ADD COLUMN c TEXT DEFAULT 'new'"}`)
	for range 3 {
		if got := n.ok("POST", "/db/sc", `{"sql": "SELECT * FROM t"}`); !strings.Contains(got, `"columns":["a","b","c"]`) || !strings.Contains(got, `"new"`) {
			t.Fatalf("HTTP after: %s", got)
		}
		for _, mode := range modes {
			if got := strings.Join(columns(mode), ","); got != "a,b,c" {
				t.Fatalf("%v after: columns %s", mode, got)
			}
		}
	}
	_, err := c.Exec(ctx, "before")
	wantState(t, err, "0A000")
	if _, err := c.Prepare(ctx, "after", "SELECT * FROM t"); err != nil {
		t.Fatal(err)
	}
	var a int64
	var b, cc string
	if err := c.QueryRow(ctx, "after").Scan(&a, &b, &cc); err != nil || cc != "new" {
		t.Fatalf("a statement prepared after the change: %v %q", err, cc)
	}
}
