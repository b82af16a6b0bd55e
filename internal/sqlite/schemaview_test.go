package sqlite

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestSchemaHidesBookkeeping reads the schema table the ways tenants and
// their tools write it, on a writer and on a reader, and checks that
// hasvc's own tables are never listed while the tenant's all are.
func TestSchemaHidesBookkeeping(t *testing.T) {
	dsn := fmt.Sprintf("file:/sqlite-test-%d?vfs=memdb", memSeq.Add(1))
	w, err := Open(dsn, Options{Tenant: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Internal(func() error {
		return w.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE);
			CREATE TABLE _hasvc_state (applied_seq INTEGER);
			CREATE INDEX _hasvc_state_seq ON _hasvc_state (applied_seq);
			CREATE TABLE _HASVC_upper (x)`)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(w, "CREATE INDEX t_v ON t (v)", nil); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dsn, Options{Tenant: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	all := []any{"sqlite_autoindex_t_1", "t", "t_v"}
	queries := []struct {
		sql    string
		params any
		want   []any
	}{
		{"SELECT name FROM sqlite_master ORDER BY 1", nil, all},
		{"select name from SQLITE_SCHEMA order by 1", nil, all},
		{"SELECT name FROM main.sqlite_master ORDER BY 1", nil, all},
		{`SELECT name FROM "main"."sqlite_schema" ORDER BY 1`, nil, all},
		{"SELECT name FROM [sqlite_master] ORDER BY 1", nil, all},
		{"SELECT name FROM `sqlite_master` ORDER BY 1", nil, all},
		{"SELECT m.name FROM sqlite_master AS m ORDER BY 1", nil, all},
		{"SELECT sqlite_master.name FROM sqlite_master ORDER BY 1", nil, all},
		{"SELECT main.sqlite_master.name FROM main.sqlite_master ORDER BY 1", nil, all},
		{"WITH s AS (SELECT * FROM sqlite_schema) SELECT name FROM s ORDER BY 1", nil, all},
		{"SELECT name FROM t JOIN sqlite_master ON 1 ORDER BY 1", nil, []any{}},
		{"/* sqlite_master */ SELECT count(*) FROM sqlite_master WHERE name LIKE '_hasvc%' OR tbl_name = 'sqlite_master'", nil, []any{int64(0)}},
		{"SELECT (SELECT count(*) FROM sqlite_schema WHERE type = 'table')", nil, []any{int64(1)}},
		{"SELECT name FROM sqlite_master WHERE type = :sqlite_master ORDER BY 1", map[string]any{"sqlite_master": "index"}, []any{"sqlite_autoindex_t_1", "t_v"}},
		{"SELECT 'sqlite_master'", nil, []any{"sqlite_master"}},
		{"SELECT count(*) FROM sqlite_temp_master", nil, []any{int64(0)}},
		{"SELECT count(*) FROM temp.sqlite_schema", nil, []any{int64(0)}},
		{"SELECT count(*) FROM sqlite_master; SELECT count(*) FROM sqlite_master", nil, []any{int64(3)}},
	}
	for _, c := range []*Conn{w, r} {
		for round := 0; round < 2; round++ { // the second from the statement cache
			for _, q := range queries {
				res, err := run(c, q.sql, q.params)
				if err != nil {
					t.Errorf("%s: %v", q.sql, err)
					continue
				}
				got := []any{}
				for _, row := range res[0].Rows {
					got = append(got, row[0])
				}
				if !reflect.DeepEqual(got, q.want) {
					t.Errorf("%s (reader %v): %v, want %v", q.sql, c == r, got, q.want)
				}
			}
		}
	}

	// The rows a tenant sees are the schema table's, columns and declared
	// types included.
	res, err := run(r, "SELECT * FROM sqlite_master WHERE name = 't'", nil)
	if err != nil {
		t.Fatal(err)
	}
	var own []Result
	err = r.Internal(func() error {
		own, err = run(r, "SELECT * FROM sqlite_master WHERE name = 't'", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res, own) {
		t.Errorf("tenant sees %+v; the schema table holds %+v", res, own)
	}

	// A column named by its expression keeps the tenant's text.
	expr := "SELECT (SELECT count(*) FROM sqlite_schema WHERE name = 't')"
	if res, err := run(w, expr, nil); err != nil || res[0].Columns[0] != expr[7:] || res[0].Rows[0][0] != int64(1) {
		t.Errorf("%s: %+v, %v", expr, res, err)
	}

	for _, sql := range []string{"SELECT * FROM _hasvc_state", "SELECT * FROM sqlite_master, _hasvc_state"} {
		if _, err := run(w, sql, nil); err == nil {
			t.Errorf("%s: allowed", sql)
		}
	}
	// hasvc's own SQL still sees everything.
	var n int64
	err = w.Internal(func() error {
		n, err = w.QueryInt64("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_hasvc%' ESCAPE '\\'")
		return err
	})
	if err != nil || n != 3 {
		t.Errorf("internal count of hasvc's rows: %d, %v; want 3", n, err)
	}
	// Schema statements are not renamed: a view stored in the file cannot
	// refer to a temporary one.
	if _, err := run(w, "CREATE VIEW names AS SELECT name FROM sqlite_master", nil); err != nil {
		t.Errorf("CREATE VIEW over sqlite_master: %v", err)
	}
	if _, err := w.ReadOnly(context.Background(), "SELECT name FROM sqlite_master"); err != nil {
		t.Errorf("ReadOnly: %v", err)
	}
}

func TestRenameSchemaTables(t *testing.T) {
	main, temp := schemaSubquery("main"), schemaSubquery("temp")
	for _, tc := range []struct{ in, want string }{
		{"SELECT * FROM sqlite_master", "SELECT * FROM " + main + " AS sqlite_master"},
		{"SELECT * FROM main . sqlite_schema x", "SELECT * FROM " + main + " x"},
		{"SELECT * FROM sqlite_schema AS x WHERE 1", "SELECT * FROM " + main + " AS x WHERE 1"},
		{"SELECT * FROM SQLITE_MASTER where 1", "SELECT * FROM " + main + " AS SQLITE_MASTER where 1"},
		{"SELECT * FROM sqlite_master, t", "SELECT * FROM " + main + " AS sqlite_master, t"},
		{"SELECT * FROM t JOIN sqlite_master s ON 1", "SELECT * FROM t JOIN " + main + " s ON 1"},
		{"SELECT * FROM sqlite_master JOIN t ON 1", "SELECT * FROM " + main + " AS sqlite_master JOIN t ON 1"},
		{"SELECT * FROM (SELECT * FROM sqlite_master)", "SELECT * FROM (SELECT * FROM " + main + " AS sqlite_master)"},
		{"SELECT * FROM temp.sqlite_master", "SELECT * FROM " + temp + " AS sqlite_master"},
		{"SELECT * FROM sqlite_temp_schema", "SELECT * FROM " + temp + " AS sqlite_temp_schema"},
		{`SELECT "sqlite_master".name FROM "sqlite_master"`, `SELECT "sqlite_master".name FROM ` + main + ` AS "sqlite_master"`},
		{"SELECT main.sqlite_master.name FROM main.sqlite_master", "SELECT sqlite_master.name FROM " + main + " AS sqlite_master"},
		{"SELECT name AS sqlite_master FROM sqlite_master", "SELECT name AS sqlite_master FROM " + main + " AS sqlite_master"},
		{"SELECT t.sqlite_master FROM t", ""},
		{"SELECT other.sqlite_master.x FROM other.sqlite_master", ""},
		{"SELECT sqlite_master(1)", ""},
		{"SELECT 'sqlite_master', x'00' -- sqlite_master\n", ""},
		{"SELECT :sqlite_master, @sqlite_master, $sqlite_master", ""},
		{"SELECT 'it''s', \"a\"\"b\" FROM sqlite_master", "SELECT 'it''s', \"a\"\"b\" FROM " + main + " AS sqlite_master"},
		{"SELECT * FROM [sqlite_master] /* unterminated", "SELECT * FROM " + main + " AS [sqlite_master] /* unterminated"},
		{"SELECT rowid, name FROM sqlite_master", ""},
		{"SELECT name FROM sqlite_master ORDER BY \"OID\"", ""},
	} {
		got, ok := renameSchemaTables(tc.in)
		want := tc.want
		if want == "" {
			want = tc.in
		}
		if got != want || ok != (tc.want != "") {
			t.Errorf("%q:\n got  %q, %v\n want %q", tc.in, got, ok, want)
		}
	}
	// Every prefix of a text ends in a token: nothing loops or panics.
	s := "SELECT \"a\" [b] `c` 'd' /* e */ -- f\n 1.5e3 :p ?"
	for i := range len(s) {
		renameSchemaTables(strings.Repeat(s[:i], 2))
	}
}

// BenchmarkOpenTenant is the cost of opening a tenant connection, views
// included, and running a first query (which loads the schema).
func BenchmarkOpenTenant(b *testing.B) {
	dsn := fmt.Sprintf("file:%s/b.db", b.TempDir())
	c, err := Open(dsn, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v)"); err != nil {
		b.Fatal(err)
	}
	c.Close()
	for _, tenant := range []bool{false, true} {
		b.Run(fmt.Sprintf("tenant=%v", tenant), func(b *testing.B) {
			for b.Loop() {
				c, err := Open(dsn, Options{Tenant: tenant, ReadOnly: true})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := run(c, "SELECT v FROM t WHERE id = 1", nil); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
