package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"hasvc/internal/change"
)

// TestLWWOrderFree: eventual-mode messages applied in any order leave
// every copy with the same rows (each row the version with the latest
// timestamp, ties by node) and, for these conflicts (concurrent writes
// on top of one version, and a sequential pair), the same conflict log:
// each version overwritten by a write that had not seen it, once.
func TestLWWOrderFree(t *testing.T) {
	id := func(n int64) *int64 { return change.RowID(n) }
	v := func(ts int64, node string) *change.Version { return &change.Version{Timestamp: ts, Node: node} }
	row := func(op, tbl string, rowid int64, old, new change.Values, base *change.Version) change.Change {
		c := change.Change{Database: "main", Table: tbl, Operation: op, Base: base}
		if tbl == "lw" {
			c.Columns = []string{"id", "v"}
			if op != change.OpInsert {
				c.OldRowID = id(rowid)
			}
			if op != change.OpDelete {
				c.NewRowID = id(rowid)
			}
		} else {
			c.Columns = []string{"k", "v"}
		}
		c.OldValues, c.NewValues = old, new
		return c
	}
	msg := func(ts int64, node string, changes ...change.Change) change.Message {
		return change.Message{Node: node, Timestamp: ts, LWW: true, Changes: changes}
	}
	setup := msg(1, "a",
		change.Change{Database: "main", Operation: change.OpSQL, SQL: "CREATE TABLE lw (id INTEGER PRIMARY KEY, v TEXT)"},
		change.Change{Database: "main", Operation: change.OpSQL, SQL: "CREATE TABLE lkv (k TEXT PRIMARY KEY, v) WITHOUT ROWID"},
		row(change.OpInsert, "lw", 1, nil, change.Values{int64(1), "init"}, nil),
		row(change.OpInsert, "lw", 2, nil, change.Values{int64(2), "init"}, nil),
	)
	base := v(1, "a")
	concurrent := []change.Message{
		msg(10, "a", row(change.OpUpdate, "lw", 1, change.Values{int64(1), "init"}, change.Values{int64(1), "from a"}, base)),
		msg(11, "b", row(change.OpUpdate, "lw", 1, change.Values{int64(1), "init"}, change.Values{int64(1), "from b"}, base)),
		msg(9, "c", row(change.OpUpdate, "lw", 1, change.Values{int64(1), "init"}, change.Values{int64(1), "from c"}, base)),
		msg(20, "a", row(change.OpDelete, "lw", 2, change.Values{int64(2), "init"}, nil, base)),
		msg(19, "b", row(change.OpUpdate, "lw", 2, change.Values{int64(2), "init"}, change.Values{int64(2), "from b"}, base)),
		msg(30, "a", row(change.OpInsert, "lkv", 0, nil, change.Values{"x", int64(1)}, nil)),
		msg(30, "b", row(change.OpInsert, "lkv", 0, nil, change.Values{"x", int64(2)}, nil)),
		// b saw a's version 10 of row 3's neighbour: a sequential
		// write, no conflict.
		msg(40, "a", row(change.OpInsert, "lw", 3, nil, change.Values{int64(3), "a1"}, nil)),
		msg(41, "a", row(change.OpUpdate, "lw", 3, change.Values{int64(3), "a1"}, change.Values{int64(3), "a2"}, v(40, "a"))),
	}
	// The sequential pair keeps its order (the second was written on
	// top of the first); the rest come in every order tried.
	orders := [][]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8},
		{2, 1, 0, 4, 3, 6, 5, 7, 8},
		{1, 7, 2, 6, 0, 8, 4, 5, 3},
	}
	var want string
	for n, order := range orders {
		c := openTest(t, Options{})
		apply := func(m change.Message) {
			t.Helper()
			if err := c.ApplyMode(true); err != nil {
				t.Fatal(err)
			}
			defer c.ApplyMode(false)
			if err := c.Internal(func() error { return c.Exec("BEGIN") }); err != nil {
				t.Fatal(err)
			}
			if err := c.ApplyMessage(&m, false); err != nil {
				t.Fatalf("apply %d/%s: %v", m.Timestamp, m.Node, err)
			}
			if err := c.Internal(func() error { return c.Exec("COMMIT") }); err != nil {
				t.Fatal(err)
			}
		}
		apply(setup)
		for _, i := range order {
			apply(concurrent[i])
		}
		var got []string
		dump := func(sql string) {
			err := c.Internal(func() error {
				return c.queryValues(sql, nil, func(vals []any) error {
					b, _ := json.Marshal(vals)
					got = append(got, string(b))
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		dump("SELECT * FROM lw ORDER BY id")
		dump("SELECT * FROM lkv ORDER BY k")
		dump("SELECT tbl, rowkey, ts, node, vals FROM _hasvc_conflicts ORDER BY tbl, rowkey, ts, node")
		state := strings.Join(got, "\n")
		if n == 0 {
			want = state
			for _, s := range []string{`[1,"from b"]`, `[3,"a2"]`, `["x",2]`, `["lw",1,9,"c","[1,\"from c\"]"]`,
				`["lw",1,10,"a","[1,\"from a\"]"]`, `["lw",2,19,"b","[2,\"from b\"]"]`, `["lkv","[\"x\"]",30,"a","[\"x\",1]"]`} {
				if !strings.Contains(state, s) {
					t.Errorf("order %v: state lacks %s:\n%s", order, s, state)
				}
			}
			if !strings.HasPrefix(state, "[1,\"from b\"]\n[3,\"a2\"]\n[\"x\",2]\n") {
				t.Errorf("order %v: rows are not the winning versions (row 2 deleted at 20, row 3 as its second write left it):\n%s", order, state)
			}
			if n := len(slices.DeleteFunc(got, func(s string) bool { return !strings.HasPrefix(s, `["l`) })); n != 4 {
				t.Errorf("order %v: %d conflicts logged, want 4 (none for the sequential writes):\n%s", order, n, state)
			}
			continue
		}
		if state != want {
			t.Errorf("order %v differs from order %v:\n%s\nwant\n%s", order, orders[0], state, want)
		}
	}
}

// BenchmarkLWW is what last-writer-wins costs eventual mode per row: on
// the writing node, Stamp after the write (one version lookup and one
// upsert); on the others, applying the row with its version check, next
// to applying it by stream order. One single-row transaction per op, an
// integer key and a text key.
func BenchmarkLWW(b *testing.B) {
	ctx := context.Background()
	for _, table := range []string{"ints", "texts"} {
		insert := "INSERT INTO ints (id, v) VALUES (?, 'x')"
		if table == "texts" {
			insert = "INSERT INTO texts (k, v) VALUES (?, 'x')"
		}
		key := func(i int) any {
			if table == "texts" {
				return fmt.Sprintf("key-%d", i)
			}
			return int64(i)
		}
		for _, stamp := range []bool{false, true} {
			name := table + "/write"
			if stamp {
				name = table + "/write+stamp"
			}
			b.Run(name, func(b *testing.B) {
				c := openTest(b, Options{Tenant: true, Capture: true})
				if _, err := run(c, "CREATE TABLE ints (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE texts (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID", nil); err != nil {
					b.Fatal(err)
				}
				cp := c.Capture()
				for i := 0; b.Loop(); i++ {
					cp.Reset()
					c.Internal(func() error { return c.Exec("BEGIN") })
					if _, err := c.Run(ctx, []Statement{{SQL: insert, Params: []any{key(i)}}}, cp); err != nil {
						b.Fatal(err)
					}
					if stamp {
						if err := c.Stamp(cp.Changes(), change.Version{Timestamp: int64(i), Node: "n"}); err != nil {
							b.Fatal(err)
						}
					}
					c.Internal(func() error { return c.Exec("COMMIT") })
				}
			})
		}
		for _, lww := range []bool{false, true} {
			name := table + "/apply"
			if lww {
				name = table + "/apply-lww"
			}
			b.Run(name, func(b *testing.B) {
				c := openTest(b, Options{})
				if err := c.Internal(func() error {
					return c.Exec("CREATE TABLE ints (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE texts (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
				}); err != nil {
					b.Fatal(err)
				}
				if err := c.ApplyMode(true); err != nil {
					b.Fatal(err)
				}
				for i := 0; b.Loop(); i++ {
					ch := change.Change{Database: "main", Table: table, Operation: change.OpInsert, NewValues: change.Values{key(i), "x"}}
					if table == "ints" {
						ch.Columns, ch.NewRowID = []string{"id", "v"}, change.RowID(int64(i))
					} else {
						ch.Columns = []string{"k", "v"}
					}
					m := change.Message{Node: "n", Timestamp: int64(i), LWW: lww, Changes: []change.Change{ch}}
					c.Internal(func() error { return c.Exec("BEGIN") })
					if err := c.ApplyMessage(&m, false); err != nil {
						b.Fatal(err)
					}
					c.Internal(func() error { return c.Exec("COMMIT") })
				}
			})
		}
	}
}
