// Package registry is the cluster-wide registry of hasvc's databases, kept
// in a JetStream KV bucket, and the retry that JetStream requests need
// while a cluster elects its leaders.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hasvc/internal/tenant"
	"sort"

	"github.com/nats-io/nats.go/jetstream"
)

// Registry is the cluster-wide set of databases: one entry per database in
// the JetStream KV bucket tenant.RegistryBucket, keyed by name, holding its tenant.Config.
// Creating an entry is atomic (KV create fails if the key exists), so two
// nodes can never both create the same database.
type Registry struct {
	kv      jetstream.KeyValue
	revoked jetstream.KeyValue // the deny list (revoked.go)
	slots   jetstream.KeyValue // node slots (slots.go)

	// Flush, if set, makes what the JetStream stream named stream
	// acknowledged durable; a change is flushed before the method that
	// made it returns (group commit leaves it to hasvc: see
	// broker.Flusher). Create leaves it to the caller, which creates more
	// first.
	Flush func(stream string) error
}

// Stream names the JetStream stream behind the registry's bucket.
const Stream = "KV_" + tenant.RegistryBucket

// flushed ends a successful change of bucket: nil, or the failure to
// flush it.
func (r *Registry) flushed(bucket string) error {
	if r.Flush == nil {
		return nil
	}
	if err := r.Flush("KV_" + bucket); err != nil { // as Stream
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "registry changed, but not flushed to disk")
	}
	return nil
}

// Open creates the registry bucket if needed and returns the registry.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Registry, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      tenant.RegistryBucket,
		Description: "hasvc databases",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open registry bucket: %w", err)
	}
	revoked, err := openRevoked(ctx, js, replicas)
	if err != nil {
		return nil, err
	}
	slots, err := openSlots(ctx, js, replicas)
	if err != nil {
		return nil, err
	}
	return &Registry{kv: kv, revoked: revoked, slots: slots}, nil
}

// Create adds the entry for cfg. It returns tenant.ECONFLICT if the name is taken.
func (r *Registry) Create(ctx context.Context, cfg tenant.Config) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if _, err := r.kv.Create(ctx, cfg.Name, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return tenant.Errorf(tenant.ECONFLICT, "database %q already exists", cfg.Name)
		}
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
	}
	return nil
}

// Get returns the configuration of the database name, or tenant.ENOTFOUND.
func (r *Registry) Get(ctx context.Context, name string) (tenant.Config, error) {
	var cfg tenant.Config
	e, err := r.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return cfg, tenant.Errorf(tenant.ENOTFOUND, "database %q not found", name)
	} else if err != nil {
		return cfg, tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
	}
	return decodeConfig(e)
}

// decodeConfig is the configuration a registry entry holds.
func decodeConfig(e jetstream.KeyValueEntry) (tenant.Config, error) {
	var cfg tenant.Config
	if err := json.Unmarshal(e.Value(), &cfg); err != nil {
		return cfg, fmt.Errorf("decode registry entry %q: %w", e.Key(), err)
	}
	return cfg, nil
}

// List returns every database's configuration, sorted by name. It reads
// them all through one watch of the bucket's newest values (one consumer
// that streams them), not a request per database: with thousands of
// databases, a request each made listing them the node's main idle cost.
func (r *Registry) List(ctx context.Context) ([]tenant.Config, error) {
	var out []tenant.Config
	err := readAll(ctx, r.kv, func(e jetstream.KeyValueEntry) error {
		cfg, err := decodeConfig(e)
		out = append(out, cfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// readAll calls fn with every current entry of kv (deleted keys left
// out), read through one watch.
func readAll(ctx context.Context, kv jetstream.KeyValue, fn func(jetstream.KeyValueEntry) error) error {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
	}
	defer w.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return tenant.Errorf(tenant.EUNAVAILABLE, "registry unavailable: the listing ended early")
			case e == nil: // every current value was delivered
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
		case <-ctx.Done():
			return tenant.Wrap(tenant.EUNAVAILABLE, ctx.Err(), "registry unavailable")
		}
	}
}

// Delete removes the entry of name. It returns tenant.ENOTFOUND if there is none.
func (r *Registry) Delete(ctx context.Context, name string) error {
	if _, err := r.Get(ctx, name); err != nil {
		return err
	}
	// Purge rather than Delete: no tombstone history is kept for a name.
	if err := r.kv.Purge(ctx, name); err != nil {
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
	}
	return r.flushed(tenant.RegistryBucket)
}

// Update changes the entry of name with edit, which may refuse with an
// error; concurrent updates are retried on the newest entry. It returns
// the new configuration, or tenant.ENOTFOUND.
func (r *Registry) Update(ctx context.Context, name string, edit func(*tenant.Config) error) (tenant.Config, error) {
	for range 16 {
		e, err := r.kv.Get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return tenant.Config{}, tenant.Errorf(tenant.ENOTFOUND, "database %q not found", name)
		} else if err != nil {
			return tenant.Config{}, tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
		}
		cfg, err := decodeConfig(e)
		if err != nil {
			return cfg, err
		}
		if err := edit(&cfg); err != nil {
			return cfg, err
		}
		data, err := json.Marshal(cfg)
		if err != nil {
			return cfg, err
		}
		if _, err := r.kv.Update(ctx, name, data, e.Revision()); err == nil {
			return cfg, r.flushed(tenant.RegistryBucket)
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
				return cfg, tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
			}
		}
	}
	return tenant.Config{}, tenant.Errorf(tenant.ECONFLICT, "database %q changed concurrently; try again", name)
}

// Watch reports changes to the registry made by any node.
type Watch struct {
	w jetstream.KeyWatcher
}

// Watch starts watching the registry for databases changed or removed.
// The caller runs the watch with Run.
func (r *Registry) Watch(ctx context.Context) (*Watch, error) {
	w, err := r.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable")
	}
	return &Watch{w: w}, nil
}

// Run calls changed with the configuration of every database written
// (created or updated) and deleted with the name of every database
// removed, until ctx ends or the watch does, then stops the watch.
func (rw *Watch) Run(ctx context.Context, changed func(tenant.Config), deleted func(name string)) {
	defer rw.w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-rw.w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			switch e.Operation() {
			case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
				deleted(e.Key())
			case jetstream.KeyValuePut:
				if cfg, err := decodeConfig(e); err == nil {
					changed(cfg)
				}
			}
		}
	}
}

// Ready returns nil if the registry answers: its bucket's stream has a
// leader (a quorum, in a cluster) and replies within ctx.
func (r *Registry) Ready(ctx context.Context) error {
	if _, err := r.kv.Status(ctx); err != nil {
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "registry unavailable: "+err.Error())
	}
	return nil
}
