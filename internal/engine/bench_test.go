package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// BenchmarkCommitCeiling measures the in-process ceiling of a write: one
// SQLite transaction inserting a row plus one synchronous JetStream publish
// of its change message, no HTTP and no grouping.
func BenchmarkCommitCeiling(b *testing.B) {
	n := newTestNode(b, b.TempDir())
	defer n.close()
	ctx := context.Background()
	if _, err := n.eng.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "CEIL", Subjects: []string{"ceil"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	c, err := sqlite.Open("file:"+b.TempDir()+"/ceil.db", sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := prepareFile(c); err != nil {
		b.Fatal(err)
	}
	if err := c.Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := c.Exec("BEGIN IMMEDIATE"); err != nil {
			b.Fatal(err)
		}
		if err := c.Exec("INSERT INTO users (name, n) VALUES (?, ?)", fmt.Sprint("user-", i), int64(i)); err != nil {
			b.Fatal(err)
		}
		msg, _ := json.Marshal(change.Message{Node: "b", Changes: []change.Change{{Database: "main", Table: "users", Columns: []string{"id", "name", "n"},
			Operation: change.OpInsert, NewRowID: change.RowID(int64(i)), NewValues: change.Values{int64(i), fmt.Sprint("user-", i), int64(i)}}}})
		if _, err := n.eng.JS.Publish(ctx, "ceil", msg, jetstream.WithExpectLastSequence(uint64(i))); err != nil {
			b.Fatal(err)
		}
		if err := c.Exec("COMMIT"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPointSelect measures a point select through DB.Exec on a reader.
func BenchmarkPointSelect(b *testing.B) {
	n := newTestNode(b, b.TempDir())
	defer n.close()
	ctx := context.Background()
	if _, err := n.eng.Create(ctx, tenant.Config{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	db, release, err := n.eng.Acquire(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	if _, err := db.Exec(ctx, []sqlite.Statement{{SQL: "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"},
		{SQL: "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 10000) INSERT INTO users SELECT v, 'user-' || v, v FROM s"}}, ExecOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := db.Exec(ctx, []sqlite.Statement{{SQL: "SELECT id, name, n FROM users WHERE id = ?", Params: []any{int64(i%10000 + 1)}}}, ExecOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
