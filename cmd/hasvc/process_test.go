package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port nobody listens on now. It picks below
// the kernel's ephemeral range (32768 and up): a port reserved this way for
// a node that starts later must not be taken meanwhile as the local port
// of one of the tests' own client connections.
func freePort(t *testing.T) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port below 32000")
	return 0
}

// proc is a hasvc node running as a separate process (this test binary,
// re-executed as the command).
type proc struct {
	cmd *exec.Cmd
	url string
}

func startProc(t *testing.T, dir string, httpPort, natsPort int, extra ...string) *proc {
	t.Helper()
	args := []string{"--name", "p1", "--host", "127.0.0.1", "--port", fmt.Sprint(httpPort), "--nats-port", fmt.Sprint(natsPort),
		"--data-dir", dir, "--log-level", "warn", "--pg-port", "-1"}
	args = append(args, extra...)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HASVC_TEST_RUN_MAIN=1", "HASVC_TEST_ARGS="+strings.Join(args, " "))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort)}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.url + "/healthz"); err == nil {
			resp.Body.Close()
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("node did not start in 60s")
	return nil
}

func (p *proc) post(token, path, body string) (int, string, error) {
	req, _ := http.NewRequest("POST", p.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// TestKillNineKeepsAcknowledgedWrites kills a node with SIGKILL while 8
// clients insert, restarts it, and checks that every insert that was
// acknowledged is there.
func TestKillNineKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	httpPort, natsPort := freePort(t), freePort(t)
	p := startProc(t, dir, httpPort, natsPort)
	token := createApp(t, p, dir, "s TEXT")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ins := startInserters(ctx, p, token, "NULL")
	ins.waitFor(ctx, 300)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	ins.wg.Wait()
	cancel()

	p2 := startProc(t, dir, httpPort, natsPort)
	status, body, err := p2.post(token, "/db/app", `{"sql":"SELECT client, n FROM t"}`)
	if err != nil || status != 200 {
		t.Fatalf("select after restart: %d %s %v", status, body, err)
	}
	present := clientRows(t, body)
	lost := len(missing(&ins.acked, func(k string) bool { return present[k] }))
	t.Logf("acknowledged %d inserts before SIGKILL, %d rows after restart", ins.count.Load(), len(present))
	if lost > 0 {
		t.Fatalf("%d acknowledged inserts lost", lost)
	}
	// The copy equals the stream: as many rows as messages after the
	// CREATE TABLE.
	status, body, _ = p2.post(token, "/db/app", `{"sql":"SELECT count(*) FROM t"}`)
	var info struct {
		StreamSeq uint64 `json:"stream_seq"`
	}
	req, _ := http.NewRequest("GET", p2.url+"/databases/app", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if want := fmt.Sprintf(`{"results":[{"columns":["count(*)"],"rows":[[%d]]}]}`, info.StreamSeq-1); strings.TrimSpace(body) != want {
		t.Fatalf("rows %s, stream has %d messages", body, info.StreamSeq)
	}
}

// TestClusterKillNineRejoins runs a three-process cluster, kills one node
// with SIGKILL while clients write through every node, restarts it, and
// checks that every acknowledged write is on every node and the copies
// are identical.
// procCluster is a cluster of hasvc processes on this machine.
type procCluster struct {
	procs []*proc
	start func(i int) *proc // starts node i (again), on its ports and data
}

// startProcCluster starts n nodes as processes, with extra flags each.
func startProcCluster(t *testing.T, n int, extra ...string) *procCluster {
	t.Helper()
	type spec struct {
		dir                 string
		http, nats, cluster int
	}
	specs := make([]spec, n)
	for i := range specs {
		specs[i] = spec{t.TempDir(), freePort(t), freePort(t), freePort(t)}
	}
	args := func(i int) []string {
		var peers []string
		for j, s := range specs {
			if j != i {
				peers = append(peers, fmt.Sprintf("127.0.0.1:%d", s.cluster))
			}
		}
		return append([]string{"--name", fmt.Sprintf("k%d", i+1), "--cluster-port", fmt.Sprint(specs[i].cluster),
			"--join", strings.Join(peers, ","), "--jwt-secret", testJWTSecret, "--nats-pass", testNATSPass}, extra...)
	}
	c := &procCluster{procs: make([]*proc, n)}
	c.start = func(i int) *proc {
		return startProc(t, specs[i].dir, specs[i].http, specs[i].nats, args(i)...)
	}
	var wg sync.WaitGroup
	for i := range c.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.procs[i] = c.start(i)
		}()
	}
	wg.Wait()
	return c
}

