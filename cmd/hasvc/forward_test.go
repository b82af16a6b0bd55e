package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// metric reads a counter from a node's /metrics.
func (n *node) metric(name string) float64 {
	n.t.Helper()
	_, body := n.do("GET", "/metrics", n.admin, "")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	n.t.Fatalf("no metric %s", name)
	return 0
}

// TestClusterForwardedWrites: writers on every node of three, one
// strong-mode database. The nodes that do not lead its stream forward
// their writes to the one that does, so writes do not race: almost no
// conflicts, nothing lost, each node reads its own writes at once, and a
// failing statement reports itself as on the leader.
func TestClusterForwardedWrites(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	nodes[0].createDB("fw")
	nodes[1].ok("POST", "/db/fw", `[{"sql": "CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT UNIQUE, v REAL, b BLOB)"},
		{"sql": "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))"},
		{"sql": "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 10) INSERT INTO accounts SELECT v, 1000 FROM s"}]`)
	leader := nodes[0].info("fw").StreamLeader
	if leader == "" {
		t.Fatal("no stream leader in GET /databases/fw")
	}
	conflictsBefore := 0.0
	for _, n := range nodes {
		conflictsBefore += n.metric("hasvc_write_conflicts_total")
	}

	var acked sync.Map
	var nAcked, transfers atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for i, n := range nodes {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; time.Now().Before(stop); j++ {
					who := fmt.Sprintf("n%d-w%d-%d", i+1, w, j)
					if j%3 == 2 {
						from, to := (i+w+j)%10+1, (i+2*w+j)%10+1
						status, resp := n.do("POST", "/db/fw", n.admin, fmt.Sprintf(`[{"sql": "UPDATE accounts SET balance = balance - 3 WHERE id = %d"}, {"sql": "UPDATE accounts SET balance = balance + 3 WHERE id = %d"}]`, from, to))
						if status == 200 {
							transfers.Add(1)
						} else if status != 400 || !strings.Contains(resp, "CHECK") {
							t.Errorf("transfer on node %d: %d %s", i+1, status, resp)
							return
						}
						continue
					}
					// Parameters of every type cross to the leader intact.
					status, resp := n.do("POST", "/db/fw", n.admin, fmt.Sprintf(`{"sql": "INSERT INTO log (who, v, b) VALUES (:who, :v, :b) RETURNING who, v, b", "params": {"who": %q, "v": 1.0, "b": {"blob": "AP8="}}}`, who))
					if status != 200 || !strings.Contains(resp, fmt.Sprintf(`[[%q,1.0,{"blob":"AP8="}]]`, who)) {
						t.Errorf("insert on node %d: %d %s", i+1, status, resp)
						return
					}
					acked.Store(who, true)
					nAcked.Add(1)
					// Read-your-writes on the node that took the write.
					if out := n.query("fw", fmt.Sprintf("SELECT count(*) FROM log WHERE who = '%s'", who)); out != "[[1]]" {
						t.Errorf("node %d does not see its own write %s: %s", i+1, who, out)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	waitConverged(t, nodes, "fw")
	conflicts, forwarded := -conflictsBefore, 0.0
	for _, n := range nodes {
		conflicts += n.metric("hasvc_write_conflicts_total")
		f := n.metric("hasvc_writes_forwarded_total")
		if n.m.Config.Name == leader && f != 0 {
			t.Errorf("the leader's node %s forwarded %v writes", leader, f)
		}
		forwarded += f
	}
	writes := float64(nAcked.Load() + transfers.Load())
	t.Logf("%d inserts and %d transfers acknowledged, %v forwarded to %s, %v conflicts", nAcked.Load(), transfers.Load(), forwarded, leader, conflicts)
	if forwarded < writes/3 {
		t.Errorf("only %v of %v writes were forwarded: two nodes of three should forward theirs", forwarded, writes)
	}
	if conflicts > writes/100 {
		t.Errorf("%v conflicts for %v writes: forwarded writes should not race", conflicts, writes)
	}
	for i, n := range nodes {
		present := map[string]bool{}
		for _, who := range strings.Split(strings.Trim(n.query("fw", "SELECT group_concat(who, '|') FROM log"), `[]"`), "|") {
			present[who] = true
		}
		if lost := missing(&acked, func(k string) bool { return present[k] }); len(lost) > 0 {
			t.Errorf("node %d lost %d acknowledged inserts", i+1, len(lost))
		}
		if got := n.query("fw", "SELECT sum(balance) FROM accounts"); got != "[[10000]]" {
			t.Errorf("node %d: total balance %s, want 10000", i+1, got)
		}
	}

	// A failing statement on the leader comes back as such: its code,
	// message and index.
	for _, n := range nodes {
		status, body := n.do("POST", "/db/fw", n.admin, `[{"sql": "INSERT INTO log (who) VALUES ('x-fail')"}, {"sql": "INSERT INTO nope VALUES (1)"}]`)
		wantError(t, status, body, 400, "EINVALID")
		if !strings.Contains(body, `"statement":1`) || !strings.Contains(body, "no such table: nope") {
			t.Errorf("error from node %s: %s", n.m.Config.Name, body)
		}
	}
	if got := nodes[0].query("fw", "SELECT count(*) FROM log WHERE who = 'x-fail'"); got != "[[0]]" {
		t.Errorf("a failed request committed: %s", got)
	}
	// Over pgwire too, on a node that forwards: SQLite's own error keeps
	// its SQLSTATE (a unique violation is 23505, not a generic error).
	for _, n := range nodes {
		if n.m.Config.Name == leader {
			continue
		}
		_, err := n.pgConnect("fw", n.admin).Exec(context.Background(), "INSERT INTO log (who) VALUES ('n1-w0-0')")
		if sqlstate(err) != "23505" {
			t.Errorf("unique violation over pgwire through %s: %v (SQLSTATE %s)", n.m.Config.Name, err, sqlstate(err))
		}
	}
}

// TestClusterForwardingLeaderStops: the node leading the stream stops in
// the middle of a write load on the other two. Their writes go on once a
// new leader is elected; every acknowledged write is on every copy, once.
func TestClusterForwardingLeaderStops(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	nodes[0].createDB("fo")
	nodes[0].ok("POST", "/db/fo", `{"sql": "CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT UNIQUE)"}`)
	leader := nodes[0].info("fo").StreamLeader
	var victim *node
	var others []*node
	for _, n := range nodes {
		if n.m.Config.Name == leader {
			victim = n
		} else {
			others = append(others, n)
		}
	}
	if victim == nil {
		t.Fatalf("leader %q is none of the nodes", leader)
	}
	var acked sync.Map
	var nAcked, failed atomic.Int64
	var lastAck atomic.Int64
	var longestGap atomic.Int64
	var wg sync.WaitGroup
	stopped := make(chan struct{})
	// 2 s of writes, then 15 s after the leader's node stops: an election
	// under load (and the race detector) has paused writes for up to 6 s
	// here.
	stop := time.Now().Add(17 * time.Second)
	for i, n := range others {
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; time.Now().Before(stop); j++ {
					who := fmt.Sprintf("o%d-w%d-%d", i, w, j)
					status, body, err := n.try("POST", "/db/fo", n.admin, fmt.Sprintf(`{"sql": "INSERT INTO log (who) VALUES ('%s')"}`, who))
					switch {
					case err == nil && status == 200:
						acked.Store(who, true)
						nAcked.Add(1)
						now := time.Now().UnixNano()
						if prev := lastAck.Swap(now); prev != 0 {
							select {
							case <-stopped:
								if gap := now - prev; gap > longestGap.Load() {
									longestGap.Store(gap)
								}
							default:
							}
						}
					case err == nil && (status == 503 || status == 409 || status == 504):
						failed.Add(1) // unknown outcome or lost race: not acknowledged
						time.Sleep(20 * time.Millisecond)
					default:
						t.Errorf("write: %d %s %v", status, body, err)
						return
					}
				}
			}()
		}
	}
	time.Sleep(2 * time.Second)
	before := nAcked.Load()
	victim.stop()
	close(stopped)
	wg.Wait()
	after := nAcked.Load() - before
	t.Logf("%d writes acknowledged before the leader stopped, %d after; %d failed; longest pause %v", before, after, failed.Load(), time.Duration(longestGap.Load()))
	if after < 50 {
		t.Fatalf("only %d writes after the leader stopped", after)
	}
	waitConverged(t, others, "fo")
	for _, n := range others {
		var rows int
		fmt.Sscanf(n.query("fo", "SELECT count(*) FROM log"), "[[%d]]", &rows)
		present := map[string]bool{}
		for _, who := range strings.Split(strings.Trim(n.query("fo", "SELECT group_concat(who, '|') FROM log"), `[]"`), "|") {
			present[who] = true
		}
		if lost := missing(&acked, func(k string) bool { return present[k] }); len(lost) > 0 {
			t.Errorf("node %s lost %d acknowledged writes: %v", n.m.Config.Name, len(lost), lost[:min(5, len(lost))])
		}
		if int64(rows) < nAcked.Load() || int64(rows) > nAcked.Load()+failed.Load() {
			t.Errorf("node %s has %d rows for %d acknowledged and %d of unknown outcome", n.m.Config.Name, rows, nAcked.Load(), failed.Load())
		}
	}
}
