package main

import (
	"compress/gzip"
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
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/auth"
)

type snapshotDesc struct {
	Sequence   uint64    `json:"sequence"`
	Time       time.Time `json:"time"`
	Size       int64     `json:"size"`
	Compressed int64     `json:"compressed"`
	SHA256     string    `json:"sha256"`
	Node       string    `json:"node"`
}

// takeSnapshot posts a snapshot request and returns its status and
// description.
func (n *node) takeSnapshot(db string) (int, snapshotDesc) {
	n.t.Helper()
	status, body := n.do("POST", "/db/"+db+"/snapshot", n.admin, "")
	var s snapshotDesc
	if status/100 == 2 {
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			n.t.Fatalf("%s: %v", body, err)
		}
	}
	return status, s
}

// download gets path and saves the body to a file, returning the file's
// path and the response's headers.
func (n *node) download(path, token string) (string, http.Header, int) {
	n.t.Helper()
	req, _ := http.NewRequest("GET", n.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatalf("%s: %v", path, err)
	}
	file := filepath.Join(n.t.TempDir(), "download.db")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		n.t.Fatal(err)
	}
	return file, resp.Header, resp.StatusCode
}

// sqlite3Shell runs the sqlite3 shell on file.
func sqlite3Shell(t *testing.T, file, sql string) string {
	t.Helper()
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatal("the sqlite3 shell is needed (Debian package sqlite3)")
	}
	out, err := exec.Command(sqlite3, file, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v %s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestSnapshots: a snapshot is stored in the database's bucket, listed,
// and downloaded as a SQLite file the sqlite3 shell opens, at the
// sequence it names; nothing changed means no new snapshot; permissions
// and bad sequences are refused.
func TestSnapshots(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("shop")
	n.ok("POST", "/db/shop", `[{"sql":"CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"},
		{"sql":"INSERT INTO items (name) VALUES ('pen'), ('ink')"}]`)
	status, first := n.takeSnapshot("shop")
	if status != http.StatusCreated || first.Sequence != 1 || first.Size == 0 || first.Compressed == 0 || len(first.SHA256) != 64 {
		t.Fatalf("first snapshot: %d %+v", status, first)
	}
	if status, again := n.takeSnapshot("shop"); status != http.StatusOK || again != first {
		t.Fatalf("nothing changed: %d %+v, want 200 %+v", status, again, first)
	}
	n.ok("POST", "/db/shop", `{"sql":"INSERT INTO items (name) VALUES ('pad')"}`)
	status, second := n.takeSnapshot("shop")
	if status != http.StatusCreated || second.Sequence != 2 {
		t.Fatalf("second snapshot: %d %+v", status, second)
	}
	var list struct{ Snapshots []snapshotDesc }
	if err := json.Unmarshal([]byte(n.ok("GET", "/db/shop/snapshots", "")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Snapshots) != 2 || list.Snapshots[0] != second || list.Snapshots[1] != first {
		t.Fatalf("list: %+v", list.Snapshots)
	}

	reader := n.token(auth.PermRead, time.Hour, "shop")
	file, h, code := n.download("/db/shop/snapshot", reader)
	if code != 200 || h.Get("Content-Disposition") != `attachment; filename="shop-2.db"` || h.Get("X-Sequence") != "2" {
		t.Fatalf("latest: %d %v", code, h)
	}
	if got := sqlite3Shell(t, file, "PRAGMA integrity_check; SELECT group_concat(name) FROM items;"); got != "ok\npen,ink,pad" {
		t.Fatalf("latest snapshot holds %q", got)
	}
	file, h, code = n.download("/db/shop/snapshots/1", reader)
	if code != 200 || h.Get("X-Sequence") != "1" {
		t.Fatalf("snapshot 1: %d %v", code, h)
	}
	if got := sqlite3Shell(t, file, "SELECT group_concat(name) FROM items;"); got != "pen,ink" {
		t.Fatalf("snapshot 1 holds %q", got)
	}

	status, body := n.do("POST", "/db/shop/snapshot", reader, "")
	wantError(t, status, body, http.StatusForbidden, "EFORBIDDEN")
	status, body = n.do("GET", "/db/shop/snapshots/7", reader, "")
	wantError(t, status, body, http.StatusNotFound, "ENOTFOUND")
	status, body = n.do("GET", "/db/shop/snapshots/x", reader, "")
	wantError(t, status, body, http.StatusBadRequest, "EINVALID")
	other := n.token(auth.PermRead, time.Hour, "other")
	status, _ = n.do("GET", "/db/shop/snapshot", other, "")
	if status != http.StatusForbidden && status != http.StatusUnauthorized {
		t.Fatalf("another database's token: %d", status)
	}

	// A database without snapshots; deleting a database deletes them.
	n.createDB("empty")
	status, body = n.do("GET", "/db/empty/snapshot", n.admin, "")
	wantError(t, status, body, http.StatusNotFound, "ENOTFOUND")
	n.ok("DELETE", "/databases/shop", "")
	n.createDB("shop")
	if got := n.ok("GET", "/db/shop/snapshots", ""); got != `{"snapshots":[]}` {
		t.Fatalf("after delete and create: %s", got)
	}
}

// TestSnapshotDuringWrites: snapshots taken while four writers insert
// hold exactly the rows whose inserts the stream had at the snapshot's
// sequence, and the writers never wait for a snapshot to finish.
func TestSnapshotDuringWrites(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("load")
	n.ok("POST", "/db/load", `{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, w INTEGER, pad TEXT)"}`)
	// Some bulk, so that a snapshot takes a while.
	n.ok("POST", "/db/load", `{"sql":"INSERT INTO t (w, pad) WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 20000) SELECT -1, printf('%.200c', 'x') FROM s"}`)
	var (
		mu    sync.Mutex
		seqs  []uint64 // sequences of acknowledged single-row inserts
		stop  atomic.Bool
		wg    sync.WaitGroup
		worst atomic.Int64
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				start := time.Now()
				status, body, err := n.try("POST", "/db/load", n.admin, fmt.Sprintf(`{"sql":"INSERT INTO t (w, pad) VALUES (%d, 'r%d')"}`, w, i))
				if err != nil || status != 200 {
					t.Errorf("insert: %d %s %v", status, body, err)
					return
				}
				if d := time.Since(start); int64(d) > worst.Load() {
					worst.Store(int64(d))
				}
				var res struct{ Sequence uint64 }
				json.Unmarshal([]byte(body), &res)
				mu.Lock()
				seqs = append(seqs, res.Sequence)
				mu.Unlock()
			}
		}()
	}
	var snaps []snapshotDesc
	for range 3 {
		time.Sleep(150 * time.Millisecond)
		status, s := n.takeSnapshot("load")
		if status != http.StatusCreated {
			t.Fatalf("snapshot: %d", status)
		}
		snaps = append(snaps, s)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d inserts; slowest %v; snapshots at %v", len(seqs), time.Duration(worst.Load()), snaps)
	for _, s := range snaps {
		want := 0
		for _, q := range seqs {
			if q <= s.Sequence {
				want++
			}
		}
		file, _, code := n.download("/db/load/snapshots/"+strconv.FormatUint(s.Sequence, 10), n.admin)
		if code != 200 {
			t.Fatalf("download %d: %d", s.Sequence, code)
		}
		if got := sqlite3Shell(t, file, "SELECT count(*) FROM t WHERE w >= 0;"); got != strconv.Itoa(want) {
			t.Errorf("snapshot at %d holds %s rows, the stream had %d", s.Sequence, got, want)
		}
	}
}

// listSnapshots returns a database's snapshots, newest first.
func (n *node) listSnapshots(db string) []snapshotDesc {
	n.t.Helper()
	var list struct{ Snapshots []snapshotDesc }
	if err := json.Unmarshal([]byte(n.ok("GET", "/db/"+db+"/snapshots", "")), &list); err != nil {
		n.t.Fatal(err)
	}
	return list.Snapshots
}

// TestScheduledSnapshots: a database's snapshot_interval takes a snapshot
// once per interval while it changes and none while it does not; the
// node's --snapshot-interval covers databases that set none, and PATCH
// changes a database's.
func TestScheduledSnapshots(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *Config) { c.SnapshotCheck = 100 * time.Millisecond; c.SnapshotInterval = time.Hour })
	// The scheduler lists the registry in its first round, then learns of
	// new databases and changed intervals from the registry's watch.
	time.Sleep(300 * time.Millisecond)
	n.ok("POST", "/databases", `{"name":"sched","snapshot_interval":"1s"}`)
	n.createDB("hourly") // the node's default: one now, since it changed, then none for an hour
	status, body := n.do("POST", "/databases", n.admin, `{"name":"bad","snapshot_interval":"10ms"}`)
	wantError(t, status, body, http.StatusBadRequest, "EINVALID")
	n.ok("POST", "/db/sched", `{"sql":"CREATE TABLE t (v)"}`)
	n.ok("POST", "/db/hourly", `{"sql":"CREATE TABLE t (v)"}`)
	deadline := time.Now().Add(3500 * time.Millisecond)
	var last struct{ Sequence uint64 }
	for i := 0; time.Now().Before(deadline); i++ {
		json.Unmarshal([]byte(n.ok("POST", "/db/sched", fmt.Sprintf(`{"sql":"INSERT INTO t VALUES (%d)"}`, i))), &last)
		n.ok("POST", "/db/hourly", fmt.Sprintf(`{"sql":"INSERT INTO t VALUES (%d)"}`, i))
		time.Sleep(50 * time.Millisecond)
	}
	// The writes after the last snapshot get one more within an interval.
	time.Sleep(1500 * time.Millisecond)
	busy := n.listSnapshots("sched")
	if len(busy) < 3 || len(busy) > 6 {
		t.Fatalf("%d snapshots over 3.5 s of writes at 1 s intervals: %+v", len(busy), busy)
	}
	if busy[0].Sequence != last.Sequence {
		t.Fatalf("newest snapshot %+v, the last write was sequence %d", busy[0], last.Sequence)
	}
	for i := 1; i < len(busy); i++ {
		if gap := busy[i-1].Time.Sub(busy[i].Time); gap < 900*time.Millisecond {
			t.Errorf("snapshots %v apart: %+v", gap, busy)
		}
	}
	// Under the node's default, at most the one snapshot: none if the
	// scheduler looked at the new database before its first write (then
	// nothing had changed, and it looks again in an hour).
	if got := n.listSnapshots("hourly"); len(got) > 1 || len(got) == 1 && got[0].Node == "" {
		t.Errorf("node default of an hour: %+v", got)
	}
	// Idle: no new snapshot, however many intervals pass.
	time.Sleep(2500 * time.Millisecond)
	if idle := n.listSnapshots("sched"); len(idle) != len(busy) {
		t.Fatalf("%d snapshots after an idle 2.5 s, %d before", len(idle), len(busy))
	}
	// PATCH to the node's default (an hour): no more every second.
	n.ok("PATCH", "/databases/sched", `{"snapshot_interval":"0s"}`)
	n.ok("POST", "/db/sched", `{"sql":"INSERT INTO t VALUES (-1)"}`)
	time.Sleep(1500 * time.Millisecond)
	if after := n.listSnapshots("sched"); len(after) != len(busy) {
		t.Fatalf("%d snapshots after the interval went to an hour, %d before", len(after), len(busy))
	}
}

