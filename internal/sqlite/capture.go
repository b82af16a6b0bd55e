package sqlite

import (
	"fmt"
	"hasvc/internal/change"

	"github.com/mattn/go-sqlite3"
)

// Capture collects the row changes of the writer's current transaction
// through SQLite's preupdate hook. Changes made by triggers and foreign-key
// actions are captured too, with their full row images; apply runs with
// triggers and foreign keys off, so a replica gets exactly these rows and
// never a trigger's effect twice.
type Capture struct {
	raw     rawConn
	on      bool
	changes []change.Change
	err     error // first failure to read a value; fails the transaction
}

// Reset empties the capture for a new transaction.
func (cp *Capture) Reset() { cp.changes, cp.err = cp.changes[:0], nil }

// Changes returns the changes captured since Reset, in order.
func (cp *Capture) Changes() []change.Change { return cp.changes }

// Len returns how many changes were captured since Reset.
func (cp *Capture) Len() int { return len(cp.changes) }

// Truncate forgets the changes after the first n (a statement that failed,
// a savepoint rolled back to).
func (cp *Capture) Truncate(n int) { cp.changes, cp.err = cp.changes[:n], nil }

func (cp *Capture) hook(d sqlite3.SQLitePreUpdateData) {
	if !cp.on || d.DatabaseName != "main" || !isReplicatedTable(d.TableName) {
		return
	}
	ch := change.Change{Database: "main", Table: d.TableName}
	var err error
	switch d.Op {
	case sqlite3.SQLITE_INSERT:
		ch.Operation = change.OpInsert
		ch.NewRowID = ptr(d.NewRowID)
		ch.NewValues, err = cp.row(true)
	case sqlite3.SQLITE_UPDATE:
		ch.Operation = change.OpUpdate
		ch.OldRowID, ch.NewRowID = ptr(d.OldRowID), ptr(d.NewRowID)
		ch.OldValues, err = cp.row(false)
		if err == nil {
			ch.NewValues, err = cp.row(true)
		}
	case sqlite3.SQLITE_DELETE:
		ch.Operation = change.OpDelete
		ch.OldRowID = ptr(d.OldRowID)
		ch.OldValues, err = cp.row(false)
	default:
		err = fmt.Errorf("preupdate: unknown operation %d", d.Op)
	}
	if err != nil {
		if cp.err == nil {
			cp.err = fmt.Errorf("capture %s: %w", d.TableName, err)
		}
		return
	}
	cp.changes = append(cp.changes, ch)
}

func (cp *Capture) row(newRow bool) (change.Values, error) {
	n := cp.raw.preupdateCount()
	vs := make(change.Values, n)
	for i := range n {
		v, err := cp.raw.preupdateValue(newRow, i)
		if err != nil {
			return nil, err
		}
		vs[i] = v
	}
	return vs, nil
}

// resolve fills in column names for changes[from:], which the hook cannot
// look up (it must not run SQL), and drops the meaningless rowids of WITHOUT
// ROWID tables. It runs after each statement, while the schema is the one
// the statement saw.
func (c *Conn) resolve(changes []change.Change) error {
	for i := range changes {
		ch := &changes[i]
		if ch.Operation == change.OpSQL || ch.Columns != nil {
			continue
		}
		ti, err := c.TableInfo(ch.Table)
		if err != nil {
			return err
		}
		n := max(len(ch.OldValues), len(ch.NewValues))
		if n != len(ti.Columns) {
			return fmt.Errorf("capture %s: %d values for %d columns", ch.Table, n, len(ti.Columns))
		}
		ch.Columns = ti.Columns
		if ti.WithoutRowid {
			ch.OldRowID, ch.NewRowID = nil, nil
		}
	}
	return nil
}

func ptr(v int64) *int64 { return &v }
