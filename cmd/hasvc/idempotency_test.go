package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keyed sends a write with an Idempotency-Key and returns the status, the
// body and whether the answer was a replay.
func (n *node) keyed(db, key, body string) (int, string, bool, error) {
	req, err := http.NewRequest("POST", n.url+"/db/"+db, strings.NewReader(body))
	if err != nil {
		return 0, "", false, err
	}
	req.Header.Set("Authorization", "Bearer "+n.admin)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header.Get("Idempotent-Replayed") == "true", err
}

const keyedInsert = `{"sql": "INSERT INTO orders (item) VALUES ('book') RETURNING id, item"}`

// TestIdempotencyKey: a write sent again with its key commits once and
// gets the first answer, also after a restart; a failed attempt leaves
// no key behind; bad keys are refused; reads ignore keys.
func TestIdempotencyKey(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.createDB("shop")
	n.ok("POST", "/db/shop", `{"sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL CHECK (item <> 'bad'))"}`)

	status, first, replayed, err := n.keyed("shop", "order-1", keyedInsert)
	if err != nil || status != 200 || replayed || !strings.Contains(first, `"rows":[[1,"book"]]`) {
		t.Fatalf("first: %d %s %v %v", status, first, replayed, err)
	}
	for range 2 {
		status, again, replayed, err := n.keyed("shop", "order-1", keyedInsert)
		if err != nil || status != 200 || !replayed || again != first {
			t.Fatalf("again: %d %s (replayed %v, %v); first %s", status, again, replayed, err, first)
		}
	}
	// Another key is another write.
	if _, out, replayed, _ := n.keyed("shop", "order-2", keyedInsert); replayed || !strings.Contains(out, `"rows":[[2,"book"]]`) {
		t.Fatalf("order-2: %s", out)
	}
	// A request that failed committed nothing and leaves no key: sent
	// again (fixed), it runs.
	status, out, _, _ := n.keyed("shop", "order-3", `{"sql": "INSERT INTO orders (item) VALUES ('bad')"}`)
	wantError(t, status, out, 400, "EINVALID")
	if _, out, replayed, _ := n.keyed("shop", "order-3", keyedInsert); replayed || !strings.Contains(out, `"rows":[[3,"book"]]`) {
		t.Fatalf("order-3 after a failure: %s", out)
	}
	// Bad keys.
	for _, key := range []string{"has space", strings.Repeat("k", 256), "naïve"} {
		status, out, _, _ := n.keyed("shop", key, keyedInsert)
		wantError(t, status, out, 400, "EINVALID")
	}
	// Two keys on one request are refused.
	req, _ := http.NewRequest("POST", n.url+"/db/shop", strings.NewReader(keyedInsert))
	req.Header.Set("Authorization", "Bearer "+n.admin)
	req.Header.Add("Idempotency-Key", "one")
	req.Header.Add("Idempotency-Key", "two")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, resp.StatusCode, string(body), 400, "EINVALID")
	}
	// The key's own row is no tenant's last insert: a later statement
	// that inserts nothing reports the tenant's last rowid (6), not the
	// key's.
	if _, out, _, _ := n.keyed("shop", "order-4", `{"sql": "INSERT INTO orders (item) VALUES ('a'), ('b'), ('c')"}`); !strings.Contains(out, `[[3,6]]`) {
		t.Fatalf("three rows: %s", out)
	}
	if out := n.ok("POST", "/db/shop", `{"sql": "UPDATE orders SET item = item WHERE id = 1"}`); !strings.Contains(out, `[[1,6]]`) {
		t.Fatalf("an update after a keyed insert: %s", out)
	}
	// A read with a key just runs.
	if _, out, replayed, _ := n.keyed("shop", "read-1", `{"sql": "SELECT count(*) FROM orders"}`); replayed || !strings.Contains(out, `[[6]]`) {
		t.Fatalf("read: %s", out)
	}
	// Keys are not the tenant's to see.
	if status, out := n.do("POST", "/db/shop", n.admin, `{"sql": "SELECT * FROM _hasvc_requests"}`); status != 403 {
		t.Fatalf("tenant read of the keys: %d %s", status, out)
	}

	n.stop()
	n = startNode(t, dir, nil)
	if _, again, replayed, _ := n.keyed("shop", "order-1", keyedInsert); !replayed || again != first {
		t.Fatalf("after a restart: %s (replayed %v)", again, replayed)
	}
	if got := n.query("shop", "SELECT count(*) FROM orders"); got != "[[6]]" {
		t.Fatalf("rows: %s", got)
	}
}

// TestIdempotencyKeyExpires: a key is remembered for a day; after that
// (once the writer has swept, every 64th keyed write) the same key runs
// again.
func TestIdempotencyKeyExpires(t *testing.T) {
	clock := &testClock{}
	n := startNodeClock(t, t.TempDir(), nil, clock)
	n.createDB("shop")
	n.ok("POST", "/db/shop", `{"sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)"}`)
	n.keyed("shop", "old", keyedInsert)
	clock.Advance(23 * time.Hour)
	for i := range 64 {
		n.keyed("shop", fmt.Sprint("fresh-", i), keyedInsert)
	}
	if _, _, replayed, _ := n.keyed("shop", "old", keyedInsert); !replayed {
		t.Fatal("a key of 23 hours ago was forgotten")
	}
	clock.Advance(2 * time.Hour)
	for i := range 64 {
		n.keyed("shop", fmt.Sprint("fresher-", i), keyedInsert)
	}
	if _, out, replayed, _ := n.keyed("shop", "old", keyedInsert); replayed || !strings.Contains(out, `"rows":[[130,"book"]]`) {
		t.Fatalf("a key of 25 hours ago: %s (replayed %v)", out, replayed)
	}
	// The keys recorded after it are still remembered.
	if _, _, replayed, _ := n.keyed("shop", "fresh-0", keyedInsert); !replayed {
		t.Fatal("a key of 2 hours ago was forgotten")
	}
}

