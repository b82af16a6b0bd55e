package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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
		"--data-dir", dir, "--log-level", "warn"}
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
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.url + "/healthz"); err == nil {
			resp.Body.Close()
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("node did not start in 30s")
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
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		sb.WriteString(sc.Text())
	}
	return resp.StatusCode, sb.String(), nil
}

// TestKillNineKeepsAcknowledgedWrites kills a node with SIGKILL while 8
// clients insert, restarts it, and checks that every insert that was
// acknowledged is there.
func TestKillNineKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	httpPort, natsPort := freePort(t), freePort(t)
	p := startProc(t, dir, httpPort, natsPort)
	tokenBytes, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	if status, body, err := p.post(token, "/databases", `{"name":"app"}`); err != nil || status != 201 {
		t.Fatalf("create: %d %s %v", status, body, err)
	}
	if status, body, _ := p.post(token, "/db/app", `{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, client INTEGER, n INTEGER)"}`); status != 200 {
		t.Fatalf("create table: %d %s", status, body)
	}

	var acked sync.Map // "client/n" -> true
	var count atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				status, _, err := p.post(token, "/db/app", fmt.Sprintf(`{"sql":"INSERT INTO t (client, n) VALUES (%d, %d)"}`, c, i))
				if err != nil {
					return // the node is gone
				}
				if status == 200 {
					acked.Store(fmt.Sprintf("%d/%d", c, i), true)
					count.Add(1)
				}
			}
		}()
	}
	for count.Load() < 300 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	wg.Wait()
	cancel()

	p2 := startProc(t, dir, httpPort, natsPort)
	status, body, err := p2.post(token, "/db/app", `{"sql":"SELECT client, n FROM t"}`)
	if err != nil || status != 200 {
		t.Fatalf("select after restart: %d %s %v", status, body, err)
	}
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
	lost := 0
	acked.Range(func(k, _ any) bool {
		if !present[k.(string)] {
			lost++
		}
		return true
	})
	t.Logf("acknowledged %d inserts before SIGKILL, %d rows after restart", count.Load(), len(present))
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
