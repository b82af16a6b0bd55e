package engine

import (
	"sync/atomic"
	"time"

	"hasvc/internal/tenant"
)

// writeHealth follows whether writes on this node get stored: a node can
// stay connected, apply the stream and answer /healthz while JetStream
// takes none of its writes (its replica of a stream failed to catch up
// after a partition, route traffic was lost). /readyz then says so, and a
// load balancer sends writes elsewhere.
type writeHealth struct {
	failSince atomic.Int64 // unix nanos of the first failure since the last success, 0 if none
	lastFail  atomic.Int64 // unix nanos of the latest failure
}

// ok records an acknowledged write.
func (h *writeHealth) ok() { h.failSince.Store(0) }

// failed records a write that JetStream did not acknowledge.
func (h *writeHealth) failed(now time.Time) {
	h.failSince.CompareAndSwap(0, now.UnixNano())
	h.lastFail.Store(now.UnixNano())
}

// check returns EUNAVAILABLE while writes have failed without a success
// for longer than limit and the latest failure is recent (within limit):
// with no writes coming, the node is ready again after limit, and the next
// write tells.
func (h *writeHealth) check(now time.Time, limit time.Duration) error {
	since, last := h.failSince.Load(), h.lastFail.Load()
	if since == 0 || now.UnixNano()-last > int64(limit) {
		return nil
	}
	if streak := time.Duration(now.UnixNano() - since); streak > 2*limit {
		return tenant.Errorf(tenant.EUNAVAILABLE, "no write on this node has been stored for %s: JetStream does not acknowledge them", streak.Round(time.Second))
	}
	return nil
}
