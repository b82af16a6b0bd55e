package sqlite

import (
	"fmt"
	"hasvc/internal/change"
	"strings"
)

// ApplyChanges writes the changes of one message to the writer. The caller
// holds a transaction and has set apply mode (see applyMode). Apply writes
// full row images keyed by rowid, or by primary key for WITHOUT ROWID
// tables, so it is deterministic and writing the same change twice leaves
// the same row. With rowsOnly, schema changes are skipped (they already ran
// here).
func (c *Conn) ApplyChanges(changes []change.Change, rowsOnly bool) error {
	for i := range changes {
		ch := &changes[i]
		var err error
		// A message holds only what capture makes: changes to the main
		// schema's replicated tables, and schema statements (run under
		// the sandbox below). Anything else is refused, never applied.
		switch {
		case ch.Database != "main":
			err = fmt.Errorf("a change to schema %q: only main replicates", ch.Database)
		case ch.Operation != change.OpSQL && !isReplicatedTable(ch.Table):
			err = fmt.Errorf("a change to table %q, which does not replicate", ch.Table)
		}
		if err != nil {
			return fmt.Errorf("change %d (%s %s): %w", i, ch.Operation, ch.Table, err)
		}
		switch ch.Operation {
		case change.OpSQL:
			if rowsOnly {
				continue
			}
			// Schema changes run under the tenant sandbox, as they did
			// where they were first executed.
			prev := c.tenant
			c.tenant = true
			err = c.Exec(ch.SQL)
			c.tenant = prev
			c.SchemaChanged()
		case change.OpInsert:
			err = c.applyUpsert(ch, ch.NewRowID, ch.NewValues)
		case change.OpUpdate:
			err = c.applyUpdate(ch)
		case change.OpDelete:
			err = c.applyDelete(ch, ch.OldRowID, ch.OldValues)
		default:
			err = fmt.Errorf("unknown operation %q", ch.Operation)
		}
		if err != nil {
			return fmt.Errorf("change %d (%s %s): %w", i, ch.Operation, ch.Table, err)
		}
	}
	return nil
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

func (c *Conn) applyUpdate(ch *change.Change) error {
	ti, err := c.TableInfo(ch.Table)
	if err != nil {
		return err
	}
	if ti.WithoutRowid {
		if !samePK(ti, ch.Columns, ch.OldValues, ch.NewValues) {
			if err := c.applyDelete(ch, nil, ch.OldValues); err != nil {
				return err
			}
		}
	} else if ch.OldRowID != nil && ch.NewRowID != nil {
		// An UPDATE, as on the writing node: an insert would move
		// sqlite_sequence (AUTOINCREMENT) to the new rowid where the
		// writer's update did not, and the copies' next ids would part.
		done, err := c.applyRowUpdate(ti, ch)
		if err != nil || done {
			return err
		}
		// The row is not here (eventual mode): write it whole.
	}
	return c.applyUpsert(ch, ch.NewRowID, ch.NewValues)
}

// applyRowUpdate updates the row ch.OldRowID of a rowid table to ch's new
// rowid and values; false if there is no such row.
func (c *Conn) applyRowUpdate(ti *TableInfo, ch *change.Change) (bool, error) {
	if len(ch.NewValues) != len(ch.Columns) {
		return false, fmt.Errorf("%d values for %d columns", len(ch.NewValues), len(ch.Columns))
	}
	sets := []string{RowidName(ti) + " = ?"}
	args := []any{*ch.NewRowID}
	for i, name := range ch.Columns {
		j := ti.index(name)
		if j < 0 {
			return false, fmt.Errorf("no column %q", name)
		}
		if ti.Generated[j] {
			continue
		}
		sets = append(sets, QuoteIdent(name)+" = ?")
		args = append(args, ch.NewValues[i])
	}
	args = append(args, *ch.OldRowID)
	q := "UPDATE OR REPLACE main." + QuoteIdent(ch.Table) + " SET " + strings.Join(sets, ", ") + " WHERE " + RowidName(ti) + " = ?"
	if err := c.Internal(func() error { return c.Exec(q, args...) }); err != nil {
		return false, err
	}
	return c.raw.changes() > 0, nil
}

func (c *Conn) applyUpsert(ch *change.Change, rowid *int64, values change.Values) error {
	ti, err := c.TableInfo(ch.Table)
	if err != nil {
		return err
	}
	if len(values) != len(ch.Columns) {
		return fmt.Errorf("%d values for %d columns", len(values), len(ch.Columns))
	}
	var cols []string
	var args []any
	if !ti.WithoutRowid && rowid != nil {
		cols = append(cols, RowidName(ti))
		args = append(args, *rowid)
	}
	for i, name := range ch.Columns {
		j := ti.index(name)
		if j < 0 {
			return fmt.Errorf("no column %q", name)
		}
		if ti.Generated[j] {
			continue
		}
		cols = append(cols, QuoteIdent(name))
		args = append(args, values[i])
	}
	q := "INSERT OR REPLACE INTO main." + QuoteIdent(ch.Table) + " (" + strings.Join(cols, ", ") +
		") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	return c.Internal(func() error { return c.Exec(q, args...) })
}

func (c *Conn) applyDelete(ch *change.Change, rowid *int64, values change.Values) error {
	ti, err := c.TableInfo(ch.Table)
	if err != nil {
		return err
	}
	var where []string
	var args []any
	if !ti.WithoutRowid && rowid != nil {
		where = append(where, RowidName(ti)+" = ?")
		args = append(args, *rowid)
	} else {
		if len(ti.PK) == 0 {
			return fmt.Errorf("no rowid and no primary key to find the row")
		}
		for _, j := range ti.PK {
			k := indexOf(ch.Columns, ti.Columns[j])
			if k < 0 || k >= len(values) {
				return fmt.Errorf("primary key column %q missing", ti.Columns[j])
			}
			where = append(where, QuoteIdent(ti.Columns[j])+" IS ?")
			args = append(args, values[k])
		}
	}
	q := "DELETE FROM main." + QuoteIdent(ch.Table) + " WHERE " + strings.Join(where, " AND ")
	return c.Internal(func() error { return c.Exec(q, args...) })
}

// RowidName returns a name for the rowid that no column of the table hides.
func RowidName(ti *TableInfo) string {
	for _, n := range []string{"rowid", "_rowid_", "oid"} {
		if ti.index(n) < 0 {
			return n
		}
	}
	return "rowid"
}

func (ti *TableInfo) index(name string) int {
	for i, c := range ti.Columns {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

func samePK(ti *TableInfo, cols []string, a, b change.Values) bool {
	for _, j := range ti.PK {
		k := indexOf(cols, ti.Columns[j])
		if k < 0 || k >= len(a) || k >= len(b) || !sameValue(a[k], b[k]) {
			return false
		}
	}
	return true
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case []byte:
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	}
	return a == b
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if strings.EqualFold(v, s) {
			return i
		}
	}
	return -1
}