// TestScheduledSnapshotsCluster: in a three-node cluster, the node that
// leads a database's stream takes its scheduled snapshots, and the
// others take none.
func TestScheduledSnapshotsCluster(t *testing.T) {
	nodes := startCluster(t, 3, func(_ int, c *Config) { c.SnapshotCheck = 100 * time.Millisecond })
	nodes[0].ok("POST", "/databases", `{"name":"cs","replicas":3,"snapshot_interval":"1s"}`)
	nodes[0].ok("POST", "/db/cs", `{"sql":"CREATE TABLE t (v)"}`)
	// The first scheduled snapshot also creates the database's bucket (a
	// replicated stream of its own): wait for it, then count.
	// (While JetStream places that stream, listing may time out.)
	made := func() bool {
		status, body, _ := nodes[1].try("GET", "/db/cs/snapshots", nodes[1].admin, "")
		return status == 200 && strings.Contains(body, `"sequence"`)
	}
	i := 0
	for deadline := time.Now().Add(30 * time.Second); !made(); i++ {
		if time.Now().After(deadline) {
			t.Fatal("no scheduled snapshot in 30 s")
		}
		nodes[0].ok("POST", "/db/cs", fmt.Sprintf(`{"sql":"INSERT INTO t VALUES (%d)"}`, i))
		time.Sleep(50 * time.Millisecond)
	}
	first := len(nodes[1].listSnapshots("cs"))
	deadline := time.Now().Add(3500 * time.Millisecond)
	for ; time.Now().Before(deadline); i++ {
		nodes[0].ok("POST", "/db/cs", fmt.Sprintf(`{"sql":"INSERT INTO t VALUES (%d)"}`, i))
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	list := nodes[1].listSnapshots("cs")
	if n := len(list) - first; n < 2 || n > 5 {
		t.Fatalf("%d snapshots over 3.5 s at 1 s intervals on three nodes: %+v", n, list)
	}
	for _, s := range list {
		if s.Node != list[0].Node {
			t.Fatalf("snapshots taken by more than one node: %+v", list)
		}
	}
	t.Logf("%d snapshots, all by %s", len(list), list[0].Node)

	// Readiness: with two of three nodes gone, the last is alive but
	// cannot serve writes, and says so.
	if status, body, _ := nodes[2].try("GET", "/readyz", "", ""); status != 200 || !strings.Contains(body, "ready") {
		t.Fatalf("readyz with three nodes: %d %s", status, body)
	}
	nodes[0].stop()
	nodes[1].stop()
	deadline = time.Now().Add(20 * time.Second)
	for {
		status, body, _ := nodes[2].try("GET", "/readyz", "", "")
		if status == http.StatusServiceUnavailable && strings.Contains(body, "unavailable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz without a quorum: %d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if status, _, _ := nodes[2].try("GET", "/healthz", "", ""); status != 200 {
		t.Fatalf("healthz without a quorum: %d", status)
	}
}

// purgeBelow drops database db's stream messages below seq, as retention
// will: only snapshots hold what they carried.
func purgeBelow(t *testing.T, n *node, db string, seq uint64) {
	t.Helper()
	st, err := dbJS(t, n, db).Stream(context.Background(), "HASVC_"+db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(context.Background(), jetstream.WithPurgeSequence(seq)); err != nil {
		t.Fatal(err)
	}
}

// TestBootFromSnapshot: a node whose copy is missing, or older than a
// stream trimmed below a snapshot, installs the snapshot and applies the
// stream after it; with no snapshot covering the gap, the database
// refuses to open rather than open with rows missing.
func TestBootFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.createDB("boot")
	n.ok("POST", "/db/boot", `{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}`)
	for i := range 5 {
		n.ok("POST", "/db/boot", fmt.Sprintf(`{"sql":"INSERT INTO t (v) VALUES ('a%d')"}`, i))
	}
	file := filepath.Join(dir, "db", "boot.db")
	n.stop()
	stale, err := os.ReadFile(file) // a copy at sequence 6
	if err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, nil)
	for i := range 5 {
		n.ok("POST", "/db/boot", fmt.Sprintf(`{"sql":"INSERT INTO t (v) VALUES ('b%d')"}`, i))
	}
	if status, s := n.takeSnapshot("boot"); status != http.StatusCreated || s.Sequence != 11 {
		t.Fatalf("snapshot: %d %+v", status, s)
	}
	for i := range 3 {
		n.ok("POST", "/db/boot", fmt.Sprintf(`{"sql":"INSERT INTO t (v) VALUES ('c%d')"}`, i))
	}
	purgeBelow(t, n, "boot", 12) // the stream keeps 12, 13 and 14
	const query = `{"sql":"SELECT count(*), group_concat(v) FROM t"}`
	want := n.ok("POST", "/db/boot", query)
	if !strings.Contains(want, `[[13,"a0,a1,a2,a3,a4,b0,b1,b2,b3,b4,c0,c1,c2"]]`) {
		t.Fatalf("before: %s", want)
	}
	remove := func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(file + suffix)
		}
	}

	// A lost copy.
	n.stop()
	remove()
	n = startNode(t, dir, nil)
	if got := n.ok("POST", "/db/boot", query); got != want {
		t.Fatalf("after losing the copy: %s, want %s", got, want)
	}
	// A copy older than the stream's start.
	n.stop()
	remove()
	if err := os.WriteFile(file, stale, 0o600); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, nil)
	if got := n.ok("POST", "/db/boot", query); got != want {
		t.Fatalf("after an old copy: %s, want %s", got, want)
	}
	if got := sqlite3Shell(t, file, "PRAGMA integrity_check;"); got != "ok" {
		t.Fatalf("integrity: %s", got)
	}
	// Trimmed past every snapshot: the gap cannot be filled.
	n.ok("POST", "/db/boot", `{"sql":"INSERT INTO t (v) VALUES ('d')"}`)
	purgeBelow(t, n, "boot", 15)
	n.stop()
	remove()
	n = startNode(t, dir, nil)
	status, body := n.do("POST", "/db/boot", n.admin, query)
	wantError(t, status, body, http.StatusServiceUnavailable, "EUNAVAILABLE")
	if !strings.Contains(body, "no snapshot covers the gap") {
		t.Fatalf("error: %s", body)
	}
}

