package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hasvc/internal/auth"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct{ id, typ, data string }

// sseClient reads a change feed.
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
}

// openFeed connects to path (with its query) with the token, sending
// Last-Event-ID if lastID is set.
func (n *node) openFeed(t *testing.T, path, token, lastID string) *sseClient {
	t.Helper()
	c, read := n.openFeedPaused(t, http.DefaultClient, path, token, lastID)
	go read()
	return c
}

// openFeedPaused connects like openFeed, with client, but reads nothing
// until read runs.
func (n *node) openFeedPaused(t *testing.T, client *http.Client, path, token, lastID string) (c *sseClient, read func()) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("%s: %d %v", path, resp.StatusCode, resp.Header)
	}
	c = &sseClient{resp: resp, events: make(chan sseEvent, 1024)}
	read = func() {
		defer close(c.events)
		r := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev.typ != "" {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}
	t.Cleanup(func() { resp.Body.Close() })
	return c, read
}

// next returns the next event, failing after wait.
func (c *sseClient) next(t *testing.T, wait time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			t.Fatal("the feed ended")
		}
		return ev
	case <-time.After(wait):
		t.Fatalf("no event in %v", wait)
	}
	return sseEvent{}
}

// TestChangeFeed: the SSE feed delivers every committed transaction once,
// in order, across a dropped connection resumed with Last-Event-ID during
// a write load; filters by table; flattens to rows; tells a client whose
// sequences were trimmed where the stream starts; and ends when its token
// expires or is revoked.
func TestChangeFeed(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("feed")
	n.ok("POST", "/db/feed", `[{"sql":"CREATE TABLE a (v)"},{"sql":"CREATE TABLE b (v)"}]`) // 1
	reader := n.token(auth.PermRead, time.Hour, "feed")

	const writes = 600
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range writes { // sequences 2 .. writes+1
			n.ok("POST", "/db/feed", fmt.Sprintf(`{"sql":"INSERT INTO a VALUES (%d)"}`, i))
		}
	}()
	seen := map[uint64]int{}
	last := uint64(0)
	c := n.openFeed(t, "/db/feed/changes?from=0", reader, "")
	for drops := 0; last < writes+1; {
		ev := c.next(t, 10*time.Second)
		if ev.typ != "change" {
			t.Fatalf("event %+v", ev)
		}
		seq, _ := strconv.ParseUint(ev.id, 10, 64)
		if seq != last+1 {
			t.Fatalf("sequence %d after %d", seq, last)
		}
		var m struct {
			Node    string
			Changes []struct{ Table, Operation string }
		}
		if err := json.Unmarshal([]byte(ev.data), &m); err != nil || m.Node == "" || len(m.Changes) == 0 {
			t.Fatalf("message %d: %s (%v)", seq, ev.data, err)
		}
		seen[seq]++
		last = seq
		if seq%150 == 0 && drops < 3 { // drop the connection, resume after what was read
			c.resp.Body.Close()
			drops++
			c = n.openFeed(t, "/db/feed/changes", reader, ev.id)
		}
	}
	wg.Wait()
	for seq := uint64(1); seq <= writes+1; seq++ {
		if seen[seq] != 1 {
			t.Fatalf("sequence %d seen %d times", seq, seen[seq])
		}
	}

	// Tables and rows; without from, only what comes next.
	filtered := n.openFeed(t, "/db/feed/changes?tables=b", reader, "")
	byRow := n.openFeed(t, "/db/feed/changes?format=rows", reader, "")
	time.Sleep(100 * time.Millisecond)
	n.ok("POST", "/db/feed", `{"sql":"INSERT INTO a VALUES ('only a')"}`)
	n.ok("POST", "/db/feed", `[{"sql":"INSERT INTO a VALUES ('x')"},{"sql":"INSERT INTO b VALUES ('y')"}]`)
	ev := filtered.next(t, 5*time.Second)
	if ev.id != strconv.Itoa(writes+3) || !strings.Contains(ev.data, `"y"`) || strings.Contains(ev.data, `"x"`) {
		t.Fatalf("filtered: %+v", ev)
	}
	var ids []string
	for range 3 {
		ev := byRow.next(t, 5*time.Second)
		if ev.typ != "row" {
			t.Fatalf("row event %+v", ev)
		}
		ids = append(ids, ev.id)
	}
	if want := fmt.Sprintf("%d,,%d", writes+2, writes+3); strings.Join(ids, ",") != want {
		t.Fatalf("row ids %v, want %s", ids, want)
	}

	// Trimmed.
	purgeBelow(t, n, "feed", 100)
	tc := n.openFeed(t, "/db/feed/changes?from=10", reader, "")
	if ev := tc.next(t, 5*time.Second); ev.typ != "trimmed" || !strings.Contains(ev.data, `"first_seq":100`) {
		t.Fatalf("trimmed: %+v", ev)
	}
	if ev := n.openFeed(t, "/db/feed/changes?from=99", reader, "").next(t, 5*time.Second); ev.id != "100" {
		t.Fatalf("from the first kept: %+v", ev)
	}

	// Expiry, revocation, and a browser's token in the query string.
	short := n.token(auth.PermRead, 2*time.Second, "feed")
	sc := n.openFeed(t, "/db/feed/changes?access_token="+short, "", "")
	if ev := sc.next(t, 5*time.Second); ev.typ != "end" || !strings.Contains(ev.data, "expired") && !strings.Contains(ev.data, "no longer valid") {
		t.Fatalf("at expiry: %+v", ev)
	}
	revoked := n.token(auth.PermRead, time.Hour, "feed")
	rc := n.openFeed(t, "/db/feed/changes", revoked, "")
	n.ok("POST", "/tokens/revoke", fmt.Sprintf(`{"token":%q}`, revoked))
	if ev := rc.next(t, 5*time.Second); ev.typ != "end" {
		t.Fatalf("after revocation: %+v", ev)
	}
	other := n.token(auth.PermRead, time.Hour, "other")
	req, _ := http.NewRequestWithContext(context.Background(), "GET", n.url+"/db/feed/changes", nil)
	req.Header.Set("Authorization", "Bearer "+other)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another database's token: %d", resp.StatusCode)
	}
}

