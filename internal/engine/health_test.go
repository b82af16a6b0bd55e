package engine

import (
	"testing"
	"time"
)

// TestWriteHealth: ready until writes have failed, without a success, for
// longer than twice the limit; ready again after a success, or once no
// write has failed for the limit.
func TestWriteHealth(t *testing.T) {
	var h writeHealth
	t0 := time.Unix(1000, 0)
	const limit = 2 * time.Second
	if h.check(t0, limit) != nil {
		t.Fatal("not ready before any write")
	}
	for s := time.Duration(0); s <= 4*time.Second; s += 500 * time.Millisecond {
		h.failed(t0.Add(s))
		if err := h.check(t0.Add(s), limit); err != nil {
			t.Fatalf("not ready after %v of failures: %v", s, err)
		}
	}
	h.failed(t0.Add(4500 * time.Millisecond))
	if h.check(t0.Add(4500*time.Millisecond), limit) == nil {
		t.Fatal("ready after 4.5 s of failures and no success")
	}
	if h.check(t0.Add(7*time.Second), limit) != nil {
		t.Fatal("not ready 2.5 s after the last failure, with no writes since")
	}
	h.failed(t0.Add(8 * time.Second))
	h.ok()
	h.failed(t0.Add(9 * time.Second))
	if h.check(t0.Add(9*time.Second), limit) != nil {
		t.Fatal("not ready although a write succeeded 0.9 s ago")
	}
}
