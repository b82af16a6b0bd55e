package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// BenchmarkPGPreparedRound measures one Bind/Execute/Sync round of a
// prepared point select (pgbench -M prepared's shape) on one connection to
// an in-process node over loopback: the cost per message is what the
// pgbench comparison with PostgreSQL is made of. Two shapes: an integer
// column, and an integer and a text column.
//
//	go test -tags sqlite_preupdate_hook -run '^$' -bench PGPreparedRound -benchmem ./cmd/hasvc
func BenchmarkPGPreparedRound(b *testing.B) {
	n := startNode(b, b.TempDir(), nil)
	n.createDB("pb")
	n.ok("POST", "/db/pb", `{"sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"}`)
	n.ok("POST", "/db/pb", `{"sql": "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 10000) INSERT INTO users SELECT v, 'user-' || v, v FROM s"}`)
	ctx := context.Background()
	pc, err := pgconn.Connect(ctx, n.pgDSN("pb", n.admin))
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(ctx)
	for _, shape := range []struct{ name, sql string }{
		{"int", "SELECT n FROM users WHERE id = $1"},
		{"int+text", "SELECT id, name FROM users WHERE id = $1"},
	} {
		if _, err := pc.Prepare(ctx, shape.name, shape.sql, nil); err != nil {
			b.Fatal(err)
		}
		b.Run(shape.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				id := []byte(fmt.Sprint(i%10000 + 1))
				res := pc.ExecPrepared(ctx, shape.name, [][]byte{id}, nil, nil).Read()
				if res.Err != nil || len(res.Rows) != 1 {
					b.Fatalf("%v, %d rows", res.Err, len(res.Rows))
				}
			}
		})
	}
}