// TestRetention: after a snapshot, a database keeps its newest
// retention.snapshots snapshots and those younger than max_age, deletes
// the rest, and trims its stream below the oldest kept one; a node that
// lost its copy then starts from the newest.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.ok("POST", "/databases", `{"name":"kept","retention":{"snapshots":2,"max_age":"1s"}}`)
	status, body := n.do("PATCH", "/databases/kept", n.admin, `{"retention":{"snapshots":-1}}`)
	wantError(t, status, body, http.StatusBadRequest, "EINVALID")
	n.ok("POST", "/db/kept", `{"sql":"CREATE TABLE t (v)"}`)
	var seqs []uint64
	for i := range 3 {
		n.ok("POST", "/db/kept", fmt.Sprintf(`{"sql":"INSERT INTO t VALUES (%d)"}`, i))
		_, s := n.takeSnapshot("kept")
		seqs = append(seqs, s.Sequence)
	}
	if got := n.listSnapshots("kept"); len(got) != 3 {
		t.Fatalf("three snapshots younger than max_age: %+v", got)
	}
	time.Sleep(1100 * time.Millisecond)
	n.ok("POST", "/db/kept", `{"sql":"INSERT INTO t VALUES (3)"}`)
	_, last := n.takeSnapshot("kept")
	got := n.listSnapshots("kept")
	if len(got) != 2 || got[0].Sequence != last.Sequence || got[1].Sequence != seqs[2] {
		t.Fatalf("kept %+v, want %d and %d", got, last.Sequence, seqs[2])
	}
	var info struct {
		StreamSeq      uint64 `json:"stream_seq"`
		StreamFirstSeq uint64 `json:"stream_first_seq"`
	}
	json.Unmarshal([]byte(n.ok("GET", "/databases/kept", "")), &info)
	if info.StreamFirstSeq != seqs[2]+1 || info.StreamSeq != last.Sequence {
		t.Fatalf("stream keeps %d to %d, want %d to %d", info.StreamFirstSeq, info.StreamSeq, seqs[2]+1, last.Sequence)
	}
	const query = `{"sql":"SELECT group_concat(v) FROM t"}`
	want := n.ok("POST", "/db/kept", query)
	n.stop()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, "db", "kept.db") + suffix)
	}
	n = startNode(t, dir, nil)
	if got := n.ok("POST", "/db/kept", query); got != want || !strings.Contains(got, `"0,1,2,3"`) {
		t.Fatalf("after a restart without the copy: %s, want %s", got, want)
	}
}

