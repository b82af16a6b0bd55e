package engine

import (
	"context"
	"errors"
	"os"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Repair rebuilds this node's copy of database name: the copy is closed
// (its users finish first), its file removed, and the database opened
// again, which installs its newest snapshot, if it has one, and applies
// the stream after it (else the whole stream). It is the way
// out for a copy stuck on a message: if the stream itself holds a message
// no copy can apply, the rebuilt copy is stuck on it again, and its
// status says so.
func (e *Engine) Repair(ctx context.Context, name string) (*Info, error) {
	if err := tenant.ValidateName(name); err != nil {
		return nil, err
	}
	if _, err := e.Registry.Get(ctx, name); err != nil {
		return nil, err
	}
	// No request opens the old file while it goes.
	ent := e.reserve(name)
	var refused error
	if queued, err := queuedInFile(e.dsn(name)); err == nil && queued > 0 {
		// The file is the only record of these writes: it stays.
		refused = tenant.Errorf(tenant.EUNAVAILABLE, "this copy holds %d writes that are not in the stream yet; it can be rebuilt once they are", queued)
	} else if err := e.removeLocalFiles(name); err != nil {
		refused = tenant.Wrap(tenant.EUNAVAILABLE, err, "cannot remove the database's files")
	}
	ent.db, ent.err = e.openDB(ctx, name)
	e.mu.Lock()
	if ent.err != nil {
		e.remove(name, ent)
	}
	close(ent.ready)
	e.mu.Unlock()
	if ent.err != nil {
		return nil, ent.err
	}
	if refused != nil {
		return nil, refused
	}
	e.Logger.Info("database copy rebuilt from the stream", "db", name, "applied", ent.db.Applied(), "stuck", ent.db.Stuck())
	return e.Info(ctx, name)
}

// queuedInFile counts the queued writes (outbox.go) in the database file
// of dsn; none if it does not exist.
func queuedInFile(dsn string) (int64, error) {
	var n int64
	err := readFile(dsn, func(c *sqlite.Conn) error {
		if t, err := c.QueryInt64("SELECT count(*) FROM sqlite_schema WHERE name = '_hasvc_outbox'"); err != nil || t == 0 {
			return err
		}
		var err error
		n, err = c.QueryInt64("SELECT count(*) FROM _hasvc_outbox")
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return n, err
}
