package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/broker"
	"hasvc/internal/tenant"
)

const (
	testJWTSecret = "0123456789abcdef0123456789abcdef-cluster"
	testNATSPass  = "cluster-test-password"
)

// startCluster starts n nodes in this process, joined into one JetStream
// cluster, and returns them once every node serves.
func startCluster(t *testing.T, n int, edit func(i int, c *Config)) []*node {
	return startClusterExcept(t, n, edit, -1)
}

// startClusterLate starts nodes 1 and 2 of a three-node cluster; node 3 is
// configured but started only by its startLate. Buckets and streams have
// two replicas, so the first two nodes can place them alone.
func startClusterLate(t *testing.T) []*node {
	return startClusterExcept(t, 3, func(_ int, c *Config) { c.Replicas = 2 }, 2)
}

// startLate starts a node that startClusterLate left pending.
func (n *node) startLate() *node {
	n.t.Helper()
	if err := n.m.Run(n.t.Context()); err != nil {
		n.m.Close()
		n.t.Fatal(err)
	}
	n.url = "http://" + n.m.HTTPAddr()
	return n
}

func startClusterExcept(t *testing.T, n int, edit func(i int, c *Config), pending int) []*node {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	nodes := make([]*node, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		dir := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := NewMain()
			m.Stdout = &strings.Builder{}
			c := &m.Config
			c.Name = fmt.Sprintf("n%d", i+1)
			c.Host = "127.0.0.1"
			c.Port = 0
			c.NATSPort = -1
			c.PGPort = -1
			c.DataDir = dir
			c.LogLevel = "error"
			c.ClusterPort = ports[i]
			c.Join = strings.Join(peers, ",")
			c.JWTSecret = testJWTSecret
			c.NATSPass = testNATSPass
			if edit != nil {
				edit(i, c)
			}
			if err := c.Validate(); err != nil {
				errs <- err
				return
			}
			if i == pending {
				nodes[i] = &node{t: t, m: m}
				return
			}
			if err := m.Run(t.Context()); err != nil {
				m.Close()
				errs <- fmt.Errorf("node %d: %w", i+1, err)
				return
			}
			nodes[i] = &node{t: t, m: m, url: "http://" + m.HTTPAddr()}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		for i, nd := range nodes {
			if nd != nil && i != pending {
				nd.m.Close()
			}
		}
		t.Fatal(err)
	}
	admin := clusterToken(t, "*", "admin")
	for _, nd := range nodes {
		nd.admin = admin
		t.Cleanup(nd.stop)
	}
	return nodes
}

// clusterToken signs a token with the cluster's shared secret.
func clusterToken(t testing.TB, db, perm string) string {
	t.Helper()
	var out strings.Builder
	if code := runToken([]string{"--db", db, "--perm", perm, "--ttl", "1h", "--jwt-secret", testJWTSecret}, func(string) string { return "" }, &out, os.Stderr); code != 0 {
		t.Fatal("token failed")
	}
	return strings.TrimSpace(out.String())
}

