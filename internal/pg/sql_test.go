package pg

import (
	"fmt"
	"testing"
)

type fakeSubs struct{}

func (fakeSubs) builtin(name string) (string, bool) {
	switch name {
	case "version()":
		return "PostgreSQL 15.0", true
	case "current_user":
		return "alice", true
	}
	return "", false
}

func (fakeSubs) lookupSetting(name string) (string, bool) {
	if name == "application_name" {
		return "app", true
	}
	return "", false
}

func TestSplitStatements(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1; SELECT 2;":                  "[SELECT 1 SELECT 2]",
		"SELECT ';'; -- a; comment\n SELECT 2": "[SELECT ';' -- a; comment\n SELECT 2]",
		"  ;; /* only; a comment */ ;":         "[]",
		`SELECT "a;b" FROM t; SELECT $$x;y$$`:  `[SELECT "a;b" FROM t SELECT $$x;y$$]`,
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO l VALUES (1); UPDATE c SET n = n + 1; END; SELECT 1": "[CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO l VALUES (1); UPDATE c SET n = n + 1; END SELECT 1]",
		"BEGIN; INSERT INTO t VALUES (1); COMMIT": "[BEGIN INSERT INTO t VALUES (1) COMMIT]",
		// Without a semicolon: one statement, or none.
		"  SELECT 1 -- done\n": "[SELECT 1 -- done]",
		"":                     "[]",
		" -- only a comment":   "[]",
		"/* a */ /* b */ \n":   "[]",
		"SELECT 1 ;; \n":       "[SELECT 1]",
		" ; ":                  "[]",
	} {
		if got := fmt.Sprint(splitStatements(in)); got != want {
			t.Errorf("splitStatements(%q)\n got %s\nwant %s", in, got, want)
		}
	}
}

// TestKeywordsAndCatalog: the first keywords of a statement, and which
// statements read PostgreSQL's catalog, in any case.
func TestKeywordsAndCatalog(t *testing.T) {
	if got := fmt.Sprint(keywords("  /* c */ rollback -- x\n to sp", 3)); got != "[ROLLBACK TO SP]" {
		t.Errorf("keywords: %s", got)
	}
	if got := fmt.Sprint(keywords("SELECT 1", 3)); got != "[SELECT 1]" {
		t.Errorf("keywords: %s", got)
	}
	for sql, want := range map[string]bool{
		"SELECT * FROM PG_CLASS":                     true,
		"select relname from pg_catalog.pg_class":    true,
		"SELECT * FROM Information_Schema.tables":    true,
		"SELECT Format_Type(23, -1)":                 true,
		"SELECT x::hasvc_regclass":                   true,
		"SELECT pg_class FROM t":                     true, // a bare catalog name: as PostgreSQL reads it
		"SELECT id, name FROM users WHERE id = 42":   false,
		"SELECT regexp FROM t":                       false, // a function's name, not called
		"SELECT 'pg_class', \"pg_catalog\".x FROM t": false,
		"SELECT aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa FROM pg_tables": true,
	} {
		if got := isCatalogQuery(sql); got != want {
			t.Errorf("isCatalogQuery(%q) = %v, want %v", sql, got, want)
		}
	}
}

