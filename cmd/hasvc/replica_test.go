package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hasvc/internal/auth"
	"hasvc/internal/replica"
)

// TestReplica follows a database into a local file through writes of
// every kind (inserts, updates, deletes, blobs and NULLs, schema changes),
// resumes after a stop without downloading again, and starts over from a
// new download when the stream was trimmed past it while it was stopped.
func TestReplica(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("rep")
	n.ok("POST", "/db/rep", `[{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB, x REAL)"},
		{"sql":"INSERT INTO t (v, b, x) VALUES ('one', x'00ff', 1.5), ('two', NULL, NULL)"}]`)
	reader := n.token(auth.PermRead, time.Hour, "rep")
	file := filepath.Join(t.TempDir(), "rep.db")

	var applied atomic.Uint64
	var start func() (stop func())
	start = func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		r := &replica.Replica{URLs: []string{"http://127.0.0.1:1", n.url}, DB: "rep", Token: reader, File: file,
			Applied: func(seq uint64) { applied.Store(seq) }}
		go func() { done <- r.Run(ctx) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("replica: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}
	// The node's and the replica's answer to the same query, once the
	// replica has applied the node's last sequence.
	const canon = `SELECT group_concat(id || '|' || ifnull(v, 'null') || '|' || ifnull(hex(b), 'null') || '|' || ifnull(x, 'null'), ',') FROM (SELECT * FROM t ORDER BY id)`
	same := func(what string) {
		t.Helper()
		var info struct {
			StreamSeq uint64 `json:"stream_seq"`
		}
		json.Unmarshal([]byte(n.ok("GET", "/databases/rep", "")), &info)
		deadline := time.Now().Add(10 * time.Second)
		for applied.Load() < info.StreamSeq {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the replica applied %d of %d", what, applied.Load(), info.StreamSeq)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var res struct {
			Results []struct{ Rows [][]any } `json:"results"`
		}
		json.Unmarshal([]byte(n.ok("POST", "/db/rep", fmt.Sprintf(`{"sql":%q}`, canon))), &res)
		want := fmt.Sprint(res.Results[0].Rows[0][0])
		if got := sqlite3Shell(t, file, canon); got != want {
			t.Fatalf("%s: replica has\n%s\nthe node\n%s", what, got, want)
		}
	}

	stop := start()
	same("after the download")
	for i := range 50 {
		n.ok("POST", "/db/rep", fmt.Sprintf(`{"sql":"INSERT INTO t (v, x) VALUES ('row %d', %d)"}`, i, i))
	}
	n.ok("POST", "/db/rep", `[{"sql":"UPDATE t SET v = upper(v), b = x'01' WHERE id % 3 = 0"},{"sql":"DELETE FROM t WHERE id % 5 = 0"}]`)
	n.ok("POST", "/db/rep", `{"sql":"ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'd'"}`)
	n.ok("POST", "/db/rep", `{"sql":"CREATE TABLE u (k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID"}`)
	n.ok("POST", "/db/rep", `{"sql":"INSERT INTO u VALUES ('a', 1), ('b', 2)"}`)
	same("after inserts, updates, deletes and schema changes")
	if got := sqlite3Shell(t, file, "SELECT group_concat(k || n) FROM u; SELECT count(*) FROM t WHERE extra = 'd'"); got != "a1,b2\n42" {
		t.Fatalf("replica's new table and column: %q", got)
	}
	stop()

	// Stopped: writes go on; started again, it resumes after its
	// sequence, without downloading the database again.
	before := applied.Load()
	n.ok("POST", "/db/rep", `{"sql":"INSERT INTO t (v) VALUES ('while stopped')"}`)
	fileBefore, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	applied.Store(0)
	stop = start()
	same("after a restart")
	if fileAfter, err := os.Stat(file); err != nil || !os.SameFile(fileBefore, fileAfter) {
		t.Fatalf("the replica downloaded the database again on restart (%v)", err)
	}
	if got := applied.Load(); got != before+1 {
		t.Fatalf("resumed at %d, want %d", got, before+1)
	}
	stop()

	// Trimmed past it while stopped: it downloads the database again.
	for range 5 {
		n.ok("POST", "/db/rep", `{"sql":"INSERT INTO t (v) VALUES ('trimmed away')"}`)
	}
	purgeBelow(t, n, "rep", before+4)
	stop = start()
	same("after the stream was trimmed past it")
	stop()

	// The command: --once catches up and exits; --min-seq waits for a
	// sequence; --url lists several nodes, the first of them down.
	var info struct {
		StreamSeq uint64 `json:"stream_seq"`
	}
	json.Unmarshal([]byte(n.ok("GET", "/databases/rep", "")), &info)
	env := func(k string) string {
		if k == "HA_TOKEN" {
			return reader
		}
		return ""
	}
	once := filepath.Join(t.TempDir(), "once.db")
	var out, errs strings.Builder
	if code := runReplica([]string{"--url", "http://127.0.0.1:1," + n.url, "--db", "rep", "--out", once, "--once"}, env, &out, &errs); code != 0 {
		t.Fatalf("replica --once: exit %d: %s", code, errs.String())
	}
	if got := sqlite3Shell(t, once, "SELECT seq FROM _hasvc_replica"); got != strconv.FormatUint(info.StreamSeq, 10) {
		t.Fatalf("--once stopped at %s, the database is at %d", got, info.StreamSeq)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		n.ok("POST", "/db/rep", `{"sql":"INSERT INTO t (v) VALUES ('awaited')"}`)
	}()
	want := strconv.FormatUint(info.StreamSeq+1, 10)
	if code := runReplica([]string{"--url", n.url, "--db", "rep", "--out", once, "--min-seq", want}, env, &out, &errs); code != 0 {
		t.Fatalf("replica --min-seq: exit %d: %s", code, errs.String())
	}
	if got := sqlite3Shell(t, once, "SELECT v FROM t ORDER BY id DESC LIMIT 1"); got != "awaited" {
		t.Fatalf("--min-seq %s: last row %q", want, got)
	}

	// --once on a database with no writes yet; a file that is not a
	// replica is refused at once, not retried.
	n.createDB("empty")
	emptyTok := n.token(auth.PermRead, time.Hour, "empty")
	emptyEnv := func(k string) string {
		if k == "HA_TOKEN" {
			return emptyTok
		}
		return ""
	}
	if code := runReplica([]string{"--url", n.url, "--db", "empty", "--out", filepath.Join(t.TempDir(), "e.db"), "--once"}, emptyEnv, &out, &errs); code != 0 {
		t.Fatalf("replica --once of an empty database: exit %d: %s", code, errs.String())
	}
	other := filepath.Join(t.TempDir(), "other.db")
	sqlite3Shell(t, other, "CREATE TABLE mine (a)")
	errs.Reset()
	if code := runReplica([]string{"--url", n.url, "--db", "rep", "--out", other}, env, &out, &errs); code != 1 || !strings.Contains(errs.String(), "not a replica") {
		t.Fatalf("a file that is not a replica: exit %d: %s", code, errs.String())
	}
}