func TestClusterKillNineRejoins(t *testing.T) {
	const n = 3
	cluster := startProcCluster(t, n)
	procs := cluster.procs
	token := clusterToken(t, "*", "admin")
	if status, body, err := procs[0].post(token, "/databases", `{"name":"kill"}`); err != nil || status != 201 {
		t.Fatalf("create: %d %s %v", status, body, err)
	}
	if status, body, _ := procs[1].post(token, "/db/kill", `{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT UNIQUE)"}`); status != 200 {
		t.Fatalf("create table: %d %s", status, body)
	}

	var acked sync.Map
	var count atomic.Int64
	// The writers read procs while the test restarts the victim.
	var procsMu sync.Mutex
	procAt := func(i int) *proc {
		procsMu.Lock()
		defer procsMu.Unlock()
		return procs[i]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var writers sync.WaitGroup
	for c := range 9 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ctx.Err() == nil; i++ {
				who := fmt.Sprintf("c%d-%d", c, i)
				status, _, err := procAt(c%n).post(token, "/db/kill", fmt.Sprintf(`{"sql":"INSERT INTO t (who) VALUES ('%s')"}`, who))
				if err != nil {
					time.Sleep(50 * time.Millisecond) // the node is down; try it again
					continue
				}
				if status == 200 {
					acked.Store(who, true)
					count.Add(1)
				}
			}
		}()
	}
	for count.Load() < 300 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	victim := procs[2]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	killedAt := count.Load()
	time.Sleep(time.Second)
	restarted := cluster.start(2)
	procsMu.Lock()
	procs[2] = restarted
	procsMu.Unlock()
	for count.Load() < killedAt+300 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	writers.Wait()

	// Every node reaches the stream's end and holds every acknowledged row.
	var info struct {
		StreamSeq uint64 `json:"stream_seq"`
	}
	req, _ := http.NewRequest("GET", procs[0].url+"/databases/kill", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	var first string
	for i, p := range procs {
		status, body, err := p.post(token, fmt.Sprintf("/db/kill?min_seq=%d&timeout=30s", info.StreamSeq), `{"sql":"SELECT who FROM t ORDER BY id"}`)
		if err != nil || status != 200 {
			t.Fatalf("node %d: %d %s %v", i+1, status, body, err)
		}
		if i == 0 {
			first = body
		} else if body != first {
			t.Fatalf("node %d differs from node 1", i+1)
		}
		lost := len(missing(&acked, func(k string) bool { return strings.Contains(body, `"`+k+`"`) }))
		if lost > 0 {
			t.Fatalf("node %d: %d acknowledged inserts lost", i+1, lost)
		}
	}
	t.Logf("%d inserts acknowledged (%d before the kill); all on every node", count.Load(), killedAt)
}

// missing returns the acknowledged keys (strings) that present does not
// find.
// createApp creates database app on the node p (data directory dir) with
// the table t (id, client, n, and the extra column) and returns the
// node's admin token.
func createApp(t *testing.T, p *proc, dir, extra string) string {
	t.Helper()
	tokenBytes, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	if status, body, err := p.post(token, "/databases", `{"name":"app"}`); err != nil || status != 201 {
		t.Fatalf("create: %d %s %v", status, body, err)
	}
	sql := fmt.Sprintf(`{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, client INTEGER, n INTEGER, %s)"}`, extra)
	if status, body, _ := p.post(token, "/db/app", sql); status != 200 {
		t.Fatalf("create table: %d %s", status, body)
	}
	return token
}