// TestBootFromSnapshotMemory: a memory-mode node, whose copies are gone
// at every start, rebuilds them from the newest snapshot and the stream
// after it, so its databases survive retention's trimming.
func TestBootFromSnapshotMemory(t *testing.T) {
	dir := t.TempDir()
	mem := func(c *Config) { c.Memory = true }
	n := startNode(t, dir, mem)
	n.createDB("mem")
	n.ok("POST", "/db/mem", `{"sql":"CREATE TABLE t (v TEXT)"}`)
	n.ok("POST", "/db/mem", `{"sql":"INSERT INTO t VALUES ('before')"}`)
	_, s := n.takeSnapshot("mem")
	n.ok("POST", "/db/mem", `{"sql":"INSERT INTO t VALUES ('after')"}`)
	purgeBelow(t, n, "mem", s.Sequence+1)
	n.stop()
	n = startNode(t, dir, mem)
	if got := n.ok("POST", "/db/mem", `{"sql":"SELECT group_concat(v) FROM t"}`); !strings.Contains(got, `"before,after"`) {
		t.Fatalf("memory-mode copy after a restart: %s", got)
	}
	n.ok("POST", "/db/mem", `{"sql":"INSERT INTO t VALUES ('again')"}`)
}

// TestFork: a database created "from" another at a sequence holds
// exactly what the other held once that message was applied, before or
// after a snapshot, by sequence or by time; it is a database of its own;
// and a point outside the kept history is refused.
func TestFork(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.createDB("src")
	n.ok("POST", "/db/src", `{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}`) // 1
	var times []time.Time
	for i := range 6 { // sequences 2..7
		n.ok("POST", "/db/src", fmt.Sprintf(`{"sql":"INSERT INTO t (v) VALUES ('r%d')"}`, i))
		times = append(times, time.Now())
		time.Sleep(20 * time.Millisecond)
		if i == 2 {
			n.takeSnapshot("src") // at 4
		}
	}
	n.ok("POST", "/db/src", `{"sql":"UPDATE t SET v = 'changed' WHERE id = 1"}`) // 8
	rows := func(db string) string {
		t.Helper()
		return n.ok("POST", "/db/"+db, `{"sql":"SELECT group_concat(v) FROM t"}`)
	}
	for _, tc := range []struct {
		name, from, want string
		at               uint64
	}{
		{"f3", `{"database":"src","sequence":3}`, "r0,r1", 3},          // before any snapshot
		{"f6", `{"database":"src","sequence":6}`, "r0,r1,r2,r3,r4", 6}, // snapshot 4 + 5, 6
		{"fnow", `{"database":"src"}`, "changed,r1,r2,r3,r4,r5", 8},    // now
		{"ftime", fmt.Sprintf(`{"database":"src","time":%q}`, times[3].Format(time.RFC3339Nano)), "r0,r1,r2,r3", 5},
	} {
		body := n.ok("POST", "/databases", fmt.Sprintf(`{"name":%q,"from":%s}`, tc.name, tc.from))
		var got struct {
			Name string
			From struct {
				Database string
				Sequence uint64
			}
		}
		json.Unmarshal([]byte(body), &got)
		if got.Name != tc.name || got.From.Sequence != tc.at {
			t.Errorf("%s: answered %s, want sequence %d", tc.name, body, tc.at)
		}
		if r := rows(tc.name); !strings.Contains(r, `"`+tc.want+`"`) {
			t.Errorf("%s holds %s, want %s", tc.name, r, tc.want)
		}
	}
	// A database of its own: writes go to it alone, and its copy boots
	// from the file it started from.
	n.ok("POST", "/db/f3", `{"sql":"INSERT INTO t (v) VALUES ('own')"}`)
	if r := rows("src"); strings.Contains(r, "own") {
		t.Fatalf("a write to the fork reached its source: %s", r)
	}
	n.stop()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, "db", "f3.db") + suffix)
	}
	n = startNode(t, dir, nil)
	if r := rows("f3"); !strings.Contains(r, `"r0,r1,own"`) {
		t.Fatalf("the fork's copy rebuilt: %s", r)
	}
	// Outside the history.
	status, body := n.do("POST", "/databases", n.admin, `{"name":"late","from":{"database":"src","sequence":99}}`)
	wantError(t, status, body, http.StatusBadRequest, "EINVALID")
	purgeBelow(t, n, "src", 5) // the stream keeps 5..8; snapshot 4 covers 4 onwards
	status, body = n.do("POST", "/databases", n.admin, `{"name":"gone","from":{"database":"src","sequence":3}}`)
	wantError(t, status, body, http.StatusBadRequest, "EINVALID")
	n.ok("POST", "/databases", `{"name":"f4","from":{"database":"src","sequence":4}}`)
	if r := rows("f4"); !strings.Contains(r, `"r0,r1,r2"`) {
		t.Fatalf("fork at the oldest snapshot: %s", r)
	}
	status, body = n.do("POST", "/databases", n.admin, `{"name":"nosrc","from":{"database":"nope"}}`)
	wantError(t, status, body, http.StatusNotFound, "ENOTFOUND")
	reader := n.token(auth.PermRead, time.Hour, "src")
	status, _ = n.do("POST", "/databases", reader, `{"name":"byreader","from":{"database":"src"}}`)
	if status != http.StatusForbidden {
		t.Fatalf("a read token forked: %d", status)
	}
}

