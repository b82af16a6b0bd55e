package engine

import (
	"context"
	"time"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Limits are the parts of a database's configuration that may change
// after it is created (PATCH /databases/<name>); a nil field stays as it
// is, zero means the node's default.
type Limits struct {
	MaxStatementTime *tenant.Duration  `json:"max_statement_time"`
	MaxSize          *int64            `json:"max_size"`
	SnapshotInterval *tenant.Duration  `json:"snapshot_interval"`
	Retention        *tenant.Retention `json:"retention"`
}

// sizeLimit is how large cfg's database may grow.
func (e *Engine) sizeLimit(cfg tenant.Config) int64 {
	switch {
	case cfg.MaxSize > 0:
		return cfg.MaxSize
	case e.MaxSize > 0:
		return e.MaxSize
	}
	return DefaultMaxSize
}

// UpdateLimits changes a database's limits cluster-wide: the registry
// entry, and each node's open copy as it sees the change (this node's at
// once). It returns ENOTFOUND for an unknown database and EINVALID for a
// bad limit.
func (e *Engine) UpdateLimits(ctx context.Context, name string, l Limits) (tenant.Config, error) {
	if err := tenant.ValidateName(name); err != nil {
		return tenant.Config{}, err
	}
	cfg, err := e.Registry.Update(ctx, name, func(c *tenant.Config) error {
		if l.MaxStatementTime != nil {
			c.MaxStatementTime = *l.MaxStatementTime
		}
		if l.MaxSize != nil {
			c.MaxSize = *l.MaxSize
		}
		if l.SnapshotInterval != nil {
			c.SnapshotInterval = *l.SnapshotInterval
		}
		if l.Retention != nil {
			c.Retention = l.Retention
		}
		return c.Normalize()
	})
	if err != nil {
		return cfg, err
	}
	e.configChanged(cfg)
	return cfg, nil
}

// setLimits applies cfg's limits to the open copy.
func (d *DB) setLimits(ctx context.Context, cfg tenant.Config) error {
	d.maxStatementTime.Store(int64(time.Duration(cfg.MaxStatementTime)))
	size := d.eng.sizeLimit(cfg)
	return d.do(ctx, func(w *sqlite.Conn) error { return w.SetMaxSize(size) })
}
