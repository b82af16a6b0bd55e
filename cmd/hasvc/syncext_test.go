package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildSyncExtension builds the hasvc_sync SQLite extension into dir, as
// `make ext` does.
func buildSyncExtension(t *testing.T, dir string) string {
	t.Helper()
	so := filepath.Join(dir, "hasvc_sync.so")
	out, err := exec.Command("go", "build", "-buildmode=c-shared", "-o", so, "hasvc/cmd/hasvc_sync").CombinedOutput()
	if err != nil {
		t.Fatalf("build the extension: %v\n%s", err, out)
	}
	return so
}

// TestSyncExtension: the hasvc_sync extension, loaded into Debian's sqlite3
// shell and into Python's sqlite3 module, follows a database of a
// three-node cluster into the file they have open: it downloads it,
// applies writes made while it runs (hasvc_sync_wait returns once a
// sequence is applied), resumes in a second process without downloading
// again, and moves to the next node when the one it reads from stops.
func TestSyncExtension(t *testing.T) {
	python := "/usr/bin/python3" // Debian's, built with extension loading
	if _, err := os.Stat(python); err != nil {
		t.Fatal("Debian's python3 is needed")
	}
	nodes := startCluster(t, 3, nil)
	a, b := nodes[0], nodes[1]
	a.createDB("ext")
	a.ok("POST", "/db/ext", `[{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB, x REAL)"},
		{"sql":"INSERT INTO t (v, b, x) VALUES ('one', x'00ff', 1.5), ('two', NULL, NULL)"}]`)
	token := clusterToken(t, "ext", "read")
	so := buildSyncExtension(t, t.TempDir())
	file := filepath.Join(t.TempDir(), "ext.db")
	urls := a.url + "," + b.url

	seq := func(n *node) uint64 {
		var info struct {
			StreamSeq uint64 `json:"stream_seq"`
		}
		json.Unmarshal([]byte(n.ok("GET", "/databases/ext", "")), &info)
		return info.StreamSeq
	}
	const canon = `SELECT count(*) || ':' || ifnull(group_concat(id || '|' || ifnull(v, 'null') || '|' || ifnull(hex(b), 'null') || '|' || ifnull(x, 'null'), ','), '') FROM (SELECT * FROM t ORDER BY id)`
	want := func(n *node) string {
		var res struct {
			Results []struct{ Rows [][]any } `json:"results"`
		}
		json.Unmarshal([]byte(n.ok("POST", "/db/ext", fmt.Sprintf(`{"sql":%q}`, canon))), &res)
		return fmt.Sprint(res.Results[0].Rows[0][0])
	}
	// writes makes k transactions through n (retrying through an
	// election) and returns the sequence of the last.
	writes := func(n *node, k int, tag string) uint64 {
		var last uint64
		for i := range k {
			sql := fmt.Sprintf(`{"sql":"INSERT INTO t (v, x) VALUES ('%s %d', %d)"}`, tag, i, i)
			switch i % 10 {
			case 7:
				sql = `{"sql":"UPDATE t SET v = upper(v), b = x'01' WHERE id % 3 = 0"}`
			case 9:
				sql = `{"sql":"DELETE FROM t WHERE id % 7 = 0"}`
			}
			for try := 0; ; try++ {
				status, body, err := n.try("POST", "/db/ext", n.admin, sql)
				if err == nil && status == 200 {
					var r struct{ Sequence uint64 }
					json.Unmarshal([]byte(body), &r)
					last = r.Sequence
					break
				}
				if try > 100 {
					t.Fatalf("write through %s: %d %s %v", n.m.Config.Name, status, body, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		return last
	}

	// The sqlite3 shell: it downloads, then follows writes made while it
	// waits for the last one's sequence.
	target := seq(a) + 60
	shell := exec.Command("sqlite3", file)
	shell.Stdin = strings.NewReader(fmt.Sprintf(`.load %s
SELECT hasvc_sync_start('%s', 'ext', 'not-a-token');
SELECT hasvc_sync_wait(1, 10000);
SELECT hasvc_sync_start('%s', 'ext', '%s');
SELECT hasvc_sync_start('%s', 'ext', '%s');
SELECT hasvc_sync_wait(%d, 30000);
%s;
SELECT json_extract(hasvc_sync_status(), '$.state');
SELECT hasvc_sync_stop();
`, so, urls, urls, token, urls, token, target, canon))
	var shellOut strings.Builder
	shell.Stdout, shell.Stderr = &shellOut, &shellOut
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := writes(a, 60, "shell"); got != target {
		t.Fatalf("the writes ended at %d, not %d", got, target)
	}
	// The shell's exit status is 1: statements failed, as they should.
	if err := shell.Wait(); err != nil && shell.ProcessState.ExitCode() != 1 {
		t.Fatalf("sqlite3: %v\n%s", err, shellOut.String())
	}
	// Errors go to stderr, which the shell does not buffer as it does
	// stdout: they are looked for apart. A follower that failed (a bad
	// token) is replaced by the next start; one that runs is not.
	var lines []string
	failed, refused := false, false
	for _, l := range strings.Split(strings.TrimSpace(shellOut.String()), "\n") {
		switch {
		case strings.Contains(l, "hasvc_sync: the replica is failed at sequence 0: 401"):
			failed = true
		case strings.Contains(l, "hasvc_sync: this connection already follows a database"):
			refused = true
		default:
			lines = append(lines, l)
		}
	}
	if !failed || !refused {
		t.Errorf("a bad token did not fail the follower (%v), or a second start on one connection was not refused (%v):\n%s", failed, refused, shellOut.String())
	}
	wantLines := []string{"started", "started", fmt.Sprint(target), want(a), "following", fmt.Sprint(target)}
	if len(lines) != len(wantLines) {
		t.Fatalf("sqlite3 printed\n%s\nwant lines like %q", shellOut.String(), wantLines)
	}
	for i, w := range wantLines {
		if !strings.Contains(lines[i], w) {
			t.Errorf("sqlite3 line %d: %q, want %q", i+1, lines[i], w)
		}
	}

	// Python's sqlite3 module, on the same file: it resumes at the
	// shell's sequence; when its node stops, it reads from the next.
	script := `
import sqlite3, sys, json
so, file, urls, token, resume = sys.argv[1:6]
c = sqlite3.connect(file, isolation_level=None)
c.enable_load_extension(True)
c.load_extension(so)
print(c.execute("SELECT hasvc_sync_start(?, 'ext', ?)", (urls, token)).fetchone()[0])
print(c.execute("SELECT hasvc_sync_wait(?, 30000)", (int(resume),)).fetchone()[0], flush=True)
target = int(sys.stdin.readline())
print(c.execute("SELECT hasvc_sync_wait(?, 60000)", (target,)).fetchone()[0])
print(c.execute(sys.argv[6]).fetchone()[0])
status = json.loads(c.execute("SELECT hasvc_sync_status()").fetchone()[0])
print(status["state"], status["sequence"], status["node"])
print(c.execute("SELECT hasvc_sync_stop()").fetchone()[0])
try:
    c.execute("SELECT hasvc_sync_wait(1)")
except sqlite3.OperationalError as e:
    print("error:", e)
m = sqlite3.connect(":memory:")
m.enable_load_extension(True)
m.load_extension(so)
try:
    m.execute("SELECT hasvc_sync_start(?, 'ext', ?)", (urls, token))
except sqlite3.OperationalError as e:
    print("error:", e)
`
	py := exec.Command(python, "-c", script, so, file, urls, token, fmt.Sprint(target), canon)
	stdin, _ := py.StdinPipe()
	stdout, _ := py.StdoutPipe()
	var pyErr strings.Builder
	py.Stderr = &pyErr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	line := func() string {
		l, err := out.ReadString('\n')
		if err != nil {
			py.Process.Kill()
			py.Wait()
			t.Fatalf("python: %v\n%s", err, pyErr.String())
		}
		return strings.TrimSpace(l)
	}
	if l := line(); l != "started" {
		t.Fatalf("python start: %q", l)
	}
	if l := line(); l != fmt.Sprint(target) {
		t.Fatalf("python resumed at %q, want %d", l, target)
	}
	a.stop()
	target = writes(b, 40, "python")
	fmt.Fprintln(stdin, target)
	rest, _ := io.ReadAll(out)
	if err := py.Wait(); err != nil {
		t.Fatalf("python: %v\n%s%s", err, rest, pyErr.String())
	}
	got := strings.Split(strings.TrimSpace(string(rest)), "\n")
	wantPy := []string{fmt.Sprint(target), want(b), fmt.Sprintf("following %d %s", target, b.url), fmt.Sprint(target),
		"error: hasvc_sync: this connection follows no database",
		"error: hasvc_sync: the connection has no database file"}
	if len(got) != len(wantPy) {
		t.Fatalf("python printed\n%s\nwant lines like %q\n%s", rest, wantPy, pyErr.String())
	}
	for i, w := range wantPy {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("python line %d: %q, want %q", i+1, got[i], w)
		}
	}
	if got := sqlite3Shell(t, file, "PRAGMA integrity_check; SELECT seq FROM _hasvc_replica"); got != fmt.Sprintf("ok\n%d", target) {
		t.Errorf("the replica file: %q", got)
	}
}