// TestIdempotencyKeyConcurrent: the same keyed write sent many times at
// once (one node: they share commit groups) commits once, and every
// attempt gets the same answer.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("shop")
	n.ok("POST", "/db/shop", `{"sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)"}`)
	for round := range 5 {
		key := fmt.Sprint("burst-", round)
		sameAnswers(t, round, sendAtOnce(t, []*node{n}, 16, key))
	}
	if got := n.query("shop", "SELECT count(*) FROM orders"); got != "[[5]]" {
		t.Fatalf("rows after 5 keys sent 16 times each: %s", got)
	}
}

// TestIdempotencyKeyCluster: a keyed write retried through other nodes,
// one after another and all at once, commits once; every node answers
// with the first commit's results and sequence. With writes forwarded to
// the stream leader's node (attempts meet in one writer) and without
// (attempts race for the stream, and losers catch up and look again).
func TestIdempotencyKeyCluster(t *testing.T) {
	for _, forward := range []bool{true, false} {
		t.Run(fmt.Sprint("forward=", forward), func(t *testing.T) {
			testIdempotencyKeyCluster(t, startCluster(t, 3, func(_ int, c *Config) { c.ForwardWrites = forward }))
		})
	}
}

func testIdempotencyKeyCluster(t *testing.T, nodes []*node) {
	nodes[0].createDB("shop")
	nodes[0].ok("POST", "/db/shop", `{"sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)"}`)
	_, first, _, err := nodes[0].keyed("shop", "c-1", keyedInsert)
	if err != nil || !strings.Contains(first, `"rows":[[1,"book"]]`) {
		t.Fatalf("first: %s %v", first, err)
	}
	for _, n := range nodes[1:] {
		if _, again, replayed, _ := n.keyed("shop", "c-1", keyedInsert); !replayed || again != first {
			t.Fatalf("through another node: %s (replayed %v); first %s", again, replayed, first)
		}
	}
	// Results travel to the other copies in the message's headers: text
	// that is not ASCII, with a line break, a blob and a real survive.
	odd := `{"sql": "INSERT INTO orders (item) VALUES ('naïve ✓' || char(10) || 'line') RETURNING id, item, x'00ff', 1.5"}`
	_, first, _, _ = nodes[2].keyed("shop", "c-odd", odd)
	for _, n := range nodes[:2] {
		if _, again, replayed, _ := n.keyed("shop", "c-odd", odd); !replayed || again != first {
			t.Fatalf("odd results through another node: %s (replayed %v); first %s", again, replayed, first)
		}
	}
	for round := range 5 {
		key := fmt.Sprint("c-all-", round)
		sameAnswers(t, round, sendAtOnce(t, nodes, 9, key))
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for {
			got := n.query("shop", "SELECT count(*) FROM orders")
			if got == "[[7]]" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a node has %s rows, want 7", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// sendAtOnce sends keyedInsert with key k times at once, spread over
// nodes in turn, and returns the answers; each must be a 200.
func sendAtOnce(t *testing.T, nodes []*node, k int, key string) []string {
	answers := make([]string, k)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			n := nodes[i%len(nodes)]
			status, out, _, err := n.keyed("shop", key, keyedInsert)
			if err != nil || status != 200 {
				t.Errorf("%s: %d %s %v", n.m.Config.Name, status, out, err)
			}
			answers[i] = out
		})
	}
	wg.Wait()
	return answers
}

// sameAnswers fails the test unless every attempt got the same answer.
func sameAnswers(t *testing.T, round int, answers []string) {
	t.Helper()
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Fatalf("round %d: answers differ: %s / %s", round, answers[0], a)
		}
	}
}

// BenchmarkKeyedWrite is the price of an idempotency key: single-row
// INSERT requests over HTTP from 16 clients on one node, without and with
// a key (a new one per request).
//
//	go test -tags sqlite_preupdate_hook -run '^$' -bench KeyedWrite ./cmd/hasvc
func BenchmarkKeyedWrite(b *testing.B) {
	n := startNode(b, b.TempDir(), nil)
	n.createDB("shop")
	n.ok("POST", "/db/shop", `{"sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)"}`)
	var next atomic.Int64
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprint("keyed=", keyed), func(b *testing.B) {
			b.SetParallelism(8) // 16 clients on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					var status int
					var err error
					if keyed {
						status, _, _, err = n.keyed("shop", fmt.Sprint("k-", next.Add(1)), keyedInsert)
					} else {
						status, _, err = n.try("POST", "/db/shop", n.admin, keyedInsert)
					}
					if err != nil || status != 200 {
						b.Errorf("%d %v", status, err)
						return
					}
				}
			})
		})
	}
}
