package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// The deny list: one entry per revoked token id in the KV bucket
// RevokedBucket, holding its token's expiry, and removed by JetStream
// (a per-key TTL) a minute after that, when the token is refused anyway.

// RevokedBucket is the KV bucket of revoked token ids.
const RevokedBucket = "hasvc_revoked"

type revocation struct {
	Expires time.Time `json:"expires"`
}

// maxRevocation is how long an entry is kept for a token whose expiry is
// not known (revoked by id alone).
const maxRevocation = 400 * 24 * time.Hour

func openRevoked(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         RevokedBucket,
		Description:    "hasvc revoked tokens",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("open deny list bucket: %w", err)
	}
	return kv, nil
}

// Revoke puts token id on the deny list; expires is its token's expiry,
// or zero if not known. It returns the expiry the entry keeps. Revoking a
// revoked token is not an error.
func (r *Registry) Revoke(ctx context.Context, id string, expires time.Time, now time.Time) (time.Time, error) {
	if expires.IsZero() {
		expires = now.Add(maxRevocation)
	}
	ttl := expires.Sub(now) + time.Minute
	if ttl < time.Minute {
		return expires, nil // expired already: refused anyway
	}
	data, err := json.Marshal(revocation{Expires: expires.UTC()})
	if err != nil {
		return expires, err
	}
	_, err = r.revoked.Create(ctx, id, data, jetstream.KeyTTL(ttl))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		if errors.Is(err, jetstream.ErrInvalidKey) {
			return expires, tenant.Errorf(tenant.EINVALID, "invalid token id %q", id)
		}
		return expires, tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
	}
	return expires, r.flushed(RevokedBucket)
}

// WatchRevoked calls revoked with every token id on the deny list, then
// with every id added to it, until ctx ends. It returns once the ids
// already on the list have been passed.
func (r *Registry) WatchRevoked(ctx context.Context, revoked func(id string, expires time.Time)) error {
	w, err := r.revoked.WatchAll(ctx)
	if err != nil {
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
	}
	pass := func(e jetstream.KeyValueEntry) {
		var v revocation
		if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &v) == nil {
			revoked(e.Key(), v.Expires)
		}
	}
	for e := range w.Updates() {
		if e == nil {
			break // the entries there were
		}
		pass(e)
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					pass(e)
				}
			}
		}
	}()
	return nil
}
