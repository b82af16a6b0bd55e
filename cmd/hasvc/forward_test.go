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

	"github.com/jackc/pgx/v5"
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

// logged returns the who column of table log in db on n.
func (n *node) logged(db string) map[string]bool {
	present := map[string]bool{}
	for _, who := range strings.Split(strings.Trim(n.query(db, "SELECT group_concat(who, '|') FROM log"), `[]"`), "|") {
		present[who] = true
	}
	return present
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
		present := n.logged("fw")
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
		present := n.logged("fo")
		if lost := missing(&acked, func(k string) bool { return present[k] }); len(lost) > 0 {
			t.Errorf("node %s lost %d acknowledged writes: %v", n.m.Config.Name, len(lost), lost[:min(5, len(lost))])
		}
		if int64(rows) < nAcked.Load() || int64(rows) > nAcked.Load()+failed.Load() {
			t.Errorf("node %s has %d rows for %d acknowledged and %d of unknown outcome", n.m.Config.Name, rows, nAcked.Load(), failed.Load())
		}
	}
}

// TestClusterForwardedTransactions: PostgreSQL transactions (BEGIN ..
// COMMIT) on every node of three, one strong-mode database. Those on the
// nodes that do not lead its stream, and write first, run on the leader's
// node, so they do not race it: bank transfers with a savepoint rolled
// back in each keep the total, lose no insert and almost never conflict.
// A transaction that read a copy another commit has since changed fails
// with 40001 (no lost update), one that read an unchanged copy commits,
// one abandoned half-way leaves nothing and frees the leader's writer,
// and one whose leader's node stops fails at once with 55000.
func TestClusterForwardedTransactions(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	ctx := context.Background()
	nodes[0].createDB("ftx")
	nodes[0].ok("POST", "/db/ftx", `[{"sql": "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))"},
		{"sql": "CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT UNIQUE NOT NULL)"},
		{"sql": "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 10) INSERT INTO accounts SELECT v, 1000 FROM s"}]`)
	waitConverged(t, nodes, "ftx")
	leader := nodes[0].info("ftx").StreamLeader
	var follower *node
	for _, n := range nodes {
		if n.m.Config.Name != leader {
			follower = n
		}
	}

	var acked sync.Map
	var committed, retried atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for i, n := range nodes {
		for w := range 3 {
			c := n.pgConnect("ftx", n.admin)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; time.Now().Before(stop); j++ {
					who := fmt.Sprintf("n%d-w%d-%d", i+1, w, j)
					from, to := (i+w+j)%10+1, (i+2*w+j)%10+1
					err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
						if j%4 == 0 {
							// A savepoint before the first write goes
							// with it.
							if _, err := tx.Exec(ctx, "SAVEPOINT first"); err != nil {
								return err
							}
						}
						var left int64
						if err := tx.QueryRow(ctx, "UPDATE accounts SET balance = balance - 3 WHERE id = $1 AND balance >= 3 RETURNING balance", from).Scan(&left); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + 3 WHERE id = $1", to); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, "SAVEPOINT undone"); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, "INSERT INTO log (who) VALUES ($1)", who+"-undone"); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT undone"); err != nil {
							return err
						}
						// Its own write, read back inside the transaction.
						var seen string
						return tx.QueryRow(ctx, "INSERT INTO log (who) VALUES ($1) RETURNING who", who).Scan(&seen)
					})
					switch {
					case err == nil:
						acked.Store(who, true)
						committed.Add(1)
					case sqlstate(err) == "40001":
						retried.Add(1)
					default:
						t.Errorf("transaction on node %d: %v", i+1, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	waitConverged(t, nodes, "ftx")
	remote := 0.0
	for _, n := range nodes {
		f := n.metric("hasvc_transactions_forwarded_total")
		if n.m.Config.Name == leader && f != 0 {
			t.Errorf("the leader's node %s sent %v transactions elsewhere", leader, f)
		}
		remote += f
	}
	t.Logf("%d transactions committed, %d answered 40001, %v ran on the leader %s from other nodes", committed.Load(), retried.Load(), remote, leader)
	if remote < float64(committed.Load())/3 {
		t.Errorf("only %v of %d transactions ran on the leader's node from others: two nodes of three should send theirs", remote, committed.Load())
	}
	if retried.Load() > committed.Load()/100 {
		t.Errorf("%d of %d transactions conflicted: transactions run on the leader should not race", retried.Load(), committed.Load())
	}
	for i, n := range nodes {
		present := n.logged("ftx")
		if lost := missing(&acked, func(k string) bool { return present[k] }); len(lost) > 0 {
			t.Errorf("node %d lost %d acknowledged transactions", i+1, len(lost))
		}
		if got := n.query("ftx", "SELECT count(*) FROM log WHERE who LIKE '%-undone'"); got != "[[0]]" {
			t.Errorf("node %d kept rows rolled back to a savepoint: %s", i+1, got)
		}
		if got := n.query("ftx", "SELECT sum(balance) FROM accounts"); got != "[[10000]]" {
			t.Errorf("node %d: total balance %s, want 10000", i+1, got)
		}
	}

	// A transaction reads on the follower, another commits on the
	// leader's node, then the first writes what it read: 40001 (at the
	// write or at the commit), not a lost update. Read again, it commits.
	a := follower.pgConnect("ftx", follower.admin)
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var balance int64
	if err := tx.QueryRow(ctx, "SELECT balance FROM accounts WHERE id = 1").Scan(&balance); err != nil {
		t.Fatal(err)
	}
	var lead *node
	for _, n := range nodes {
		if n.m.Config.Name == leader {
			lead = n
		}
	}
	lead.ok("POST", "/db/ftx", `{"sql": "UPDATE accounts SET balance = balance + 1 WHERE id = 1"}`)
	_, err = tx.Exec(ctx, "UPDATE accounts SET balance = $1 WHERE id = 1", balance-1)
	if err == nil {
		err = tx.Commit(ctx)
	}
	if sqlstate(err) != "40001" {
		t.Fatalf("write after a read another commit changed: %v, want 40001", err)
	}
	tx.Rollback(ctx)
	waitConverged(t, nodes, "ftx")
	err = pgx.BeginFunc(ctx, a, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT balance FROM accounts WHERE id = 1").Scan(&balance); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = $1 WHERE id = 1", balance-1)
		return err
	})
	if err != nil {
		t.Fatalf("read then write on an unchanged copy: %v", err)
	}

	// Abandoned half-way: the connection closes inside the transaction.
	b := follower.pgConnect("ftx", follower.admin)
	if _, err := b.Exec(ctx, "BEGIN; INSERT INTO log (who) VALUES ('abandoned')"); err != nil {
		t.Fatal(err)
	}
	b.Close(ctx)
	began := time.Now()
	lead.ok("POST", "/db/ftx", `{"sql": "INSERT INTO log (who) VALUES ('after')"}`)
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("a write on the leader's node waited %v for an abandoned transaction", took)
	}
	if got := lead.query("ftx", "SELECT count(*) FROM log WHERE who = 'abandoned'"); got != "[[0]]" {
		t.Errorf("an abandoned transaction committed: %s", got)
	}

	// The leader's node stops in the middle of a transaction: its commit
	// fails at once with 55000 (it was rolled back), and the next
	// transaction commits once another node leads the stream.
	c := follower.pgConnect("ftx", follower.admin)
	if _, err := c.Exec(ctx, "BEGIN; INSERT INTO log (who) VALUES ('cut')"); err != nil {
		t.Fatal(err)
	}
	lead.stop()
	began = time.Now()
	_, err = c.Exec(ctx, "COMMIT")
	if sqlstate(err) != "55000" {
		t.Errorf("commit after the leader's node stopped: %v, want 55000", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the commit took %v to fail", took)
	}
	c.Exec(ctx, "ROLLBACK")
	var ok bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(200 * time.Millisecond) {
		ok = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO log (who) VALUES ('next')")
			return err
		}) == nil
	}
	if !ok {
		t.Fatal("no transaction committed in 30 s after the leader's node stopped")
	}
	if got := follower.query("ftx", "SELECT group_concat(who) FROM log WHERE who IN ('cut', 'next')"); got != `[["next"]]` {
		t.Errorf("after the leader's node stopped: %s, want only next", got)
	}
}