// TestHistory lists the newest writes with their tables and nodes.
func TestHistory(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("hist")
	n.ok("POST", "/db/hist", `{"sql":"CREATE TABLE a (v)"}`)
	n.ok("POST", "/db/hist", `[{"sql":"CREATE TABLE b (v)"},{"sql":"INSERT INTO a VALUES (1)"},{"sql":"INSERT INTO b VALUES (1)"}]`)
	n.ok("POST", "/db/hist", `{"sql":"INSERT INTO a VALUES (2)"}`)
	var h struct {
		History []struct {
			Sequence uint64
			Time     time.Time
			Node     string
			Tables   []string
		}
		FirstSeq uint64 `json:"first_seq"`
	}
	json.Unmarshal([]byte(n.ok("GET", "/db/hist/history?limit=2", "")), &h)
	if len(h.History) != 2 || h.FirstSeq != 1 || h.History[0].Sequence != 3 || h.History[1].Sequence != 2 ||
		strings.Join(h.History[0].Tables, ",") != "a" || strings.Join(h.History[1].Tables, ",") != "(schema),a,b" ||
		h.History[0].Node == "" || time.Since(h.History[0].Time) > time.Minute {
		t.Fatalf("history: %+v", h)
	}
	status, body := n.do("GET", "/db/hist/history?limit=0", n.admin, "")
	wantError(t, status, body, http.StatusBadRequest, "EINVALID")
}

