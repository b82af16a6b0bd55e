package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/registry"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Creating and deleting databases.

// Create creates a database: its registry entry, its stream, its
// snapshot bucket and its SQLite file. A failure undoes what was done.
func (e *Engine) Create(ctx context.Context, cfg tenant.Config) (tenant.Config, error) {
	return e.create(ctx, cfg, "")
}

// create creates a database, empty or, with seed (a SQLite file with
// hasvc's tables, nothing applied), starting from seed's contents: seed
// becomes the database's snapshot at sequence 0, stored before its stream
// exists, so that no node opens the database without it.
func (e *Engine) create(ctx context.Context, cfg tenant.Config, seed string) (tenant.Config, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = e.Replicas
	}
	if err := cfg.Normalize(); err != nil {
		return cfg, err
	}
	cfg.CreatedAt = e.now().UTC()
	cfg.Account = e.accountFor(cfg.Name)
	err := e.Registry.Create(ctx, cfg)
	finishing := false
	if tenant.ErrorCode(err) == tenant.ECONFLICT {
		switch old, state := e.unfinished(ctx, cfg.Name); {
		case state == halfCreated:
			// An earlier create failed half-way and could not undo
			// itself (JetStream was unavailable): clear what it left
			// (where it left it), then create.
			e.Logger.Warn("removing a half-created database", "db", cfg.Name)
			if err := e.removeResources(ctx, old); err != nil {
				return cfg, err
			}
			if err := e.Registry.Delete(ctx, cfg.Name); err != nil && tenant.ErrorCode(err) != tenant.ENOTFOUND {
				return cfg, err
			}
			err = e.Registry.Create(ctx, cfg)
		case state == creating && seed == "" && old.SameSettings(cfg):
			// The same request again, as a client retries one that
			// answered 503 (whose registry entry may have been written
			// after all, or not undone): finish that create. Both
			// finish alike if the first is still running.
			e.Logger.Info("finishing an unfinished create", "db", cfg.Name)
			cfg, err, finishing = old, nil, true
		}
	}
	if err != nil {
		return cfg, err
	}
	undo := func(err error) (tenant.Config, error) {
		if finishing {
			// What is there may be the other create's, finished by now:
			// left as it is, for a retry (or createGrace) to settle.
			return cfg, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
		defer cancel()
		if uerr := e.removeResources(ctx, cfg); uerr != nil {
			e.Logger.Warn("undo a failed create", "db", cfg.Name, "err", uerr)
		}
		if uerr := e.Registry.Delete(ctx, cfg.Name); uerr != nil && tenant.ErrorCode(uerr) != tenant.ENOTFOUND {
			e.Logger.Warn("undo a failed create: the registry entry stays until the same create is retried, or for a minute", "db", cfg.Name, "err", uerr)
		}
		return cfg, err
	}
	if seed != "" {
		if err := e.storeSeed(ctx, cfg, seed); err != nil {
			return undo(err)
		}
	}
	js, err := e.jsOf(cfg)
	if err != nil {
		return undo(err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        tenant.StreamName(cfg.Name),
		Description: "hasvc change log of database " + cfg.Name,
		Subjects:    []string{tenant.Subject(cfg.Name)},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgSize:  int32(e.maxMessage() + 1024),
		DenyDelete:  true,
		// A strong-mode write group is one atomic batch (replicated
		// streams only, see openDB).
		AllowAtomicPublish: true,
	})
	if err != nil {
		return undo(e.streamCreateError(ctx, cfg, err))
	}
	if !e.Memory && seed == "" {
		// The watch for deleted databases may still be removing the files
		// of an earlier database of this name (a delete, or a half-created
		// one cleared above): withFiles keeps the two apart.
		err := e.withFiles(cfg.Name, func() error {
			c, err := sqlite.Open(e.dsn(cfg.Name), sqlite.Options{})
			if err != nil {
				return err
			}
			defer c.Close()
			return prepareFile(c)
		})
		if err != nil {
			return undo(fmt.Errorf("create database file: %w", err))
		}
	}
	// The registry entry, the new stream and (with a seed) the bucket.
	streams := []stored{{"", registry.Stream}, {cfg.Account, tenant.StreamName(cfg.Name)}}
	if seed != "" {
		streams = append(streams, stored{cfg.Account, objectStream(cfg.Name)})
	}
	if err := e.flush(streams...); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// storeSeed stores the file seed as database cfg's snapshot at sequence
// 0.
func (e *Engine) storeSeed(ctx context.Context, cfg tenant.Config, seed string) error {
	b, err := e.makeBucket(ctx, cfg)
	if err != nil {
		return err
	}
	f, err := os.Open(seed)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = putSnapshot(ctx, b, f, 0, st.Size(), e.Node, cfg.Name)
	return err
}

// createGrace is how long a registry entry without a stream is taken for
// a create in progress (on any node) rather than one that failed half-way.
const createGrace = time.Minute

// undoTimeout bounds how long a failed create spends undoing itself.
const undoTimeout = 10 * time.Second

// A registry entry's state, as a create that finds it sees it.
type entryState int

const (
	created     entryState = iota // it has its stream (or cannot tell)
	creating                      // no stream, younger than createGrace
	halfCreated                   // no stream, older than createGrace
)

// unfinished returns name's registry entry and whether a create of it is
// finished: with no stream, the entry is a create in progress, or one that
// failed half-way and could not undo itself (older than createGrace).
func (e *Engine) unfinished(ctx context.Context, name string) (tenant.Config, entryState) {
	cfg, err := e.Registry.Get(ctx, name)
	if err != nil {
		return cfg, created
	}
	js, err := e.jsOf(cfg)
	if err != nil {
		return cfg, created
	}
	if _, err = js.Stream(ctx, tenant.StreamName(name)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		return cfg, created
	}
	if e.now().Sub(cfg.CreatedAt) < createGrace {
		return cfg, creating
	}
	return cfg, halfCreated
}

// Delete removes a database everywhere: registry entry, open copy, file,
// stream and bucket.
func (e *Engine) Delete(ctx context.Context, name string) error {
	if err := tenant.ValidateName(name); err != nil {
		return err
	}
	cfg, err := e.Registry.Get(ctx, name)
	if err != nil {
		return err
	}
	if err := e.Registry.Delete(ctx, name); err != nil {
		return err
	}
	return e.removeResources(ctx, cfg)
}

// removeLocalFiles deletes this node's SQLite file of name.
func (e *Engine) removeLocalFiles(name string) error {
	if e.Memory {
		return nil
	}
	var errs []error
	for _, path := range []string{e.path(name), e.path(name) + "-wal", e.path(name) + "-shm", filepath.Join(e.queuedDir(), name)} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeResources deletes the file, stream and bucket of database cfg,
// whichever exist.
func (e *Engine) removeResources(ctx context.Context, cfg tenant.Config) error {
	name := cfg.Name
	var errs []error
	if err := e.withFiles(name, func() error { return e.removeLocalFiles(name) }); err != nil {
		errs = append(errs, err)
	}
	js, err := e.jsOf(cfg)
	if err != nil {
		return err
	}
	if err := js.DeleteStream(ctx, tenant.StreamName(name)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		errs = append(errs, err)
	}
	if e.Durable != nil {
		e.Durable.Release(cfg.Account, tenant.StreamName(name))
	}
	if err := js.DeleteObjectStore(ctx, tenant.BucketName(name)); err != nil &&
		!errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrBucketNotFound) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return tenant.Wrap(tenant.EUNAVAILABLE, errors.Join(errs...), "delete database resources")
	}
	return nil
}

