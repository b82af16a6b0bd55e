package auth

import (
	"sync"
	"time"
)

// Revocations is the set of revoked token ids a node knows of, filled
// from the cluster's deny list. An id is kept until its token would have
// expired anyway.
type Revocations struct {
	Now func() time.Time

	mu      sync.Mutex
	ids     map[string]time.Time // id -> its token's expiry
	revoked []func(id string)
}

// Add records that token id (expiring at expires) is revoked and tells
// every OnRevoke callback.
func (r *Revocations) Add(id string, expires time.Time) {
	r.mu.Lock()
	if r.ids == nil {
		r.ids = map[string]time.Time{}
	}
	_, known := r.ids[id]
	r.ids[id] = expires
	now := r.now()
	for id, exp := range r.ids {
		if now.After(exp) {
			delete(r.ids, id)
		}
	}
	callbacks := r.revoked
	r.mu.Unlock()
	if !known {
		for _, f := range callbacks {
			f(id)
		}
	}
}

// Revoked reports whether token id is revoked.
func (r *Revocations) Revoked(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ids[id]
	return ok
}

// OnRevoke calls f with the id of every token revoked from now on, for
// ending what the token holds open (sessions, connections).
func (r *Revocations) OnRevoke(f func(id string)) {
	r.mu.Lock()
	r.revoked = append(r.revoked, f)
	r.mu.Unlock()
}

func (r *Revocations) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
