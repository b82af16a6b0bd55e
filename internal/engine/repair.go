package engine

import (
	"context"
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
	err := e.removeLocalFiles(name)
	if err == nil {
		ent.db, ent.err = e.openDB(ctx, name)
		err = ent.err
	} else {
		ent.err = tenant.Wrap(tenant.EUNAVAILABLE, err, "cannot remove the database's files")
	}
	e.mu.Lock()
	if ent.err != nil {
		e.remove(name, ent)
	}
	close(ent.ready)
	e.mu.Unlock()
	if err != nil {
		return nil, ent.err
	}
	e.Logger.Info("database copy rebuilt from the stream", "db", name, "applied", ent.db.Applied(), "stuck", ent.db.Stuck())
	return e.Info(ctx, name)
}
