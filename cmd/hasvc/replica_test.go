package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hasvc/internal/auth"
	"hasvc/internal/replica"
	"hasvc/internal/replica/sqlitefile"
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
		local := &sqlitefile.File{Path: file}
		r := &replica.Replica{URLs: []string{"http://127.0.0.1:1", n.url}, DB: "rep", Token: reader, Target: local,
			Applied: func(seq uint64) { applied.Store(seq) }}
		go func() { done <- r.Run(ctx); local.Close() }()
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

// TestReplicaClusterKilled: `hasvc replica`, a process of its own,
// follows 10,000 writes made on two nodes of a three-node cluster; it is
// killed (SIGKILL) in the middle and started again, and later the node it
// reads from stops, so it moves to the next. At the end its file holds
// exactly what a backup from the cluster holds, table by table.
func TestReplicaClusterKilled(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	b.createDB("big")
	b.ok("POST", "/db/big", `[{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, w INTEGER, v TEXT, b BLOB)"},
		{"sql":"CREATE TABLE k (name TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID"}]`)
	token := clusterToken(t, "big", "read")
	file := filepath.Join(t.TempDir(), "big.db")
	startReplica := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HASVC_TEST_RUN_MAIN=1", "HA_TOKEN="+token,
			"HASVC_TEST_ARGS=replica --url "+a.url+","+b.url+" --db big --out "+file)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		return cmd
	}
	// replicaSeq reads the sequence the file has applied (0 while it is
	// not there yet).
	replicaSeq := func() uint64 {
		out, err := exec.Command("sqlite3", "-readonly", file, "SELECT seq FROM _hasvc_replica").Output()
		if err != nil {
			return 0
		}
		n, _ := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
		return n
	}
	waitSeq := func(min uint64, what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for replicaSeq() < min {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the replica is at %d, not %d", what, replicaSeq(), min)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// 4 writers on b and c: inserts, with an update and an upsert now
	// and then, 10,000 transactions in all.
	const total = 10000
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		n := []*node{b, c}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range total / 4 {
				sql := fmt.Sprintf(`{"sql":"INSERT INTO t (w, v, b) VALUES (%d, 'row %d', randomblob(8))"}`, w, i)
				switch i % 20 {
				case 5:
					sql = fmt.Sprintf(`{"sql":"UPDATE t SET v = v || '+' WHERE w = %d AND id %% 7 = %d"}`, w, i%7)
				case 10:
					sql = fmt.Sprintf(`{"sql":"INSERT INTO k VALUES ('w%d', 1) ON CONFLICT (name) DO UPDATE SET n = n + 1"}`, w)
				}
				for try := 0; ; try++ {
					status, body, err := n.try("POST", "/db/big", n.admin, sql)
					if err == nil && status == 200 {
						break
					}
					if try > 50 {
						t.Errorf("write: %d %s %v", status, body, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				done.Add(1)
			}
		}()
	}
	rep := startReplica()
	waitSeq(1000, "before the kill")
	rep.Process.Kill()
	rep.Wait()
	killedAt := replicaSeq()
	for done.Load() < 5000 {
		time.Sleep(50 * time.Millisecond)
	}
	rep = startReplica()
	waitSeq(killedAt+1000, "after the restart")
	a.stop() // the node it reads from: it moves to b
	wg.Wait()
	if t.Failed() {
		return
	}
	last := b.info("big").StreamSeq
	waitSeq(last, "after the writes")
	rep.Process.Signal(syscall.SIGTERM)
	if err := rep.Wait(); err != nil {
		t.Errorf("replica: %v", err)
	}
	t.Logf("killed at sequence %d, caught up to %d", killedAt, last)

	// The file against a backup, table by table, both ways.
	backup := filepath.Join(t.TempDir(), "backup.db")
	req, _ := http.NewRequest("GET", b.url+"/db/big/backup", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("backup: %v %v", resp, err)
	}
	f, _ := os.Create(backup)
	io.Copy(f, resp.Body)
	f.Close()
	resp.Body.Close()
	if seq := resp.Header.Get("X-Sequence"); seq != fmt.Sprint(last) {
		t.Fatalf("the backup is at %s, the stream at %d", seq, last)
	}
	cmp := fmt.Sprintf(`ATTACH '%s' AS r;
SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM r.t), (SELECT count(*) FROM (SELECT * FROM t EXCEPT SELECT * FROM r.t)), (SELECT count(*) FROM (SELECT * FROM r.t EXCEPT SELECT * FROM t));
SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM r.k), (SELECT count(*) FROM (SELECT * FROM k EXCEPT SELECT * FROM r.k)), (SELECT count(*) FROM (SELECT * FROM r.k EXCEPT SELECT * FROM k));
PRAGMA r.integrity_check;`, file)
	got := sqlite3Shell(t, backup, cmp)
	// At least the 9,000 inserts (one retried after an unknown outcome
	// may be there twice), the same rows on both sides.
	var inBackup, inReplica int
	fmt.Sscanf(got, "%d|%d", &inBackup, &inReplica)
	if want := fmt.Sprintf("%d|%d|0|0\n4|4|0|0\nok", inBackup, inBackup); got != want || inBackup < total-2*total/20 {
		t.Fatalf("backup against replica:\n%s\nwant\n%s, with at least %d rows", got, want, total-2*total/20)
	}
}
