package sqlite

import (
	"fmt"
	"reflect"
	"testing"
)

// TestRowidRange runs the INSERT forms tenants write on a writer with a
// rowid range and on one without, side by side: every new rowid on the
// first comes from the range (a rowid the statement gives is kept), and
// the rows, RETURNING results and errors are otherwise the same.
func TestRowidRange(t *testing.T) {
	const lo, hi = int64(1) << 43, int64(1)<<44 - 1
	schema := `CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, tok TEXT UNIQUE, n INT DEFAULT 7);
		CREATE TABLE b (tok TEXT PRIMARY KEY, v);
		CREATE TABLE c (id INTEGER PRIMARY KEY DESC, v);
		CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
		CREATE TABLE g (x INT, y INT GENERATED ALWAYS AS (x * 2));
		CREATE TABLE r ("rowid" TEXT, v);
		CREATE VIEW va AS SELECT tok, n FROM a;
		CREATE TRIGGER va_insert INSTEAD OF INSERT ON va BEGIN INSERT INTO a (tok, n) VALUES (new.tok, new.n); END`
	open := func(ranged bool) *Conn {
		c, err := Open(fmt.Sprintf("file:/sqlite-test-%d?vfs=memdb", memSeq.Add(1)), Options{Tenant: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := run(c, schema, nil); err != nil {
			t.Fatal(err)
		}
		if ranged {
			if err := c.SetRowidRange(lo, hi); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	plain, ranged := open(false), open(true)
	statements := []struct {
		sql    string
		params any
	}{
		{"INSERT INTO a (tok) VALUES ('x1')", nil},
		{"INSERT INTO a (tok, n) VALUES ('x2', 1), ('x3', 2)", nil},
		{"INSERT INTO a VALUES (NULL, 'x4', 3)", nil},
		{"INSERT INTO a VALUES (5, 'x5', 3)", nil},
		{"INSERT INTO a (id, tok) VALUES (NULL, 'x6')", nil},
		{"INSERT INTO a (tok) SELECT 'y' || value FROM json_each('[1, 2, 3]')", nil},
		{"INSERT INTO a DEFAULT VALUES", nil},
		{"INSERT INTO a (tok) VALUES ('x1') ON CONFLICT (tok) DO UPDATE SET n = n + 1", nil},
		{"INSERT INTO a AS q (tok) SELECT 'x2' ON CONFLICT (tok) DO UPDATE SET n = q.n + 10 RETURNING tok, n", nil},
		{"WITH s (v) AS (VALUES ('w1'), ('w2')) INSERT INTO a (tok) SELECT v FROM s", nil},
		{"INSERT OR IGNORE INTO a (tok) VALUES ('x1'), ('z1')", nil},
		{"REPLACE INTO a (tok, n) VALUES ('x3', 99)", nil},
		{"INSERT INTO a (tok) SELECT tok || '-again' FROM a WHERE tok LIKE 'w%'", nil},
		{`INSERT INTO "a" ("tok") VALUES ('q"uoted'); -- a comment`, nil},
		{"insert into a(tok) values ('lower') returning tok, n", nil},
		{"INSERT INTO a (tok) VALUES ('x1')", nil}, // a UNIQUE failure
		{"INSERT INTO main.b VALUES ('t1', 1), ('t2', 2)", nil},
		{"INSERT INTO b (tok, v) VALUES (?, ?)", []any{"t3", 3}},
		{"INSERT INTO b (tok, v) VALUES (:tok, :v)", map[string]any{"tok": "t4", "v": 4}},
		{"INSERT INTO b (rowid, tok) VALUES (NULL, 't5')", nil},
		{"INSERT INTO b SELECT tok || '-copy', n FROM a WHERE tok LIKE 'x%'", nil},
		{"INSERT INTO c (v) VALUES ('c1')", nil},
		{"INSERT INTO w VALUES ('k', 1)", nil},
		{"INSERT INTO g (x) VALUES (3)", nil},
		{"INSERT INTO g VALUES (4)", nil},
		{"INSERT INTO r VALUES ('in a column named rowid', 1)", nil},
		{"INSERT INTO va VALUES ('through a view', 1)", nil},
		{"INSERT INTO a (tok) VALUES ('one'); INSERT INTO b VALUES ('two', 2)", nil},
	}
	for _, st := range statements {
		want, werr := run(plain, st.sql, st.params)
		got, gerr := run(ranged, st.sql, st.params)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%s: error %v with a range, %v without", st.sql, gerr, werr)
		}
		if werr != nil {
			continue
		}
		last := len(got) - 1
		if !reflect.DeepEqual(got[last].Rows, want[last].Rows) || got[last].RowsAffected != want[last].RowsAffected {
			t.Errorf("%s: %v, %d rows with a range, %v, %d without", st.sql, got[last].Rows, got[last].RowsAffected, want[last].Rows, want[last].RowsAffected)
		}
	}
	// Same rows (but rowids) on both.
	for _, q := range []string{
		"SELECT tok, n FROM a ORDER BY tok", "SELECT tok, v FROM b ORDER BY tok", "SELECT v FROM c",
		"SELECT * FROM w", "SELECT x, y FROM g ORDER BY x", `SELECT "rowid", v FROM r`,
	} {
		want, _ := run(plain, q, nil)
		got, err := run(ranged, q, nil)
		if err != nil || !reflect.DeepEqual(got[0].Rows, want[0].Rows) {
			t.Errorf("%s: %v (%v) with a range, %v without", q, got[0].Rows, err, want[0].Rows)
		}
	}
	// Every rowid SQLite chose is in the range; the one the statement gave
	// is kept.
	for _, q := range []string{
		"SELECT id FROM a WHERE id <> 5", "SELECT rowid FROM b", "SELECT rowid FROM c",
		"SELECT rowid FROM g", "SELECT _rowid_ FROM r",
	} {
		res, err := run(ranged, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res[0].Rows) == 0 {
			t.Errorf("%s: no rows", q)
		}
		for _, row := range res[0].Rows {
			if id := row[0].(int64); id < lo || id > hi {
				t.Errorf("%s: rowid %d is outside %d..%d", q, id, lo, hi)
			}
		}
	}
	if res, _ := run(ranged, "SELECT count(*) FROM a WHERE id = 5 AND tok = 'x5'", nil); res[0].Rows[0][0] != int64(1) {
		t.Error("the rowid the statement gave was not kept")
	}
	// The function serves tenants' tables only.
	for _, table := range []string{"sqlite_sequence", "_hasvc_state"} {
		if _, err := run(ranged, "INSERT INTO b VALUES ('f', "+RowidFunc+"('"+table+"'))", nil); err == nil {
			t.Errorf("%s('%s') answered", RowidFunc, table)
		}
	}
	// last_insert_rowid is the range's.
	res, err := run(ranged, "INSERT INTO b VALUES ('last', 0)", nil)
	if err != nil || res[0].LastInsertID < lo || res[0].LastInsertID > hi {
		t.Errorf("last insert id %d (%v), want one in the range", res[0].LastInsertID, err)
	}
	// Rowids go on from the largest one in the range, also in a new
	// transaction on another connection.
	next, _ := run(ranged, "SELECT max(rowid) + 1 FROM b", nil)
	res, err = run(ranged, "INSERT INTO b VALUES ('after', 0)", nil)
	if err != nil || res[0].LastInsertID != next[0].Rows[0][0].(int64) {
		t.Errorf("next rowid %d (%v), want %v", res[0].LastInsertID, err, next[0].Rows[0][0])
	}
}

// TestRewriteInsertLeavesAlone checks the statements the rewrite must not
// touch.
func TestRewriteInsertLeavesAlone(t *testing.T) {
	describe := func(string) (*insertTarget, bool) {
		return &insertTarget{columns: []string{"id", "v"}, alias: "id", rowid: "rowid"}, true
	}
	for _, sql := range []string{
		"UPDATE t SET v = 1",
		"INSERT INTO temp.t VALUES (1, 2)",
		"INSERT INTO t (v) VALUES ((1)",
		"SELECT 'INSERT INTO t VALUES (1)'",
	} {
		if got, ok := rewriteInsert(sql, describe); ok {
			t.Errorf("%s: rewritten as %s", sql, got)
		}
	}
	got, ok := rewriteInsert("INSERT INTO t (v) VALUES (1) RETURNING id", describe)
	want := `INSERT INTO t ("v", "id") WITH _hasvc_src(c1) AS (VALUES (1)) SELECT c1, hasvc_rowid('t') FROM _hasvc_src WHERE true RETURNING id`
	if !ok || got != want {
		t.Errorf("rewritten as\n%s\nwant\n%s", got, want)
	}
}

// BenchmarkInsertRowids is one single-row INSERT with SQLite's rowids
// (plain) and with rowids from a range (ranged: the rewritten statement
// and RowidFunc), into an integer-keyed table and a text-keyed one.
func BenchmarkInsertRowids(b *testing.B) {
	for _, ranged := range []bool{false, true} {
		for _, table := range []string{"ints", "texts"} {
			name := table + "/plain"
			if ranged {
				name = table + "/ranged"
			}
			b.Run(name, func(b *testing.B) {
				c := openTest(b, Options{Tenant: true})
				if _, err := run(c, "CREATE TABLE ints (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE texts (k TEXT PRIMARY KEY, v TEXT)", nil); err != nil {
					b.Fatal(err)
				}
				if ranged {
					if err := c.SetRowidRange(1<<43, 1<<44-1); err != nil {
						b.Fatal(err)
					}
				}
				sql := "INSERT INTO ints (v) VALUES (?)"
				if table == "texts" {
					sql = "INSERT INTO texts (k, v) VALUES (?, 'x')"
				}
				for i := 0; b.Loop(); i++ {
					if _, err := run(c, sql, []any{fmt.Sprint(i)}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
