package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// feedThroughput writes n transactions (16 writers), then reads them all
// through one change feed client from the start and reports events/s: the
// rate a client can keep up with.
func (h *harness) feedThroughput(n int) {
	h.must(h.post("/databases", `{"name":"`+h.db+`"}`))(201, 409)
	h.must(h.post("/db/"+h.db, `{"sql":"CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, kind TEXT, n INTEGER)"}`))(200)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				h.post("/db/"+h.db, `{"sql":"INSERT INTO events (kind, n) VALUES ('click', 42)"}`)
			}
		}()
	}
	wg.Wait()
	resp := h.feed("?from=0")
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	start := time.Now()
	events := 0
	for events < n {
		line, err := r.ReadString('\n')
		if err != nil {
			fmt.Fprintln(os.Stderr, "feed:", err)
			os.Exit(1)
		}
		if strings.HasPrefix(line, "id: ") {
			events++
		}
	}
	took := time.Since(start)
	fmt.Printf("feed     n=%-6d read in %6.2f s  %9.0f events/s\n", n, took.Seconds(), float64(n)/took.Seconds())
}

// feedIdle opens n change feed clients that wait for writes and reports
// the node's resident memory before and after.
func (h *harness) feedIdle(n, pid int) {
	h.must(h.post("/databases", `{"name":"`+h.db+`"}`))(201, 409)
	before := rss(pid)
	var resps []*http.Response
	for range n {
		resps = append(resps, h.feed(""))
	}
	time.Sleep(3 * time.Second)
	after := rss(pid)
	fmt.Printf("feed-idle n=%-5d RSS %6.0f MB -> %6.0f MB (%5.1f KB per client)\n",
		n, float64(before)/1e6, float64(after)/1e6, float64(after-before)/1e3/float64(n))
	for _, r := range resps {
		r.Body.Close()
	}
}

// feed opens the change feed with query.
func (h *harness) feed(query string) *http.Response {
	req, _ := http.NewRequest("GET", h.url+"/db/"+h.db+"/changes"+query, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := h.client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		fmt.Fprintln(os.Stderr, "feed:", err, resp)
		os.Exit(1)
	}
	return resp
}