// upload posts a SQLite file as a new database.
func (n *node) upload(query, token string, data []byte) (int, string) {
	n.t.Helper()
	req, _ := http.NewRequest("POST", n.url+"/databases?"+query, strings.NewReader(string(data)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/vnd.sqlite3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestUploadDatabase: POST /databases with a SQLite file creates a
// database holding its tables and rows; a corrupt file, one with a table
// named like hasvc's or a virtual table, and one over the size limit are
// refused and create nothing.
func TestUploadDatabase(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *Config) { c.MaxDBSize = 256 << 10 })
	file := func(script string) []byte {
		t.Helper()
		path := filepath.Join(t.TempDir(), "up.db")
		sqlite3Shell(t, path, script)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	good := file(`CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, pic BLOB);
		INSERT INTO users (name, pic) VALUES ('ann', x'00ff'), ('bob', NULL);
		CREATE INDEX users_name ON users (name);
		CREATE VIEW names AS SELECT name FROM users;`)
	if status, body := n.upload("name=up", n.admin, good); status != http.StatusCreated {
		t.Fatalf("upload: %d %s", status, body)
	}
	got := n.ok("POST", "/db/up", `[{"sql":"INSERT INTO users (name) VALUES ('cy')"},{"sql":"SELECT id, name, hex(pic) FROM users ORDER BY id"},{"sql":"SELECT * FROM names ORDER BY 1"}]`)
	if want := `[[1,"ann","00FF"],[2,"bob",""],[3,"cy",""]]`; !strings.Contains(got, want) || !strings.Contains(got, `[["ann"],["bob"],["cy"]]`) {
		t.Fatalf("uploaded database: %s", got)
	}
	status, body := n.upload("name=up", n.admin, good)
	wantError(t, status, body, http.StatusConflict, "ECONFLICT")

	// A backup and a snapshot hold the tenant's tables only, and a backup
	// uploads as a new database.
	n.takeSnapshot("up")
	for _, path := range []string{"/db/up/backup", "/db/up/snapshot"} {
		file, _, code := n.download(path, n.admin)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		if got := sqlite3Shell(t, file, "SELECT group_concat(name) FROM sqlite_schema WHERE name LIKE '%hasvc%'; PRAGMA integrity_check;"); got != "ok" {
			t.Fatalf("%s holds hasvc's tables: %q", path, got)
		}
		if path == "/db/up/backup" {
			data, _ := os.ReadFile(file)
			if status, body := n.upload("name=again", n.admin, data); status != http.StatusCreated {
				t.Fatalf("upload of a backup: %d %s", status, body)
			}
			if got := n.ok("POST", "/db/again", `{"sql":"SELECT group_concat(name) FROM users"}`); !strings.Contains(got, `"ann,bob,cy"`) {
				t.Fatalf("a backup uploaded: %s", got)
			}
		}
	}

	for name, data := range map[string][]byte{
		"garbage":   []byte(strings.Repeat("not a database ", 100)),
		"truncated": good[:len(good)/2],
		"reserved":  file(`CREATE TABLE _hasvc_state (x); INSERT INTO _hasvc_state VALUES (1);`),
		"virtual":   file(`CREATE VIRTUAL TABLE docs USING fts5(body);`),
	} {
		status, body := n.upload("name="+name, n.admin, data)
		wantError(t, status, body, http.StatusBadRequest, "EINVALID")
		if status, _ := n.do("GET", "/databases/"+name, n.admin, ""); status != http.StatusNotFound {
			t.Errorf("%s: a refused upload left a database (%d)", name, status)
		}
	}
	big := file(`CREATE TABLE b (v); INSERT INTO b WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000) SELECT randomblob(200) FROM s;`)
	status, body = n.upload("name=big", n.admin, big)
	wantError(t, status, body, http.StatusRequestEntityTooLarge, "ETOOLARGE")
	reader := n.token(auth.PermRead, time.Hour, "*")
	if status, _ := n.upload("name=byreader", reader, good); status != http.StatusForbidden {
		t.Fatalf("a read token uploaded: %d", status)
	}
}

// TestSQLDump: GET /db/<name>/backup?format=sql recreates the database in
// the sqlite3 shell and through POST /db/<name>, every storage class
// exact, with indexes, views and triggers; gzip when asked.
func TestSQLDump(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("dumped")
	n.ok("POST", "/db/dumped", `[{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, r REAL, s TEXT, b BLOB, x ANY)"},
		{"sql":"CREATE TABLE \"odd name\" (k TEXT PRIMARY KEY, v) WITHOUT ROWID"},
		{"sql":"CREATE INDEX t_s ON t (s)"},
		{"sql":"CREATE VIEW v AS SELECT id, s FROM t"},
		{"sql":"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = 'trig' WHERE id = new.id AND new.x IS NULL; END"},
		{"sql":"INSERT INTO t VALUES (1, 1.0, 'it''s', x'00ff', 7), (2, 0.1, 'naïve', NULL, 2.5), (3, 1e300, '', x'', NULL)"},
		{"sql":"INSERT INTO \"odd name\" VALUES ('a', -9223372036854775808), ('b', 'two')"}]`)
	const check = `[{"sql":"SELECT id, r, typeof(r), s, hex(b), typeof(b), x, typeof(x) FROM t ORDER BY id"},{"sql":"SELECT k, v FROM \"odd name\" ORDER BY k"},{"sql":"SELECT * FROM v ORDER BY id"},{"sql":"SELECT name FROM sqlite_schema WHERE name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name"}]`
	want := n.ok("POST", "/db/dumped", check)

	req, _ := http.NewRequest("GET", n.url+"/db/dumped/backup?format=sql", nil)
	req.Header.Set("Authorization", "Bearer "+n.admin)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.HasSuffix(resp.Header.Get("Content-Disposition"), `.sql"`) {
		t.Fatalf("headers: %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sqlText, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sqlText), "_hasvc") {
		t.Fatalf("the dump holds hasvc's tables:\n%s", sqlText)
	}
	// Through HTTP, as one request.
	n.createDB("redone")
	body, _ := json.Marshal(map[string]string{"sql": string(sqlText)})
	n.ok("POST", "/db/redone", string(body))
	if got := n.ok("POST", "/db/redone", check); got != want {
		t.Fatalf("through HTTP:\n got %s\nwant %s", got, want)
	}
	// In the sqlite3 shell.
	file := filepath.Join(t.TempDir(), "shell.db")
	sqlite3Shell(t, file, string(sqlText))
	if got := sqlite3Shell(t, file, "SELECT id, r, typeof(r), s, hex(b), typeof(x) FROM t ORDER BY id;"); got != "1|1.0|real|it's|00FF|integer\n2|0.1|real|naïve||real\n3|1.0e+300|real|||text" {
		t.Fatalf("in the shell: %q", got)
	}
	status, out := n.do("GET", "/db/dumped/backup?format=xml", n.admin, "")
	wantError(t, status, out, http.StatusBadRequest, "EINVALID")
}

// TestClusterBootFromSnapshot: in a three-node cluster whose stream was
// trimmed below a snapshot (as retention does), a node that joins later
// builds its copy from the snapshot (read from the bucket's replicas on
// the other nodes) and the stream after it, and ends identical.
func TestClusterBootFromSnapshot(t *testing.T) {
	nodes := startClusterLate(t)
	nodes[0].createDB("joined")
	nodes[0].ok("POST", "/db/joined", `{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}`)
	for i := range 50 {
		nodes[i%2].ok("POST", "/db/joined", fmt.Sprintf(`{"sql":"INSERT INTO t (v) VALUES ('a%d')"}`, i))
	}
	var snap snapshotDesc
	json.Unmarshal([]byte(nodes[1].ok("POST", "/db/joined/snapshot", "")), &snap)
	var last struct{ Sequence uint64 }
	for i := range 20 {
		json.Unmarshal([]byte(nodes[0].ok("POST", "/db/joined", fmt.Sprintf(`{"sql":"INSERT INTO t (v) VALUES ('b%d')"}`, i))), &last)
	}
	purgeBelow(t, nodes[0], "joined", snap.Sequence+1)
	late := nodes[2].startLate()
	got := late.ok("POST", fmt.Sprintf("/db/joined?min_seq=%d&timeout=60s", last.Sequence), `{"sql":"SELECT count(*), count(DISTINCT v) FROM t"}`)
	if !strings.Contains(got, "[[70,70]]") {
		t.Fatalf("late node: %s", got)
	}
	waitConverged(t, []*node{nodes[0], nodes[1], late}, "joined")
	// It takes writes like the others.
	late.ok("POST", "/db/joined", `{"sql":"INSERT INTO t (v) VALUES ('late')"}`)
	waitConverged(t, []*node{nodes[0], nodes[1], late}, "joined")
}

// TestMethodNotAllowed: a route called with a method it does not take
// answers 405 with the methods it does, not a 404 that reads as "no
// such database"; asking for more replicas than nodes is a 400.
func TestMethodNotAllowed(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("m")
	for path, allow := range map[string]string{"/databases": "GET, POST", "/db/m": "POST", "/db/m/snapshot": "GET, POST"} {
		req, _ := http.NewRequest("PUT", n.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+n.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != allow || !strings.Contains(string(body), `"EMETHOD"`) {
			t.Errorf("PUT %s: %d Allow %q %s", path, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	status, body := n.do("GET", "/nothing/here", n.admin, "")
	wantError(t, status, body, http.StatusNotFound, "ENOTFOUND")
	// More replicas than nodes is the request's fault, and says so.
	status, body = n.do("POST", "/databases", n.admin, `{"name":"r3","replicas":3}`)
	wantError(t, status, body, http.StatusBadRequest, "EINVALID")
	if !strings.Contains(body, "this cluster has 1 node") {
		t.Errorf("replicas 3 on one node: %s", body)
	}
}

// TestKillDuringSnapshot: a node killed (SIGKILL) while it stores a
// snapshot of a 24 MB database leaves no partial snapshot: after a
// restart every listed snapshot downloads whole (its SHA-256 is checked on
// the way) and opens as a sound SQLite file, and a new snapshot works.
func TestKillDuringSnapshot(t *testing.T) {
	dir := t.TempDir()
	httpPort, natsPort := freePort(t), freePort(t)
	p := startProc(t, dir, httpPort, natsPort)
	token := createApp(t, p, dir, "s TEXT")
	for i := range 4 { // 6 MB a transaction
		sql := fmt.Sprintf(`{"sql":"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) INSERT INTO t (client, n, s) SELECT %d, i, hex(randomblob(1000)) FROM c"}`, i)
		if status, body, err := p.post(token, "/db/app", sql); err != nil || status != 200 {
			t.Fatalf("write: %d %s %v", status, body, err)
		}
	}
	answered := make(chan string, 1)
	go func() {
		status, body, err := p.post(token, "/db/app/snapshot", "")
		answered <- fmt.Sprintf("%d %s %v", status, body, err)
	}()
	time.Sleep(700 * time.Millisecond)
	p.cmd.Process.Kill()
	p.cmd.Wait()
	select {
	case a := <-answered:
		t.Logf("the snapshot request ended as the node was killed: %.120s", a)
	case <-time.After(5 * time.Second):
		t.Fatal("the snapshot request did not end with its node")
	}

	p = startProc(t, dir, httpPort, natsPort)
	check := func(what string) int {
		status, body := getStatus(t, p.url+"/db/app/snapshots", token)
		if status != 200 {
			t.Fatalf("%s: list: %d %s", what, status, body)
		}
		var list struct{ Snapshots []snapshotDesc }
		json.Unmarshal([]byte(body), &list)
		for _, s := range list.Snapshots {
			// A body cut short shows as a size that differs.
			status, data := getStatus(t, fmt.Sprintf("%s/db/app/snapshots/%d", p.url, s.Sequence), token)
			if status != 200 || int64(len(data)) != s.Size {
				t.Fatalf("%s: snapshot %d: %d, %d bytes of %d: %.200s", what, s.Sequence, status, len(data), s.Size, data)
			}
			file := filepath.Join(t.TempDir(), "snap.db")
			os.WriteFile(file, []byte(data), 0o600)
			if got := sqlite3Shell(t, file, "PRAGMA integrity_check; SELECT count(*) FROM t"); got != "ok\n12000" {
				t.Fatalf("%s: snapshot %d: %q", what, s.Sequence, got)
			}
		}
		return len(list.Snapshots)
	}
	t.Logf("%d whole snapshot(s) after the kill", check("after the kill"))
	status, body, err := p.post(token, "/db/app/snapshot", "")

	if err != nil || (status != 200 && status != 201) {
		t.Fatalf("snapshot after the restart: %d %s %v", status, body, err)
	}
	if n := check("after a new snapshot"); n != 1 {
		t.Fatalf("%d snapshots after a new one, want 1 (one sequence)", n)
	}
}

// TestForkCluster: in a three-node cluster, a fork at a sequence made
// through one node holds, on every node, the source as it was then, and
// takes writes of its own through any node without touching the source.
func TestForkCluster(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	nodes[0].createDB("src")
	nodes[0].ok("POST", "/db/src", `{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}`) // 1
	for i := range 6 {                                                                          // 2..7, through every node
		nodes[i%3].ok("POST", "/db/src", fmt.Sprintf(`{"sql":"INSERT INTO t (v) VALUES ('r%d')"}`, i))
		if i == 2 {
			nodes[1].takeSnapshot("src") // at 4
		}
	}
	body := nodes[1].ok("POST", "/databases", `{"name":"f6","from":{"database":"src","sequence":6}}`)
	if !strings.Contains(body, `"sequence":6`) {
		t.Fatalf("fork: %s", body)
	}
	for _, n := range nodes {
		if got := n.ok("POST", "/db/f6", `{"sql":"SELECT group_concat(v) FROM t"}`); !strings.Contains(got, `"r0,r1,r2,r3,r4"`) {
			t.Fatalf("fork on %s: %s", n.m.Config.Name, got)
		}
	}
	nodes[2].ok("POST", "/db/f6", `{"sql":"INSERT INTO t (v) VALUES ('fork')"}`)
	sum := waitConverged(t, nodes, "f6")
	for _, n := range nodes {
		if got := n.ok("POST", "/db/f6", `{"sql":"SELECT group_concat(v) FROM t"}`); !strings.Contains(got, `"r0,r1,r2,r3,r4,fork"`) {
			t.Fatalf("fork on %s after a write (checksum %s): %s", n.m.Config.Name, sum, got)
		}
		if got := n.ok("POST", "/db/src", `{"sql":"SELECT count(*) FROM t WHERE v = 'fork'"}`); !strings.Contains(got, "[[0]]") {
			t.Fatalf("the source on %s took the fork's write: %s", n.m.Config.Name, got)
		}
	}
}

// TestEventualBackup: a backup of an eventual-mode database keeps its
// rows' versions (for replicas), uploads as a new database, and its SQL
// form leaves them out.
func TestEventualBackup(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.ok("POST", "/databases", `{"name": "ev", "mode": "eventual"}`)
	n.ok("POST", "/db/ev", `[{"sql":"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"},{"sql":"INSERT INTO users (name) VALUES ('ann'), ('bob')"}]`)
	file, _, code := n.download("/db/ev/backup", n.admin)
	if code != 200 {
		t.Fatalf("backup: %d", code)
	}
	if got := sqlite3Shell(t, file, "SELECT group_concat(name) FROM sqlite_schema WHERE name LIKE '%hasvc%'; SELECT count(*) FROM _hasvc_versions;"); got != "_hasvc_versions\n2" {
		t.Errorf("backup of an eventual-mode database: hasvc's tables and versions %q, want _hasvc_versions with 2 rows", got)
	}
	data, _ := os.ReadFile(file)
	if status, body := n.upload("name=evcopy", n.admin, data); status != http.StatusCreated {
		t.Fatalf("upload of the backup: %d %s", status, body)
	}
	if got := n.ok("POST", "/db/evcopy", `{"sql":"SELECT group_concat(name) FROM users"}`); !strings.Contains(got, `"ann,bob"`) {
		t.Errorf("the backup uploaded: %s", got)
	}
	dump, _, code := n.download("/db/ev/backup?format=sql", n.admin)
	text, _ := os.ReadFile(dump)
	if code != 200 || strings.Contains(string(text), "_hasvc") || !strings.Contains(string(text), "bob") {
		t.Errorf("SQL dump: %d, %.300s", code, text)
	}
}