// TestChangeFeedSharedTail: caught-up readers share one consumer per
// database (the tail); readers catching up from the start, and one that
// stops reading long enough to be dropped from the tail, still see every
// transaction once and in order.
func TestChangeFeedSharedTail(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("tail")
	n.ok("POST", "/db/tail", `{"sql":"CREATE TABLE a (v)"}`) // 1
	reader := n.token(auth.PermRead, time.Hour, "tail")

	var feeds []*sseClient
	for i := range 12 {
		from := ""
		if i%3 == 0 {
			from = "?from=0"
		}
		feeds = append(feeds, n.openFeed(t, "/db/tail/changes"+from, reader, ""))
	}
	// A reader behind a tiny socket buffer that reads nothing for a
	// while: the node's writes to it block, the tail's hand-off fills up.
	small := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		},
	}).DialContext}}
	slow, read := n.openFeedPaused(t, small, "/db/tail/changes?from=0", reader, "")
	time.Sleep(200 * time.Millisecond)

	const writes = 800
	for i := range writes { // sequences 2 .. writes+1
		n.ok("POST", "/db/tail", fmt.Sprintf(`{"sql":"INSERT INTO a VALUES (%d || hex(zeroblob(500)))"}`, i))
	}
	check := func(name string, c *sseClient, first uint64) {
		t.Helper()
		for want := first; want <= writes+1; want++ {
			ev := c.next(t, 10*time.Second)
			if ev.typ != "change" || ev.id != strconv.FormatUint(want, 10) {
				t.Fatalf("%s: event %s %q, want change %d", name, ev.typ, ev.id, want)
			}
		}
	}
	for i, c := range feeds {
		first := uint64(2) // opened at the end: what came after
		if i%3 == 0 {
			first = 1
		}
		check(fmt.Sprintf("reader %d", i), c, first)
	}
	go read()
	check("slow reader", slow, 1)

	// All caught up and idle: one consumer (the tail) serves them all.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var info struct {
			Consumers int `json:"consumer_count"`
		}
		if st, err := dbJS(t, n, "tail").Stream(context.Background(), "HASVC_tail"); err == nil {
			si, err := st.Info(context.Background())
			if err == nil {
				info.Consumers = si.State.Consumers
			}
		}
		if info.Consumers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("13 caught-up readers use %d consumers, want 1 (the shared tail)", info.Consumers)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestChangeFeedSlowReaderMemory: a client that stops reading its change
// feed does not make the node hold what it has not read. The client asks
// for the feed and then reads nothing (behind a 4 KB socket buffer) while
// 500 transactions of 100 KB are written; what the node then holds for it
// (the live heap with the client connected, less the live heap a moment
// after it hangs up) is the feed's 64 messages ahead at most, not 50 MB.
//
// (The heap as such is no measure: with any client tailing a stream, fast
// or slow, JetStream keeps the stream's newest blocks in memory for a
// while, 60–110 MB after these writes here, for either.)
func TestChangeFeedSlowReaderMemory(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("slow")
	n.ok("POST", "/db/slow", `{"sql":"CREATE TABLE t (n INTEGER, s TEXT)"}`)
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /db/slow/changes?from=0 HTTP/1.1\r\nHost: hasvc\r\nAuthorization: Bearer %s\r\n\r\n", n.admin)
	head := make([]byte, 512)
	if k, err := conn.Read(head); err != nil || !strings.Contains(string(head[:k]), "200 OK") {
		t.Fatalf("feed: %q %v", head[:k], err)
	}
	for i := range 500 {
		n.ok("POST", "/db/slow", fmt.Sprintf(`{"sql":"INSERT INTO t VALUES (%d, hex(randomblob(51200)))"}`, i))
	}
	live := func() float64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc)
	}
	time.Sleep(500 * time.Millisecond)
	with := live()
	conn.Close()
	time.Sleep(time.Second)
	without := live()
	t.Logf("live heap %.1f MB with the client that reads nothing, %.1f MB once it hung up", with/1e6, without/1e6)
	if with-without > 15e6 {
		t.Errorf("the node held %.1f MB for a client that read nothing", (with-without)/1e6)
	}
}
