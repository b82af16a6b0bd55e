package engine

import (
	"slices"
	"sync"
	"time"
)

// lagWindow keeps the replication lag of the last messages a copy applied
// from other nodes: the time from the write's capture on its node (the
// message's timestamp) to its commit here. Clocks of different machines
// skew it; on one machine it is exact.
type lagWindow struct {
	mu      sync.Mutex
	samples [1024]time.Duration
	n       int // samples taken, ever
}

func (w *lagWindow) add(d time.Duration) {
	w.mu.Lock()
	w.samples[w.n%len(w.samples)] = d
	w.n++
	w.mu.Unlock()
}

// percentiles returns the p50 and p99 of the window, and how many samples
// it holds.
func (w *lagWindow) percentiles() (p50, p99 time.Duration, count int) {
	w.mu.Lock()
	count = min(w.n, len(w.samples))
	s := slices.Clone(w.samples[:count])
	w.mu.Unlock()
	if count == 0 {
		return 0, 0, 0
	}
	slices.Sort(s)
	return s[count/2], s[min(count-1, count*99/100)], count
}