// query runs one read and returns its rows as JSON.
func (n *node) query(db, sql string) string {
	n.t.Helper()
	out := n.ok("POST", "/db/"+db, fmt.Sprintf(`{"sql": %q}`, sql))
	var res struct {
		Results []struct {
			Rows json.RawMessage `json:"rows"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		n.t.Fatalf("%s: %v", out, err)
	}
	return string(res.Results[0].Rows)
}

// checksum hashes a database's schema and every row of every table, with
// each value's type (the JSON encoding keeps storage classes).
func (n *node) checksum(db string) string {
	n.t.Helper()
	h := sha256.New()
	schema := n.query(db, `SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_hasvc%' ESCAPE '\' ORDER BY type, name`)
	h.Write([]byte(schema))
	var tables [][]any
	json.Unmarshal([]byte(n.query(db, `SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_hasvc%' ESCAPE '\' ORDER BY name`)), &tables)
	for _, tb := range tables {
		name := tb[0].(string)
		h.Write([]byte(name))
		q := fmt.Sprintf(`SELECT * FROM "%s" ORDER BY rowid`, name)
		if tb[1] == 1.0 {
			// WITHOUT ROWID: a scan returns rows in primary key order.
			q = fmt.Sprintf(`SELECT * FROM "%s"`, name)
		}
		h.Write([]byte(n.query(db, q)))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dbInfo is the part of GET /databases/<name> the tests read.
type dbInfo struct {
	StreamSeq    uint64 `json:"stream_seq"`
	StreamLeader string `json:"stream_leader"`
	Nodes        []struct {
		Node         string `json:"node"`
		AppliedSeq   uint64 `json:"applied_seq"`
		Lag          uint64 `json:"lag"`
		QueuedWrites int64  `json:"queued_writes"`
	} `json:"nodes"`
}

func (n *node) info(db string) dbInfo {
	n.t.Helper()
	var info dbInfo
	if err := json.Unmarshal([]byte(n.ok("GET", "/databases/"+db, "")), &info); err != nil {
		n.t.Fatal(err)
	}
	return info
}

// waitConverged waits until every node has applied the whole stream of db
// (writes have stopped) and returns the common checksum, failing if the
// copies differ.
func waitConverged(t *testing.T, nodes []*node, db string) string {
	t.Helper()
	last := nodes[0].info(db).StreamSeq
	for _, n := range nodes {
		n.ok("POST", fmt.Sprintf("/db/%s?min_seq=%d&timeout=30s", db, last), `{"sql":"SELECT 1"}`)
	}
	sums := make([]string, len(nodes))
	for i, n := range nodes {
		sums[i] = n.checksum(db)
	}
	for i := range sums {
		if sums[i] != sums[0] {
			t.Fatalf("copies differ: node 1 %s, node %d %s", sums[0], i+1, sums[i])
		}
	}
	return sums[0]
}

// TestClusterConvergence runs concurrent writers on every node, to the same
// rows, with AUTOINCREMENT inserts, deletes and a schema change mid-load,
// in each mode, and checks that every copy ends identical.
func TestClusterConvergence(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	for _, mode := range []string{"strong", "eventual"} {
		t.Run(mode, func(t *testing.T) {
			db := "conv-" + mode
			nodes[0].ok("POST", "/databases", fmt.Sprintf(`{"name": %q, "mode": %q}`, db, mode))
			nodes[0].ok("POST", "/db/"+db, `[{"sql": "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT, n INTEGER)"},
				{"sql": "CREATE TABLE counters (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"},
				{"sql": "INSERT INTO counters VALUES ('a', 0), ('b', 0), ('c', 0)"}]`)
			var wg sync.WaitGroup
			stop := time.Now().Add(3 * time.Second)
			var ok, failed atomic.Int64
			for i, n := range nodes {
				for range 3 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := 0; time.Now().Before(stop); j++ {
							var body string
							switch r := rand.IntN(10); {
							case r < 5:
								body = fmt.Sprintf(`{"sql": "INSERT INTO items (node, n) VALUES ('n%d', %d)"}`, i+1, j)
							case r < 8:
								body = fmt.Sprintf(`{"sql": "UPDATE counters SET v = v + 1 WHERE k = '%c'"}`, 'a'+rand.IntN(3))
							default:
								body = `{"sql": "DELETE FROM items WHERE id = (SELECT max(id) FROM items)"}`
							}
							if status, _, _ := n.try("POST", "/db/"+db, n.admin, body); status == 200 {
								ok.Add(1)
							} else {
								failed.Add(1)
							}
						}
					}()
				}
			}
			// A schema change a second into the load, from node 2, tried
			// until it is acknowledged.
			var altered atomic.Bool
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Second)
				for time.Now().Before(stop) && !altered.Load() {
					status, _, _ := nodes[1].try("POST", "/db/"+db, nodes[1].admin, `{"sql": "ALTER TABLE items ADD COLUMN note TEXT DEFAULT 'none'"}`)
					altered.Store(status == 200)
				}
			}()
			wg.Wait()
			if !altered.Load() {
				t.Fatal("the schema change was never acknowledged")
			}
			waitConverged(t, nodes, db)
			t.Logf("%s: %d writes acknowledged, %d refused", mode, ok.Load(), failed.Load())
			if ok.Load() == 0 {
				t.Fatal("no write succeeded")
			}
			if !strings.Contains(nodes[2].query(db, "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'note'"), "1") {
				t.Logf("node 1 columns: %s", nodes[0].query(db, "SELECT name FROM pragma_table_info('items')"))
				t.Logf("node 1 schema: %s", nodes[0].query(db, "SELECT sql FROM sqlite_schema WHERE name = 'items'"))
				t.Logf("ALTER in the stream: %.2000s", findInStream(t, nodes[0], "HASVC_"+db, "ALTER"))
				t.Fatal("schema change did not replicate")
			}
		})
	}
}

