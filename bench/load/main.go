// Command load is hasvc's HTTP load generator and the reference server it
// is compared with. It runs one scenario against a running node and prints
// one line of results; bench/run.sh runs them all side by side.
//
//	load -url http://127.0.0.1:8080 -token T -db bench -scenario insert -c 16 -d 10s
//	load -serve-bare 127.0.0.1:9090   # a bare net/http handler for comparison
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "node URL; several, comma-separated, spread the clients over them")
	token := flag.String("token", "", "bearer token")
	db := flag.String("db", "bench", "database")
	scenario := flag.String("scenario", "insert", "insert, select, scan, bare, dbs, lag, feed (n events through one change feed client), feed-idle (n idle feed clients), cold (one query on each of the n databases of dbs), rotate (databases 1..n of dbs in turn at rate/s)")
	limit := flag.Int("limit", 1000, "rows each scan request reads")
	clients := flag.Int("c", 16, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "duration")
	n := flag.Int("n", 1000, "databases to create (dbs); events or clients (feed, feed-idle)")
	pid := flag.Int("pid", 0, "node process id, for RSS (dbs)")
	serveBare := flag.String("serve-bare", "", "serve a bare handler on this address and do nothing else")
	sample := flag.Int("sample", 0, "databases of the n to query (cold); 0: all")
	rate := flag.Int("rate", 1000, "writes per second (lag), queries per second (rotate)")
	createRate := flag.Int("create-rate", 0, "creates started per second at most (dbs); 0: as fast as the clients go")
	mode := flag.String("mode", "strong", "replication mode of the database the scenario creates")
	flag.Parse()

	if *serveBare != "" {
		body := []byte(`{"results":[{"columns":["id","name","n"],"rows":[[4242,"user-4242",4242]]}]}`)
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		})
		if err := http.ListenAndServe(*serveBare, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: *clients * 2,
		DialContext:         (&net.Dialer{}).DialContext,
	}}
	urls := strings.Split(*url, ",")
	h := &harness{client: client, url: urls[0], urls: urls, token: *token, db: *db}
	switch *scenario {
	case "insert":
		h.must(h.post("/databases", `{"name":"`+*db+`","mode":"`+*mode+`"}`))(201, 409)
		h.must(h.post("/db/"+*db, `{"sql":"CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"}`))(200)
		var seq atomic.Int64
		h.run(fmt.Sprintf("insert/%d", len(urls)), *clients, *dur, func() (int, error) {
			i := seq.Add(1)
			return h.postTo(urls[int(i)%len(urls)], "/db/"+*db, fmt.Sprintf(`{"sql":"INSERT INTO users (name, n) VALUES (:name, :n)","params":{"name":"user-%d","n":%d}}`, i, i))
		})
	case "select":
		rows := 10000
		h.must(h.post("/databases", `{"name":"`+*db+`"}`))(201, 409)
		h.must(h.post("/db/"+*db, `{"sql":"CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"}`))(200)
		h.must(h.post("/db/"+*db, fmt.Sprintf(`{"sql":"WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < %d) INSERT OR IGNORE INTO users (id, name, n) SELECT v, 'user-' || v, v FROM s"}`, rows)))(200)
		h.run("select", *clients, *dur, func() (int, error) {
			id := rand.IntN(rows) + 1
			return h.post("/db/"+*db, fmt.Sprintf(`{"sql":"SELECT id, name, n FROM users WHERE id = ?","params":[%d]}`, id))
		})
	case "scan":
		// A range of rows (an INTEGER key, a TEXT and an INTEGER
		// column): the result-encoding path; past 1 MB it streams.
		rows := max(*limit, 10000)
		h.must(h.post("/databases", `{"name":"`+*db+`"}`))(201, 409)
		h.must(h.post("/db/"+*db, `{"sql":"CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"}`))(200)
		for from := 1; from <= rows; from += 10000 { // a transaction's changes stay under the message limit
			h.must(h.post("/db/"+*db, fmt.Sprintf(`{"sql":"WITH RECURSIVE s(v) AS (SELECT %d UNION ALL SELECT v + 1 FROM s WHERE v < %d) INSERT OR IGNORE INTO users (id, name, n) SELECT v, 'user-' || v, v FROM s"}`, from, min(from+9999, rows))))(200)
		}
		h.run(fmt.Sprintf("scan/%d", *limit), *clients, *dur, func() (int, error) {
			from := rand.IntN(rows - *limit + 1)
			return h.post("/db/"+*db, fmt.Sprintf(`{"sql":"SELECT id, name, n FROM users WHERE id > ? ORDER BY id LIMIT %d","params":[%d]}`, *limit, from))
		})
	case "bare":
		h.run("bare", *clients, *dur, func() (int, error) {
			return h.post("/", `{"sql":"SELECT id, name, n FROM users WHERE id = ?","params":[1]}`)
		})
	case "dbs":
		h.databases(*n, *pid, *clients, *createRate)
	case "lag":
		h.lag(*rate, *dur)
	case "cold":
		h.cold(*n, *sample, *clients)
	case "rotate":
		h.rotate(*n, *rate, *dur)
	case "feed":
		h.feedThroughput(*n)
	case "feed-idle":
		h.feedIdle(*n, *pid)
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", *scenario)
		os.Exit(2)
	}
}

type harness struct {
	client         *http.Client
	url, token, db string
	urls           []string
	firstError     atomic.Pointer[string]
}

func (h *harness) post(path, body string) (int, error) {
	return h.postTo(h.url, path, body)
}

