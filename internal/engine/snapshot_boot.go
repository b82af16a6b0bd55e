package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Booting a copy from a snapshot. A node opening a database whose copy
// it does not have (a node that joined, or lost its disk, or any
// database of a memory-mode node) installs the newest snapshot and
// applies only the stream after it, instead of replaying the whole
// stream; one whose copy is older than the start of a trimmed stream
// must, since the messages it lacks are gone.

// bootFromSnapshot installs database name's newest snapshot as this
// node's copy when the copy is missing, or older than stream's first
// message. It does nothing when there is no snapshot to help. In memory
// mode the copy lives only while a connection holds it: the caller
// closes hold once it has opened its own.
func (e *Engine) bootFromSnapshot(ctx context.Context, cfg tenant.Config, stream jetstream.Stream) (hold io.Closer, err error) {
	name := cfg.Name
	path := e.path(name)
	first := stream.CachedInfo().State.FirstSeq
	exists := false
	if e.Memory {
		exists = e.memoryCopyExists(name)
	} else if _, err := os.Stat(path); err == nil {
		exists = true
	}
	var applied uint64
	if exists {
		if first <= 1 {
			return nil, nil // the stream still holds every message: the copy catches up
		}
		dsn := "file:" + path + "?mode=ro"
		if e.Memory {
			dsn = e.dsn(name)
		}
		c, err := sqlite.Open(dsn, sqlite.Options{ReadOnly: !e.Memory})
		if err != nil {
			return nil, err
		}
		n, err := c.QueryInt64("SELECT applied_seq FROM _hasvc_state")
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("read the copy's sequence: %w", err)
		}
		applied = uint64(n)
		if applied+1 >= first {
			return nil, nil
		}
	}
	// With the whole stream still there, a snapshot only saves time: if
	// the bucket does not answer at once (its own quorum lost while the
	// stream has one), the copy replays the stream as it always could.
	replayable := first <= 1
	bctx := ctx
	if replayable {
		var cancel context.CancelFunc
		bctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	b, err := e.bucket(bctx, cfg)
	var newest *Snapshot
	if err == nil {
		newest, err = newestSnapshot(bctx, b)
	}
	if err != nil {
		if replayable {
			e.Logger.Warn("snapshots unavailable; replaying the stream instead", "db", name, "err", err)
			return nil, nil
		}
		return nil, err
	}
	switch {
	case newest == nil && first <= 1:
		return nil, nil // nothing to restore: replay the stream
	case newest == nil || newest.Sequence+1 < first:
		return nil, tenant.Errorf(tenant.EUNAVAILABLE, "database %s: this node's copy is at sequence %d, the stream starts at %d, and no snapshot covers the gap", name, applied, first)
	case exists && newest.Sequence <= applied:
		return nil, nil
	}
	start := time.Now()
	e.Logger.Info("restoring copy from snapshot", "db", name, "sequence", newest.Sequence, "bytes", newest.Size, "copy_sequence", applied)
	if e.Memory {
		hold, err = e.installSnapshotInMemory(ctx, b, newest, name)
	} else {
		err = installSnapshot(ctx, b, newest, path, filepath.Join(e.DataDir, "tmp"))
	}
	if err != nil && replayable && !exists {
		// Nothing was installed (the file is renamed into place last).
		e.Logger.Warn("restoring from the snapshot failed; replaying the stream instead", "db", name, "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s from snapshot %d: %w", name, newest.Sequence, err)
	}
	e.Logger.Info("copy restored from snapshot", "db", name, "sequence", newest.Sequence, "bytes", newest.Size,
		"took", time.Since(start).Round(time.Millisecond), "stream_last", stream.CachedInfo().State.LastSeq)
	return hold, nil
}

// installSnapshot writes snapshot s from bucket b to path, through a
// file in tmpDir: what is at path is replaced only once the whole file is
// written and its checksum matches.
func installSnapshot(ctx context.Context, b jetstream.ObjectStore, s *Snapshot, path, tmpDir string) error {
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpDir, filepath.Base(path)+"-restore-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	r, err := openSnapshotObject(ctx, b, s)
	if err != nil {
		f.Close()
		return err
	}
	_, err = io.Copy(f, r)
	r.Close()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.Rename(tmp, path)
}

// memoryCopyExists reports whether this process holds an in-memory copy
// of database name with hasvc's tables in it.
func (e *Engine) memoryCopyExists(name string) bool {
	c, err := sqlite.Open(e.dsn(name), sqlite.Options{})
	if err != nil {
		return false
	}
	defer c.Close()
	n, err := c.QueryInt64("SELECT count(*) FROM sqlite_schema WHERE name = '_hasvc_state'")
	return err == nil && n > 0
}

// installSnapshotInMemory copies snapshot s into database name's
// in-memory copy and returns the connection that keeps it alive.
func (e *Engine) installSnapshotInMemory(ctx context.Context, b jetstream.ObjectStore, s *Snapshot, name string) (io.Closer, error) {
	dir, err := os.MkdirTemp("", "hasvc-restore-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "snapshot.db")
	if err := installSnapshot(ctx, b, s, file, dir); err != nil {
		return nil, err
	}
	src, err := sqlite.Open("file:"+file+"?mode=ro", sqlite.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := sqlite.Open(e.dsn(name), sqlite.Options{})
	if err != nil {
		return nil, err
	}
	if err := dst.CopyFrom(src); err != nil {
		dst.Close()
		return nil, err
	}
	return dst, nil
}