// clientRows reads the answer to SELECT client, n: the set of
// "client/n" keys.
func clientRows(t *testing.T, body string) map[string]bool {
	t.Helper()
	var res struct {
		Results []struct {
			Rows [][2]int64 `json:"rows"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, r := range res.Results[0].Rows {
		present[fmt.Sprintf("%d/%d", r[0], r[1])] = true
	}
	return present
}

// inserters are 8 clients inserting rows (client, n, s) into database
// app's table t until their context ends or the node goes away, keeping
// which inserts were acknowledged.
type inserters struct {
	acked sync.Map // "client/n" -> true
	count atomic.Int64
	wg    sync.WaitGroup
}

// startInserters starts the clients; sExpr is the SQL for column s.
func startInserters(ctx context.Context, p *proc, token, sExpr string) *inserters {
	ins := &inserters{}
	for c := range 8 {
		ins.wg.Add(1)
		go func() {
			defer ins.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				status, _, err := p.post(token, "/db/app", fmt.Sprintf(`{"sql":"INSERT INTO t (client, n, s) VALUES (%d, %d, %s)"}`, c, i, sExpr))
				if err != nil {
					return // the node is gone
				}
				if status == 200 {
					ins.acked.Store(fmt.Sprintf("%d/%d", c, i), true)
					ins.count.Add(1)
				}
			}
		}()
	}
	return ins
}

// waitFor waits until n inserts are acknowledged, or ctx ends.
func (ins *inserters) waitFor(ctx context.Context, n int64) {
	for ins.count.Load() < n && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

func missing(acked *sync.Map, present func(string) bool) []string {
	var out []string
	acked.Range(func(k, _ any) bool {
		if !present(k.(string)) {
			out = append(out, k.(string))
		}
		return true
	})
	return out
}

// startPartCluster starts three node processes with a 2 s publish
// timeout and a database db holding a table t of one row, for the tests
// that freeze some of them. It returns the processes and an admin token.
func startPartCluster(t *testing.T, db string) ([]*proc, string) {
	t.Helper()
	procs := startProcCluster(t, 3, "--publish-timeout", "2s").procs
	token := clusterToken(t, "*", "admin")
	if status, body, err := procs[0].post(token, "/databases", `{"name":"`+db+`"}`); err != nil || status != 201 {
		t.Fatalf("create: %d %s %v", status, body, err)
	}
	if status, body, _ := procs[0].post(token, "/db/"+db, `[{"sql":"CREATE TABLE t (x INTEGER)"},{"sql":"INSERT INTO t VALUES (1)"}]`); status != 200 {
		t.Fatalf("write: %d %s", status, body)
	}
	return procs, token
}

// TestClusterMinorityRefusesWrites freezes two of three nodes (SIGSTOP: to
// the third they are unreachable, as in a partition). The node left alone
// holds no majority of the stream's replicas: it refuses writes with 503
// EUNAVAILABLE and acknowledges none, and keeps serving reads. When the
// others come back, writes go through again and every copy converges.
func TestClusterMinorityRefusesWrites(t *testing.T) {
	procs, token := startPartCluster(t, "part")
	for _, p := range procs[1:] {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			for _, p := range procs[1:] {
				p.cmd.Process.Signal(syscall.SIGCONT)
			}
		}
	}
	defer resume()
	// Whether this node forwards the write to a frozen leader or leads the
	// stream itself without a quorum, the answer is 503 within about the
	// publish timeout (2s here).
	began := time.Now()
	status, body, err := procs[0].post(token, "/db/part", `{"sql":"INSERT INTO t VALUES (2)"}`)
	if err != nil || status != 503 || !strings.Contains(body, "EUNAVAILABLE") {
		t.Fatalf("write in the minority: %d %s %v", status, body, err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the refusal took %v, want about the 2s publish timeout", took)
	}
	status, body, _ = procs[0].post(token, "/db/part", `{"sql":"SELECT count(*) FROM t WHERE x = 1"}`)
	if status != 200 || !strings.Contains(body, "[[1]]") {
		t.Fatalf("read in the minority: %d %s", status, body)
	}
	resume()
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, body, _ = procs[0].post(token, "/db/part", `{"sql":"INSERT INTO t VALUES (3)"}`)
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write after the partition healed: %d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var seq struct {
		Sequence uint64 `json:"sequence"`
	}
	json.Unmarshal([]byte(body), &seq)
	// Every copy converges: the refused write is there on every node or on
	// none (its fate was unknown to the client, which got a 503).
	var first string
	for i, p := range procs {
		status, got, err := p.post(token, fmt.Sprintf("/db/part?min_seq=%d&timeout=30s", seq.Sequence), `{"sql":"SELECT x FROM t ORDER BY rowid"}`)
		if err != nil || status != 200 {
			t.Fatalf("node %d: %d %s %v", i+1, status, got, err)
		}
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("node %d has %s, node 1 %s", i+1, got, first)
		}
	}
	if !strings.Contains(first, "[1]") || !strings.Contains(first, "[3]") {
		t.Fatalf("rows %s", first)
	}
	t.Logf("rows after the partition: %s", first)
}

// TestClusterIsolatedLeaderRefuses: the node that leads a database's
// stream is cut off from the other two (they are frozen). Every write it
// takes answers 503 within about the publish timeout: not 409, which a
// client would retry at once, for ever (the leader counts the writes it
// cannot commit, so the expected-sequence check refuses the next ones).
// Their outcome is unknown, as the 503 says: the leader may commit them
// once the others are back.
func TestClusterIsolatedLeaderRefuses(t *testing.T) {
	procs, token := startPartCluster(t, "iso")
	var info dbInfo
	if status, body := getStatus(t, procs[0].url+"/databases/iso", token); status != 200 || json.Unmarshal([]byte(body), &info) != nil {
		t.Fatalf("info: %d %s", status, body)
	}
	var leader *proc
	var others []*proc
	for i, p := range procs {
		if fmt.Sprintf("k%d", i+1) == info.StreamLeader {
			leader = p
		} else {
			others = append(others, p)
		}
	}
	if leader == nil {
		t.Fatalf("stream leader %q is none of the nodes", info.StreamLeader)
	}
	for _, p := range others {
		p.cmd.Process.Signal(syscall.SIGSTOP)
	}
	defer func() {
		for _, p := range others {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	for i := range 4 {
		began := time.Now()
		status, body, err := leader.post(token, "/db/iso", fmt.Sprintf(`{"sql":"INSERT INTO t VALUES (%d)"}`, 10+i))
		took := time.Since(began)
		t.Logf("write %d on the isolated leader: %d after %v", i, status, took.Round(time.Millisecond))
		if err != nil || status != 503 {
			t.Errorf("write %d on the isolated leader: %d %s %v after %v", i, status, body, err, took)
		} else if took > 5*time.Second {
			t.Errorf("write %d: the 503 took %v, want about the 2s publish timeout", i, took)
		}
	}
}

// TestVersionCommand: hasvc version and hasvc --version print the build
// and exit 0, without starting a node.
func TestVersionCommand(t *testing.T) {
	for _, args := range []string{"version", "--version"} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HASVC_TEST_RUN_MAIN=1", "HASVC_TEST_ARGS="+args)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "hasvc ") || !strings.Contains(string(out), "commit ") || !strings.Contains(string(out), runtime.Version()) {
			t.Fatalf("hasvc %s: %v %q", args, err, out)
		}
	}
}

// TestBusyNATSPort: a NATS port already in use fails the start at once,
// saying so (the embedded server alone would only log it and time out).
func TestBusyNATSPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HASVC_TEST_RUN_MAIN=1", fmt.Sprintf("HASVC_TEST_ARGS=--name busy --host 127.0.0.1 --port 0 --pg-port 0 --nats-port %d --data-dir %s", port, t.TempDir()))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address already in use") || time.Since(start) > 10*time.Second {
		t.Fatalf("start on a busy NATS port: %v after %v\n%s", err, time.Since(start), out)
	}
}