func (h *harness) postTo(url, path, body string) (int, error) {
	req, err := http.NewRequest("POST", url+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		msg := err.Error()
		h.firstError.CompareAndSwap(nil, &msg)
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		// The first failure's answer, for the report.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		msg := fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		h.firstError.CompareAndSwap(nil, &msg)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// failure says what the first failed request got, if one failed.
func (h *harness) failure() string {
	if v := h.firstError.Load(); v != nil {
		return " (first: " + *v + ")"
	}
	return ""
}

func (h *harness) must(status int, err error) func(...int) {
	return func(ok ...int) {
		if err != nil || !slices.Contains(ok, status) {
			fmt.Fprintf(os.Stderr, "setup failed: %d %v\n", status, err)
			os.Exit(1)
		}
	}
}

// run drives fn from c goroutines for d (after a one-second warm-up) and
// prints requests/s and latency percentiles.
func (h *harness) run(name string, c int, d time.Duration, fn func() (int, error)) {
	h.firstError.Store(nil) // the setup's 409 (the database may exist) is no failure
	warm := time.Now().Add(time.Second)
	end := warm.Add(d)
	lat := make([][]time.Duration, c)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start := time.Now()
				if start.After(end) {
					return
				}
				status, err := fn()
				if err != nil || status != 200 {
					errs.Add(1)
					continue
				}
				if start.After(warm) {
					lat[i] = append(lat[i], time.Since(start))
				}
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		fmt.Printf("%s c=%d: no successful requests (%d errors)\n", name, c, errs.Load())
		return
	}
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
	fmt.Printf("%-8s c=%-3d %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d%s\n", name, c,
		float64(len(all))/d.Seconds(), ms(pct(0.50)), ms(pct(0.99)), errs.Load(), h.failure())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// databases creates n databases from clients clients and reports the time taken,
// the node's resident memory before and after, and how long a create took
// (median and p99 of the requests) in the first and the last tenth: a
// create that costs more as databases accumulate shows there.
func (h *harness) databases(n, pid, clients, rate int) {
	before := rss(pid)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	took := make([]time.Duration, n)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if rate > 0 {
					// The i-th create starts no earlier than i/rate s in.
					time.Sleep(time.Until(start.Add(time.Duration(i-1) * time.Second / time.Duration(rate))))
				}
				t := time.Now()
				status, err := h.post("/databases", fmt.Sprintf(`{"name":"%s-%06d"}`, h.db, i))
				took[i-1] = time.Since(t)
				if err != nil || status != 201 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	total := time.Since(start)
	time.Sleep(2 * time.Second)
	after := rss(pid)
	fmt.Printf("dbs      n=%-6d created in %6.1f s (%5.2f ms each)  RSS %6.0f MB -> %6.0f MB  failed %d\n",
		n, total.Seconds(), ms(total)/float64(n), float64(before)/1e6, float64(after)/1e6, failed.Load())
	tenth := max(n/10, 1)
	for _, part := range []struct {
		name     string
		from, to int
	}{{"first", 0, tenth}, {"last", n - tenth, n}} {
		l := slices.Clone(took[part.from:part.to])
		slices.Sort(l)
		fmt.Printf("         %-5s tenth (creates %d-%d): p50 %6.2f ms  p99 %6.2f ms\n",
			part.name, part.from+1, part.to, ms(l[len(l)/2]), ms(l[min(len(l)-1, len(l)*99/100)]))
	}
}

// rss returns the resident set size of process pid in bytes.
func rss(pid int) int64 {
	if pid == 0 {
		return 0
	}
	out, err := exec.Command("ps", "-o", "rss=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return 0
	}
	kb, _ := strconv.ParseInt(string(bytes.TrimSpace(out)), 10, 64)
	return kb * 1024
}

// lag writes at a steady rate through the first URL for d, then prints
// every node's replication lag (capture on the writer to commit on the
// node) as the node reports it in GET /databases/<db>.
func (h *harness) lag(rate int, d time.Duration) {
	h.must(h.post("/databases", `{"name":"`+h.db+`"}`))(201, 409)
	h.must(h.post("/db/"+h.db, `{"sql":"CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"}`))(200)
	h.firstError.Store(nil) // the setup's 409 (the database may exist) is no failure
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	var sent, errs atomic.Int64
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent.Add(1)
			status, err := h.post("/db/"+h.db, fmt.Sprintf(`{"sql":"INSERT INTO users (name, n) VALUES ('u', %d)"}`, i))
			if err != nil || status != 200 {
				errs.Add(1)
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Second)
	req, _ := http.NewRequest("GET", h.url+"/databases/"+h.db, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := h.client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	var info struct {
		Nodes []struct {
			Node string  `json:"node"`
			P50  float64 `json:"replication_lag_p50_ms"`
			P99  float64 `json:"replication_lag_p99_ms"`
			N    int     `json:"replication_lag_samples"`
		} `json:"nodes"`
	}
	json.NewDecoder(resp.Body).Decode(&info)
	fmt.Printf("lag      rate=%d/s sent %d (%.0f/s) errors %d%s\n", rate, sent.Load(), float64(sent.Load())/d.Seconds(), errs.Load(), h.failure())
	for _, n := range info.Nodes {
		if n.N > 0 {
			fmt.Printf("         node %-8s lag p50 %6.2f ms  p99 %6.2f ms  (last %d writes)\n", n.Node, n.P50, n.P99, n.N)
		}
	}
}
