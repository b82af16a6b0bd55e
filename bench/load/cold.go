package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Cold opens (issue 16): the first query on databases the node has closed
// for idleness, and many databases each hit now and then. The databases
// are those of the dbs scenario (<db>-000001 ... <db>-<n>); the node runs
// with a short --idle-timeout and the caller waits it out first.

// coldQuery is the query each database gets: it reads the schema, so the
// copy must be open.
const coldQuery = `{"sql":"SELECT count(*) FROM sqlite_schema"}`

// cold queries sample of the n databases (all if sample is 0) once each,
// in random order, from clients clients, and prints the latencies.
func (h *harness) cold(n, sample, clients int) {
	order := rand.Perm(n)
	if sample > 0 && sample < n {
		order, n = order[:sample], sample
	}
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				status, err := h.post(fmt.Sprintf("/db/%s-%06d", h.db, order[i]+1), coldQuery)
				lat[i] = time.Since(t)
				if err != nil || status != 200 {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	printLatencies(fmt.Sprintf("cold     n=%d c=%d in %.1f s", n, clients, time.Since(start).Seconds()), lat, errs.Load(), h.failure())
}

// rotate queries databases 1..n in turn at rate queries per second for d
// (at rate = n each database once a second), one request in flight per
// tick, and prints the latencies of the first round (the copies may be
// closed) and of the rounds after.
func (h *harness) rotate(n, rate int, d time.Duration) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	var mu sync.Mutex
	var first, later []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			status, err := h.post(fmt.Sprintf("/db/%s-%06d", h.db, i%n+1), coldQuery)
			took := time.Since(t)
			if err != nil || status != 200 {
				errs.Add(1)
				return
			}
			mu.Lock()
			if i < n {
				first = append(first, took)
			} else {
				later = append(later, took)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	name := fmt.Sprintf("rotate   n=%d rate=%d/s", n, rate)
	printLatencies(name+", first round", first, errs.Load(), h.failure())
	printLatencies(name+", later rounds", later, 0, "")
}

func printLatencies(name string, lat []time.Duration, errs int64, failure string) {
	if len(lat) == 0 {
		fmt.Printf("%s: no requests\n", name)
		return
	}
	l := slices.Clone(lat)
	slices.Sort(l)
	pct := func(p float64) time.Duration { return l[min(len(l)-1, int(float64(len(l))*p))] }
	fmt.Printf("%s: p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  (%d requests)  errors %d%s\n",
		name, ms(pct(0.5)), ms(pct(0.99)), ms(l[len(l)-1]), len(l), errs, failure)
}