// TestClusterStrongLosesNothing checks strong mode under concurrent writers
// on every node: every acknowledged insert is on every node, and a bank
// transfer workload keeps its total.
func TestClusterStrongLosesNothing(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	nodes[0].createDB("bank")
	nodes[0].ok("POST", "/db/bank", `[{"sql": "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT UNIQUE)"},
		{"sql": "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))"},
		{"sql": "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 10) INSERT INTO accounts SELECT v, 1000 FROM s"}]`)
	var acked sync.Map
	var nAcked, conflicts, transfers atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(4 * time.Second)
	for i, n := range nodes {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; time.Now().Before(stop); j++ {
					who := fmt.Sprintf("n%d-w%d-%d", i+1, w, j)
					var body string
					transfer := j%2 == 1
					if transfer {
						from, to := rand.IntN(10)+1, rand.IntN(10)+1
						body = fmt.Sprintf(`[{"sql": "UPDATE accounts SET balance = balance - 7 WHERE id = %d"}, {"sql": "UPDATE accounts SET balance = balance + 7 WHERE id = %d"}]`, from, to)
					} else {
						body = fmt.Sprintf(`{"sql": "INSERT INTO log (who) VALUES ('%s')"}`, who)
					}
					status, resp, err := n.try("POST", "/db/bank", n.admin, body)
					switch {
					case status == 200 && transfer:
						transfers.Add(1)
					case status == 200:
						acked.Store(who, true)
						nAcked.Add(1)
					case status == 409 && strings.Contains(resp, "ECONFLICT"):
						conflicts.Add(1)
					case status == 400 && strings.Contains(resp, "CHECK"):
					default:
						t.Errorf("write on node %d: %d %s %v", i+1, status, resp, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	waitConverged(t, nodes, "bank")
	t.Logf("%d inserts and %d transfers acknowledged, %d gave up with ECONFLICT", nAcked.Load(), transfers.Load(), conflicts.Load())
	for i, n := range nodes {
		var rows [][]string
		json.Unmarshal([]byte(n.query("bank", "SELECT who FROM log")), &rows)
		present := map[string]bool{}
		for _, r := range rows {
			present[r[0]] = true
		}
		lost := missing(&acked, func(k string) bool { return present[k] })
		if len(lost) > 0 || int64(len(rows)) != nAcked.Load() {
			for _, k := range lost {
				t.Logf("lost %s; in the stream: %s", k, findInStream(t, nodes[0], "HASVC_bank", k))
			}
			t.Fatalf("node %d: %d acknowledged inserts lost, %d rows for %d acknowledged", i+1, len(lost), len(rows), nAcked.Load())
		}
		if got := n.query("bank", "SELECT sum(balance) FROM accounts"); got != "[[10000]]" {
			t.Fatalf("node %d: total balance %s, want 10000", i+1, got)
		}
	}
}

// TestClusterEventualLosesNoInsert runs concurrent inserts on every node
// of an eventual-mode database, into a table with an AUTOINCREMENT key, a
// table keyed by text (whose rowid is hidden) and one the statement gives
// a NULL key, and checks that every acknowledged insert is on every copy:
// each node takes new rowids from its own range, so no two nodes' rows
// share one and replace each other.
func TestClusterEventualLosesNoInsert(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	nodes[0].ok("POST", "/databases", `{"name": "ev", "mode": "eventual"}`)
	nodes[0].ok("POST", "/db/ev", `[{"sql": "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT UNIQUE)"},
		{"sql": "CREATE TABLE b (token TEXT PRIMARY KEY, n INTEGER)"},
		{"sql": "CREATE TABLE c (id INTEGER PRIMARY KEY, token TEXT)"}]`)
	waitConverged(t, nodes, "ev")
	tables := []string{"a", "b", "c"}
	inserts := map[string]string{
		"a": `{"sql": "INSERT INTO a (token) VALUES (?)", "params": [%q]}`,
		"b": `{"sql": "INSERT INTO b VALUES (?, 1)", "params": [%q]}`,
		"c": `{"sql": "INSERT INTO c VALUES (NULL, ?)", "params": [%q]}`,
	}
	acked := map[string]*sync.Map{}
	for _, tb := range tables {
		acked[tb] = &sync.Map{}
	}
	var nAcked, refused atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for i, n := range nodes {
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; time.Now().Before(stop); j++ {
					tb := tables[j%3]
					token := fmt.Sprintf("n%d-w%d-%d", i+1, w, j)
					status, resp, err := n.try("POST", "/db/ev", n.admin, fmt.Sprintf(inserts[tb], token))
					if status == 200 {
						acked[tb].Store(token, true)
						nAcked.Add(1)
					} else {
						refused.Add(1)
						t.Logf("insert on node %d: %d %s %v", i+1, status, resp, err)
					}
				}
			}()
		}
	}
	wg.Wait()
	waitConverged(t, nodes, "ev")
	t.Logf("%d inserts acknowledged, %d refused", nAcked.Load(), refused.Load())
	if nAcked.Load() < 100 {
		t.Fatalf("only %d inserts acknowledged", nAcked.Load())
	}
	lo, _ := tenant.RowidRange(1)
	for i, n := range nodes {
		for _, tb := range tables {
			var rows [][]any
			json.Unmarshal([]byte(n.query("ev", "SELECT token, rowid FROM "+tb)), &rows)
			present := map[string]bool{}
			for _, r := range rows {
				present[r[0].(string)] = true
				if id := int64(r[1].(float64)); id < lo {
					t.Errorf("node %d, table %s: rowid %d of %v is in no node's range", i+1, tb, id, r[0])
				}
			}
			if lost := missing(acked[tb], func(k string) bool { return present[k] }); len(lost) > 0 {
				t.Fatalf("node %d, table %s: %d acknowledged inserts lost, first %s", i+1, tb, len(lost), lost[0])
			}
		}
	}
}

// TestClusterLifecycleAndReadYourWrites checks that a database created on
// one node is usable on another within a second, that min_seq gives
// read-your-writes across nodes, and that a deleted database is gone
// everywhere.
func TestClusterLifecycleAndReadYourWrites(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	nodes[0].createDB("shared")
	start := time.Now()
	for {
		status, body := nodes[2].do("POST", "/db/shared", nodes[2].admin, `{"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}`)
		if status == 200 {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("database not writable on node 3 after 1s: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("writable on node 3 after %v", time.Since(start))
	for i := range 20 {
		out := nodes[0].ok("POST", "/db/shared", fmt.Sprintf(`{"sql": "INSERT INTO t (v) VALUES ('%d')"}`, i))
		var res struct {
			Sequence uint64 `json:"sequence"`
		}
		json.Unmarshal([]byte(out), &res)
		got := nodes[1+i%2].ok("POST", fmt.Sprintf("/db/shared?min_seq=%d", res.Sequence), fmt.Sprintf(`{"sql": "SELECT v FROM t WHERE v = '%d'"}`, i))
		if !strings.Contains(got, fmt.Sprintf(`[["%d"]]`, i)) {
			t.Fatalf("read with min_seq=%d on node %d missed the write: %s", res.Sequence, 2+i%2, got)
		}
	}
	got := nodes[2].ok("POST", "/db/shared?consistency=strong", `{"sql": "SELECT count(*) FROM t"}`)
	if !strings.Contains(got, "[[20]]") {
		t.Fatalf("strong read on node 3: %s", got)
	}
	info := nodes[1].info("shared")
	if len(info.Nodes) != 3 {
		t.Fatalf("status lists %d nodes, want 3: %+v", len(info.Nodes), info)
	}
	var cluster struct {
		Nodes []struct{ Name string } `json:"nodes"`
	}
	json.Unmarshal([]byte(nodes[0].ok("GET", "/cluster", "")), &cluster)
	if len(cluster.Nodes) != 3 {
		t.Fatalf("GET /cluster lists %d nodes", len(cluster.Nodes))
	}

	// A token revoked through one node is refused by every node (the
	// deny list is the cluster's) within about a second.
	tok := clusterToken(t, "shared", "read")
	for _, n := range nodes {
		if status, body := n.do("POST", "/db/shared", tok, `{"sql": "SELECT 1"}`); status != 200 {
			t.Fatalf("%s before revocation: %d %s", n.m.Config.Name, status, body)
		}
	}
	nodes[0].ok("POST", "/tokens/revoke", `{"token": "`+tok+`"}`)
	revoked := time.Now()
	for _, n := range nodes {
		for {
			status, _ := n.do("POST", "/db/shared", tok, `{"sql": "SELECT 1"}`)
			if status == 401 {
				break
			}
			if time.Since(revoked) > 3*time.Second {
				t.Fatalf("%s still takes the revoked token after 3s", n.m.Config.Name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("every node refuses the revoked token %v after the revocation", time.Since(revoked))

	nodes[1].ok("DELETE", "/databases/shared", "")
	deadline := time.Now().Add(2 * time.Second)
	for _, n := range nodes {
		for {
			status, body := n.do("POST", "/db/shared", n.admin, `{"sql": "SELECT 1"}`)
			_, ferr := os.Stat(filepath.Join(n.m.Config.DataDir, "db", "shared.db"))
			if status == 404 && os.IsNotExist(ferr) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: deleted database still answers %d %s (file: %v)", n.m.Config.Name, status, body, ferr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestClusterLateJoiner writes 10,000 transactions (16 clients) on a
// two-node quorum of a three-node cluster, then starts the third node,
// which catches up.
func TestClusterLateJoiner(t *testing.T) {
	nodes := startClusterLate(t)
	nodes[0].createDB("late")
	nodes[0].ok("POST", "/db/late", `{"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}`)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := nodes[0]
			for {
				i := next.Add(1)
				if i > 10000 {
					return
				}
				if status, body, err := n.try("POST", "/db/late", n.admin, fmt.Sprintf(`{"sql": "INSERT INTO t (v) VALUES ('%d')"}`, i)); status != 200 {
					t.Errorf("insert: %d %s %v", status, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	late := nodes[2].startLate()
	start := time.Now()
	got := late.ok("POST", "/db/late?consistency=strong&timeout=60s", `{"sql": "SELECT count(*), count(DISTINCT v) FROM t"}`)
	if !strings.Contains(got, "[[10000,10000]]") {
		t.Fatalf("late node: %s", got)
	}
	t.Logf("late node caught up with 10,001 messages in %v", time.Since(start))
	waitConverged(t, []*node{nodes[0], nodes[1], late}, "late")
}

// TestReplicationURL runs the ancestor's setup: a second node without a
// NATS server of its own uses the first node's, with its credential.
func TestReplicationURL(t *testing.T) {
	first := startNode(t, t.TempDir(), func(c *Config) { c.NATSPass = testNATSPass; c.JWTSecret = testJWTSecret })
	second := startNode(t, t.TempDir(), func(c *Config) {
		c.Name = "n2"
		c.NATSPort = 0
		c.ReplicationURL = first.m.NATSURL()
		c.NATSPass = testNATSPass
		c.JWTSecret = testJWTSecret
	})
	first.createDB("shared")
	out := second.ok("POST", "/db/shared", `[{"sql": "CREATE TABLE t (v TEXT)"}, {"sql": "INSERT INTO t VALUES ('from n2')"}]`)
	var res struct {
		Sequence uint64 `json:"sequence"`
	}
	json.Unmarshal([]byte(out), &res)
	got := first.ok("POST", fmt.Sprintf("/db/shared?min_seq=%d", res.Sequence), `{"sql": "SELECT v FROM t"}`)
	if !strings.Contains(got, `[["from n2"]]`) {
		t.Fatalf("node 1 reads %s", got)
	}
	if info := first.info("shared"); len(info.Nodes) != 2 {
		t.Fatalf("status lists %d nodes, want 2", len(info.Nodes))
	}
}

// findInStream returns the messages of a stream that mention s (debugging
// aid for failures).
func findInStream(t *testing.T, n *node, stream, s string) string {
	user := "hasvc"
	if account, err := n.m.engine.NATSAccount(context.Background(), strings.TrimPrefix(stream, "HASVC_")); err == nil && account != "" {
		user = broker.AccountUser(user, account)
	}
	nc, err := nats.Connect(n.m.NATSURL(), nats.UserInfo(user, testNATSPass))
	if err != nil {
		return err.Error()
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		return err.Error()
	}
	info, _ := st.Info(context.Background())
	var out []string
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(context.Background(), seq)
		if err == nil && strings.Contains(string(m.Data), s) {
			out = append(out, fmt.Sprintf("%d: %s", seq, m.Data))
		}
	}
	return strings.Join(out, "\n")
}

// TestClusterPGTransactions runs bank transfers as pgwire transactions on
// every node of a strong-mode cluster at once. A transaction that loses a
// race gets 40001 and is run again; the total never changes and every
// copy ends identical.
func TestClusterPGTransactions(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	nodes[0].ok("POST", "/databases", `{"name":"pgbank"}`)
	ctx := context.Background()
	first := nodes[0].pgConnect("pgbank", nodes[0].admin)
	if _, err := first.Exec(ctx, "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL CHECK (bal >= 0))"); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Exec(ctx, "INSERT INTO acct WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 10) SELECT i, 100 FROM s"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes, "pgbank")
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed, conflicts := 0, 0
	for i, n := range nodes {
		c := n.pgConnect("pgbank", n.admin)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 25 {
				from, to := int64((i+k)%10+1), int64((i+3*k+1)%10+1)
				if from == to {
					to = from%10 + 1
				}
				for try := 0; ; try++ {
					err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
						var bal int64
						if err := tx.QueryRow(ctx, "SELECT bal FROM acct WHERE id = $1", from).Scan(&bal); err != nil {
							return err
						}
						amount := min(bal, int64(7))
						if _, err := tx.Exec(ctx, "UPDATE acct SET bal = bal - $1 WHERE id = $2", amount, from); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, "UPDATE acct SET bal = bal + $1 WHERE id = $2", amount, to)
						return err
					})
					mu.Lock()
					if err == nil {
						committed++
					} else if sqlstate(err) == "40001" {
						conflicts++
					}
					mu.Unlock()
					if err == nil {
						break
					}
					if sqlstate(err) != "40001" || try > 200 {
						t.Errorf("node %d transfer: %v", i+1, err)
						return
					}
					time.Sleep(time.Duration(try%5) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	waitConverged(t, nodes, "pgbank")
	for _, n := range nodes {
		if got := n.query("pgbank", "SELECT sum(bal), min(bal) >= 0 FROM acct"); !strings.Contains(got, "[[1000,1]]") {
			t.Fatalf("%s: %s", n.url, got)
		}
	}
	t.Logf("%d transfers committed, %d conflicts retried", committed, conflicts)
	if committed != 75 {
		t.Fatalf("%d of 75 transfers committed", committed)
	}
}

// TestClusterJoinListsItself starts two nodes whose --join is the same
// list, each node included (the usual habit with NATS routes): they must
// form a two-node cluster whose databases have two replicas, not wait
// for a third node that does not exist.
func TestClusterJoinListsItself(t *testing.T) {
	nodes := startCluster(t, 2, func(_ int, c *Config) {
		peers := append(c.Peers(), fmt.Sprintf("127.0.0.1:%d", c.ClusterPort))
		slices.Sort(peers)
		c.Join = strings.Join(peers, ",")
		if got := c.StreamReplicas(); got != 2 {
			t.Errorf("--join %s: %d replicas, want 2", c.Join, got)
		}
	})
	nodes[0].createDB("both")
	nodes[0].ok("POST", "/db/both", `{"sql": "CREATE TABLE t (v TEXT)"}`)
	nodes[1].ok("POST", "/db/both", `{"sql": "INSERT INTO t VALUES ('from n2')"}`)
	if got := nodes[0].ok("POST", "/db/both?consistency=strong", `{"sql": "SELECT v FROM t"}`); !strings.Contains(got, "from n2") {
		t.Fatalf("n1 reads %s", got)
	}
	if got := nodes[0].ok("GET", "/databases/both", ""); !strings.Contains(got, `"replicas":2`) {
		t.Fatalf("database: %s", got)
	}
}

// TestConfigIsSelf: which --join entries name the node itself.
func TestConfigIsSelf(t *testing.T) {
	for _, c := range []struct {
		host, peer string
		want       bool
	}{
		{"127.0.0.1", "127.0.0.1:7001", true},
		{"127.0.0.1", "localhost:7001", true},
		{"127.0.0.1", "127.0.0.1:7002", false},
		{"", "127.0.0.1:7001", true},
		{"0.0.0.0", "localhost:7001", true},
		{"", "192.0.2.1:7001", false}, // TEST-NET: not this machine
		{"192.0.2.1", "127.0.0.1:7001", false},
		{"", "not a peer", false},
	} {
		cfg := Config{Host: c.host, ClusterPort: 7001}
		if got := cfg.isSelf(c.peer); got != c.want {
			t.Errorf("--host %q, peer %s: self %v, want %v", c.host, c.peer, got, c.want)
		}
	}
}

// TestNATSMonitorPort: with --nats-monitor-port the embedded server serves
// NATS's monitoring endpoints; without it, none.
func TestNATSMonitorPort(t *testing.T) {
	off := startNode(t, t.TempDir(), nil)
	if a := off.m.broker.MonitorAddr(); a != "" {
		t.Fatalf("monitoring on %s without --nats-monitor-port", a)
	}
	n := startNode(t, t.TempDir(), func(c *Config) { c.NATSMonitorPort = -1 })
	n.createDB("watched")
	addr := n.m.broker.MonitorAddr()
	for _, path := range []string{"/varz", "/routez", "/jsz?streams=true"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !json.Valid(body) {
			t.Fatalf("%s: %d %.200s", path, resp.StatusCode, body)
		}
		if path == "/jsz?streams=true" && !strings.Contains(string(body), "HASVC_watched") {
			t.Fatalf("/jsz does not list the database's stream: %.300s", body)
		}
	}
}