// TestLiteralsAsParams: the values a SELECT's WHERE compares with become
// parameters; nothing else does.
func TestLiteralsAsParams(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT id, name FROM users WHERE id = 42", "SELECT id, name FROM users WHERE id = ? [42]"},
		{"SELECT * FROM t WHERE a >= 1.5 AND (b <> 'it''s' OR c != -3) AND d == 1e3 ORDER BY 2 LIMIT 5",
			"SELECT * FROM t WHERE a >= ? AND (b <> ? OR c != -3) AND d == ? ORDER BY 2 LIMIT 5 [1.5 it's 1000]"},
		{"SELECT a = 5, (SELECT count(*) FROM u WHERE u.x = 6) FROM t WHERE y = 7",
			"SELECT a = 5, (SELECT count(*) FROM u WHERE u.x = 6) FROM t WHERE y = ? [7]"},
		{"SELECT * FROM t WHERE x IN (SELECT y FROM u WHERE z = 3) GROUP BY a HAVING count(*) > 1",
			"SELECT * FROM t WHERE x IN (SELECT y FROM u WHERE z = ?) GROUP BY a HAVING count(*) > 1 [3]"},
		{"SELECT a FROM t WHERE x = 1 UNION SELECT b = 2 FROM u", "SELECT a FROM t WHERE x = ? UNION SELECT b = 2 FROM u [1]"},
		// Left alone: no comparison, other literals, or parameters already.
		{"SELECT * FROM t WHERE name LIKE 'a%' AND n IN (1, 2) AND m BETWEEN 3 AND 4", " []"},
		{"SELECT * FROM t WHERE b = X'00ff' AND e = E'\\x' AND c = '\\x00' AND h = 0x10 AND k = 9223372036854775808", " []"},
		{"SELECT * FROM t WHERE a = ? AND b = 1", " []"},
		{"SELECT * FROM t WHERE a = :a AND b = 1", " []"},
		{"SELECT * FROM t WHERE a = 'unterminated''", " []"},
		{"UPDATE t SET a = 1 WHERE b = 2", " []"},
		{"SELECT 1 FROM t JOIN u ON t.a = 5", " []"},
	} {
		sql, params := literalsAsParams(c.in)
		if got := fmt.Sprint(sql, " ", params); got != c.want {
			t.Errorf("literalsAsParams(%q)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestRewrite(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT $2, $1 FROM t WHERE a = $10", "SELECT ?2, ?1 FROM t WHERE a = ?10"},
		{"SELECT '$1', \"$2\"", "SELECT '$1', \"$2\""},
		{"SELECT $1::int8 + x::text", "SELECT CAST(?1 AS INTEGER) + CAST(x AS TEXT)"},
		{"SELECT count(*)::int, (a + b)::float8, t.c::varchar(10), 'x'::character varying", "SELECT CAST(count(*) AS INTEGER), CAST((a + b) AS REAL), CAST(t.c AS TEXT), CAST('x' AS TEXT)"},
		{"SELECT '\\x00ff'::bytea", "SELECT X'00ff'"},
		{"SELECT E'a\\nb\\'c'", "SELECT 'a\nb''c'"},
		{"SELECT $$it's$$", "SELECT 'it''s'"},
		{"SELECT pg_catalog.version()", `SELECT 'PostgreSQL 15.0' AS "version"`},
		{"SELECT version(), 1", `SELECT 'PostgreSQL 15.0' AS "version", 1`},
		{"SELECT x FROM t WHERE u = current_user", "SELECT x FROM t WHERE u = 'alice'"},
		{"SELECT current_setting('application_name')", `SELECT 'app' AS "current_setting"`},
		{"SELECT t.version FROM t", "SELECT t.version FROM t"},
		{"SELECT 1 -- $1::int\n", "SELECT 1 -- $1::int\n"},
	} {
		got, _ := rewrite(c.in, fakeSubs{})
		if got != c.want {
			t.Errorf("rewrite(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
	if _, n := rewrite("SELECT $3, $1", fakeSubs{}); n != 3 {
		t.Errorf("highest parameter %d, want 3", n)
	}
}

func TestInferParams(t *testing.T) {
	cols := map[string][]tableColumn{
		"t": {{"id", "INTEGER"}, {"name", "TEXT"}, {"ok", "BOOLEAN"}, {"raw", "BLOB"}, {"score", "REAL"}},
	}
	lookup := func(table string) []tableColumn { return cols[table] }
	for _, c := range []struct {
		sql  string
		n    int
		want string
	}{
		{"INSERT INTO t VALUES ($1, $2, $3, $4, $5)", 5, "[20 25 16 17 701]"},
		{"INSERT INTO t (raw, id) VALUES ($1, $2), ($3, $4) RETURNING id", 4, "[17 20 17 20]"},
		{"SELECT * FROM t WHERE id = $1 AND $2 < score AND name LIKE $3", 3, "[20 701 25]"},
		{"SELECT * FROM t WHERE id >= $1 AND id IN ($2, $3) LIMIT $4 OFFSET $5", 5, "[20 20 20 20 20]"},
		{"UPDATE t SET ok = $1, name = $2 WHERE id <> $3", 3, "[16 25 20]"},
		{"SELECT $1::text, $2", 2, "[25 0]"},
		{"SELECT * FROM nosuch WHERE x = $1", 1, "[0]"},
	} {
		got := inferParams(c.sql, make([]uint32, c.n), lookup)
		if fmt.Sprint(got) != c.want {
			t.Errorf("inferParams(%q) = %v, want %s", c.sql, got, c.want)
		}
	}
	// Types the client gave are kept.
	if got := inferParams("SELECT * FROM t WHERE id = $1", []uint32{25}, lookup); got[0] != 25 {
		t.Errorf("client type replaced: %v", got)
	}
}

func TestSelectColumns(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), x AS "Y" FROM t`: "[attname format_type Y]",
		"SELECT DISTINCT n.nspname, 1, CASE WHEN a THEN b END FROM n":                        "[nspname ?column? ?column?]",
		"SELECT count(*) FROM t WHERE (a, b) IN (SELECT 1, 2)":                               "[count]",
	} {
		if got := fmt.Sprint(selectColumns(in)); got != want {
			t.Errorf("selectColumns(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestColumnNames(t *testing.T) {
	sql := "SELECT count(*), CAST(x AS INTEGER), 'lit', a + 1, id, name AS \"a b\" FROM t"
	for name, want := range map[string]string{
		"count(*)":           "count",
		"CAST(x AS INTEGER)": "int8",
		"'lit'":              "?column?",
		"a + 1":              "?column?",
		"id":                 "id",
		"a b":                "a b",
	} {
		if got := columnName(name, sql); got != want {
			t.Errorf("columnName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestValueFormats(t *testing.T) {
	for _, c := range []struct {
		v    any
		oid  uint32
		want string
	}{
		{int64(-5), oidInt8, "-5"},
		{int64(1), oidBool, "t"},
		{int64(2), oidFloat8, "2"},
		{1.5, oidFloat8, "1.5"},
		{1e21, oidFloat8, "1e+21"},
		{3.0, oidInt8, "3"},
		{"héllo", oidText, "héllo"},
		{[]byte{0, 255}, oidBytea, `\x00ff`},
		{"ab", oidBytea, `\x6162`},
	} {
		if got := string(appendText(nil, c.v, c.oid)); got != c.want {
			t.Errorf("appendText(%v, %d) = %q, want %q", c.v, c.oid, got, c.want)
		}
	}
	for _, c := range []struct {
		raw    string
		format int16
		oid    uint32
		want   any
	}{
		{"42", 0, oidInt4, int64(42)},
		{"t", 0, oidBool, int64(1)},
		{"2.5", 0, oidFloat8, 2.5},
		{`\x0102`, 0, oidBytea, []byte{1, 2}},
		{"x", 0, 0, "x"},
		{"\x00\x00\x00\x07", 1, oidInt4, int64(7)},
		{"\x01", 1, oidBool, int64(1)},
	} {
		got, err := decodeParam([]byte(c.raw), c.format, c.oid)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("decodeParam(%q, %d, %d) = %v %v, want %v", c.raw, c.format, c.oid, got, err, c.want)
		}
	}
	if _, err := decodeParam([]byte("abc"), 0, oidInt8); err == nil {
		t.Error("text 'abc' accepted as int8")
	}
}

func TestRewriteSerial(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{`CREATE TABLE t (id SERIAL PRIMARY KEY, n int)`, `CREATE TABLE t (id INTEGER PRIMARY KEY, n int)`, ""},
		{`create table "T" ("Id" bigserial, x text, primary key ("Id"))`, `create table "T" ("Id" INTEGER, x text, primary key ("Id"))`, ""},
		{`CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY (START 5) PRIMARY KEY)`, `CREATE TABLE t (id INTEGER  PRIMARY KEY)`, ""},
		{`CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a + 1))`, `CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a + 1))`, ""},
		{`CREATE TABLE t (id serial, other serial PRIMARY KEY)`, "", "0A000"},
		{`CREATE TABLE t (id SERIAL, x int, PRIMARY KEY (id, x))`, "", "0A000"},
		{`CREATE INDEX serial ON t (x)`, `CREATE INDEX serial ON t (x)`, ""},
		{`SELECT 'SERIAL PRIMARY KEY'`, `SELECT 'SERIAL PRIMARY KEY'`, ""},
	} {
		got, err := rewriteSerial(c.in)
		if c.err != "" {
			if err == nil || err.code != c.err {
				t.Errorf("%s: error %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s:\n got %q (%v)\nwant %q", c.in, got, err, c.want)
		}
	}
}

func TestByteaLiterals(t *testing.T) {
	cols := func(string) []tableColumn { return []tableColumn{{"id", "INTEGER"}, {"b", "BLOB"}, {"s", "TEXT"}} }
	for _, c := range []struct{ in, want string }{
		{`INSERT INTO f VALUES (1, '\x00ff', '\x41')`, `INSERT INTO f VALUES (1, x'00ff', '\x41')`},
		{`INSERT INTO f (s, b) VALUES ('\x41', '\001\377'), ('a', 'plain')`, `INSERT INTO f (s, b) VALUES ('\x41', x'01ff'), ('a', 'plain')`},
		{`INSERT INTO f (b) VALUES ('\\001')`, `INSERT INTO f (b) VALUES (x'5c303031')`},
		{`UPDATE f SET b = '\x0a' WHERE b = '\x0b' OR s = '\x0c'`, `UPDATE f SET b = x'0a' WHERE b = x'0b' OR s = '\x0c'`},
		{`SELECT * FROM f WHERE b IN ('\x01', '\xzz')`, `SELECT * FROM f WHERE b IN (x'01', '\xzz')`},
	} {
		if got := byteaLiterals(c.in, cols); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}