// streamCreateError is what creating the stream of cfg failing with err
// means for the request: more replicas than the cluster has nodes is the
// request's fault (EINVALID); JetStream refusing to place them while the
// cluster is big enough (a node it counts offline for now), and anything
// else, is unavailability (EUNAVAILABLE: retry).
func (e *Engine) streamCreateError(ctx context.Context, cfg tenant.Config, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errNoPeers, errInsufficientResources, errReplicasNotClustered:
			// Too few nodes for good, or a node JetStream counts offline
			// for now (right after a partition). The cluster's size as
			// JetStream knows it tells which; failing that, the live nodes
			// (which can lack a node for a while after a partition).
			size := 0
			if e.ClusterSize != nil {
				size = e.ClusterSize()
			}
			if size == 0 || apiErr.ErrorCode == errReplicasNotClustered {
				if live, lerr := e.Nodes(ctx); lerr == nil {
					size = len(live)
				}
			}
			if size > 0 && size < cfg.Replicas {
				return tenant.Errorf(tenant.EINVALID, "replicas %d: this cluster has %d node(s); each replica needs a node of its own", cfg.Replicas, size)
			}
			return tenant.Wrap(tenant.EUNAVAILABLE, err, fmt.Sprintf("replicas %d: JetStream cannot place them now (%s); retry", cfg.Replicas, apiErr.Description))
		}
	}
	return tenant.Wrap(tenant.EUNAVAILABLE, err, "create stream: "+err.Error())
}

// JetStream's error codes for a stream it cannot place (nats.go names
// none of them).
const (
	errNoPeers               jetstream.ErrorCode = 10005 // no suitable peers for placement
	errInsufficientResources jetstream.ErrorCode = 10023
	errReplicasNotClustered  jetstream.ErrorCode = 10074 // replicas > 1 without a cluster
)
