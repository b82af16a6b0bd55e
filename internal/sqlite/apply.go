package sqlite

import (
	"hasvc/internal/apply"
	"hasvc/internal/change"
)

// ApplyChanges writes the changes of one message to the writer (see
// package apply). The caller holds a transaction and has set apply mode
// (see ApplyMode). With rowsOnly, schema changes are skipped (they already
// ran here).
func (c *Conn) ApplyChanges(changes []change.Change, rowsOnly bool) error {
	return apply.Changes(applyConn{c}, changes, rowsOnly)
}

// ApplyMessage writes message m to the writer as ApplyChanges does, or
// last-writer-wins for an eventual-mode message (see package apply).
func (c *Conn) ApplyMessage(m *change.Message, rowsOnly bool) error {
	return apply.Message(applyConn{c}, m, rowsOnly)
}

// Stamp gives the row changes of an eventual-mode write of version v,
// in the writer's open transaction, the versions they replace, and
// records v as their rows' (see apply.Stamp).
func (c *Conn) Stamp(changes []change.Change, v change.Version) error {
	return apply.Stamp(applyConn{c}, changes, v)
}

// applyConn is the writer as package apply writes to it.
type applyConn struct{ c *Conn }

func (a applyConn) Exec(sql string, args ...any) (int64, error) {
	if err := a.c.Internal(func() error { return a.c.Exec(sql, args...) }); err != nil {
		return 0, err
	}
	return a.c.raw.changes(), nil
}

// Schema runs a message's schema statement under the tenant sandbox, as
// it ran where it was first executed.
func (a applyConn) Schema(sql string) error {
	prev := a.c.tenant
	a.c.tenant = true
	err := a.c.Exec(sql)
	a.c.tenant = prev
	a.c.SchemaChanged()
	return err
}

func (a applyConn) Table(name string) (*apply.Table, error) { return a.c.TableInfo(name) }

func (a applyConn) Query(sql string, args []any, row func([]any) error) error {
	return a.c.Internal(func() error { return a.c.queryValues(sql, args, row) })
}

// ApplyMode switches the writer to apply: no capture, no triggers (their
// effects are in the message already), no foreign-key actions (likewise).
// The pragma must run outside a transaction.
func (c *Conn) ApplyMode(on bool) error {
	if c.capture != nil {
		c.capture.on = false
	}
	fk := "PRAGMA foreign_keys = ON"
	if on {
		fk = "PRAGMA foreign_keys = OFF"
	}
	if err := c.Internal(func() error { return c.Exec(fk) }); err != nil {
		return err
	}
	// A copy applies every message: max_size bounds tenants' writes on
	// the node that runs them, never apply.
	limit := c.maxPages
	if on {
		limit = 0
	}
	if c.maxPages > 0 {
		if err := c.applyMaxPages(limit); err != nil {
			return err
		}
	}
	return c.raw.dbConfig(dbconfigEnableTrigger, !on)
}

// RowidName returns a name for the rowid that no column of the table hides.
func RowidName(ti *TableInfo) string { return apply.RowidName(ti) }
