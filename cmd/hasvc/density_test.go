package main

import (
	"fmt"
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
)

// Density (issue 16), kept small enough for CI: a node built without the
// race detector (whose instrumentation would inflate both figures) creates
// densityN idle databases from 8 clients. The test fails if the second
// half of the creates cost the node more than 1.25 times the CPU of the
// first (JetStream checks a new stream against every stream of its
// account; with every database in one account the second half took about
// 1.4 times as long as the first at this size), or if an idle database
// costs the node more memory than densityMaxBytes.
const (
	densityN = 10000
	// densityMaxBytes bounds the node's resident memory per idle
	// database. The target is 20 KB; a database costs about
	// 70 KB today, nearly all of it inside the NATS server (its stream:
	// an internal client, three goroutines and a file store; see
	// BENCHMARKS.md), so this bound guards against growth, not the
	// target.
	densityMaxBytes = 100 << 10
)

func TestDensity(t *testing.T) {
	if testing.Short() {
		t.Skip("creates thousands of databases")
	}
	bin := filepath.Join(t.TempDir(), "hasvc")
	build := exec.Command("go", "build", "-tags", "sqlite_preupdate_hook", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(bin, "--name", "dense", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--nats-port", "-1",
		"--pg-port", "0", "--data-dir", dir, "--log-level", "warn",
		// No flush per create: what a create costs beyond its fsyncs
		// is what grows with the number of databases.
		"--fsync", "2m")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := &proc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(p.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node not ready in 60s")
		}
	}
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(token))
	before := procRSS(t, cmd.Process.Pid)

	// 8 clients create the databases; the time the 1,000th, the 5,500th
	// and the last create ended splits the run into two halves of 4,500
	// creates, long enough for the machine's other work to even out.
	var next, done atomic.Int64
	var failed atomic.Pointer[string]
	type mark struct {
		wall time.Time
		cpu  time.Duration // the node's
	}
	marks := map[int64]*mark{1000: {}, (densityN + 1000) / 2: {}, densityN: {}}
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > densityN || failed.Load() != nil {
					return
				}
				status, body, err := p.post(admin, "/databases", fmt.Sprintf(`{"name":"d%05d"}`, i))
				if err != nil || status != 201 {
					msg := fmt.Sprintf("create d%05d: %d %s %v", i, status, body, err)
					failed.CompareAndSwap(nil, &msg)
				}
				if m := marks[done.Add(1)]; m != nil {
					m.wall, m.cpu = time.Now(), procCPU(t, cmd.Process.Pid)
				}
			}
		}()
	}
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		t.Fatal(*msg)
	}
	// The node's CPU time is what the halves compare: other work on the
	// machine (CI runs other packages' tests meanwhile) stretches their
	// wall time, not much the CPU the node spends.
	m0, m1, m2 := marks[1000], marks[(densityN+1000)/2], marks[densityN]
	first, second := m1.cpu-m0.cpu, m2.cpu-m1.cpu
	time.Sleep(3 * time.Second) // let the node settle
	after := procRSS(t, cmd.Process.Pid)
	perDB := (after - before) / densityN
	t.Logf("%d databases in %.1f s: creates 1,001-%d took the node %.1f s of CPU (%.1f s of wall time), the %d after them %.1f s (%.1f s): %.2fx; RSS %d MB -> %d MB, %d KB per database",
		densityN, time.Since(start).Seconds(), (densityN+1000)/2, first.Seconds(), m1.wall.Sub(m0.wall).Seconds(),
		densityN-(densityN+1000)/2, second.Seconds(), m2.wall.Sub(m1.wall).Seconds(),
		second.Seconds()/first.Seconds(), before>>20, after>>20, perDB>>10)
	if second > first*5/4 {
		t.Errorf("creating a database got slower as they accumulated: the second half took the node %.1f s of CPU, the first %.1f s", second.Seconds(), first.Seconds())
	}
	if perDB > densityMaxBytes {
		t.Errorf("an idle database costs %d KB of the node's memory, over %d KB", perDB>>10, densityMaxBytes>>10)
	}
}

// procCPU returns the CPU time process pid has used (user and system).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Error(err)
		return 0
	}
	// The fields after the command (which may hold spaces) in
	// parentheses; utime and stime are the 14th and 15th of the line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// procRSS returns the resident memory of process pid in bytes.
func procRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
