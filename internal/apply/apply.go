// Package apply writes the changes of a stream message to a SQLite
// connection, whichever SQLite it is: hasvc's own (internal/sqlite, for
// nodes' copies, forks, imports and `hasvc replica`) or a host process's
// (the hasvc_sync extension, which must not link a second SQLite).
//
// Apply writes full row images keyed by rowid, or by primary key for
// WITHOUT ROWID tables, so it is deterministic and writing the same change
// twice leaves the same row.
package apply

import (
	"fmt"
	"strings"

	"hasvc/internal/change"
)

// Conn is the connection changes are written to. The caller holds a
// transaction and has turned off triggers and foreign-key actions (their
// effects are in the message already).
type Conn interface {
	// Exec runs one of apply's own statements with args and returns how
	// many rows it changed.
	Exec(sql string, args ...any) (changed int64, err error)
	// Schema runs a schema statement of a message as its author's
	// statements ran where it was written, and forgets what Table
	// cached.
	Schema(sql string) error
	// Table describes a table of the main schema (see Describe).
	Table(name string) (*Table, error)
	// Query runs one of apply's own queries with args and calls row with
	// each row's values.
	Query(sql string, args []any, row func(values []any) error) error
}

// Table describes a table as apply needs it.
type Table struct {
	Columns      []string
	Generated    []bool // column is generated (never written by apply)
	PK           []int  // indexes of the primary key columns, in key order
	WithoutRowid bool
}

// Query runs a query with args and calls row with each row's values.
type Query func(sql string, args []any, row func(values []any) error) error

// Describe reads the description of table name of the main schema with q.
func Describe(q Query, name string) (*Table, error) {
	ti := &Table{}
	var pkPos []int64
	err := q("SELECT name, pk, hidden FROM pragma_table_xinfo(?1, 'main')", []any{name}, func(v []any) error {
		col, _ := v[0].(string)
		pk, _ := v[1].(int64)
		hidden, _ := v[2].(int64)
		ti.Columns = append(ti.Columns, col)
		ti.Generated = append(ti.Generated, hidden == 2 || hidden == 3)
		pkPos = append(pkPos, pk)
		return nil
	})
	if err == nil {
		err = q("SELECT wr FROM pragma_table_list(?1) WHERE schema = 'main'", []any{name}, func(v []any) error {
			wr, _ := v[0].(int64)
			ti.WithoutRowid = wr == 1
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	if len(ti.Columns) == 0 {
		return nil, fmt.Errorf("table %q does not exist", name)
	}
	for k := int64(1); ; k++ {
		found := false
		for i, p := range pkPos {
			if p == k {
				ti.PK = append(ti.PK, i)
				found = true
			}
		}
		if !found {
			break
		}
	}
	return ti, nil
}

// Prefixes of the tables that never replicate: hasvc's bookkeeping and
// SQLite's own.
const (
	InternalPrefix = "_hasvc"
	sqlitePrefix   = "sqlite_"
)

// Internal reports whether name is one of hasvc's bookkeeping tables.
func Internal(name string) bool { return hasPrefixFold(name, InternalPrefix) }

// Replicated reports whether changes to table name are captured and
// applied.
func Replicated(name string) bool {
	return !Internal(name) && !hasPrefixFold(name, sqlitePrefix)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// Changes writes the changes of one message to c. With rowsOnly, schema
// changes are skipped (they already ran there).
func Changes(c Conn, changes []change.Change, rowsOnly bool) error {
	for i := range changes {
		ch := &changes[i]
		var err error
		// A message holds only what capture makes: changes to the main
		// schema's replicated tables, and schema statements. Anything
		// else is refused, never applied.
		switch {
		case ch.Database != "main":
			err = fmt.Errorf("a change to schema %q: only main replicates", ch.Database)
		case ch.Operation != change.OpSQL && !Replicated(ch.Table):
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
			err = c.Schema(ch.SQL)
		case change.OpInsert:
			err = upsert(c, ch, ch.NewRowID, ch.NewValues)
		case change.OpUpdate:
			err = update(c, ch)
		case change.OpDelete:
			err = remove(c, ch, ch.OldRowID, ch.OldValues)
		default:
			err = fmt.Errorf("unknown operation %q", ch.Operation)
		}
		if err != nil {
			return fmt.Errorf("change %d (%s %s): %w", i, ch.Operation, ch.Table, err)
		}
	}
	return nil
}

func update(c Conn, ch *change.Change) error {
	ti, err := c.Table(ch.Table)
	if err != nil {
		return err
	}
	if ti.WithoutRowid {
		if !samePK(ti, ch.Columns, ch.OldValues, ch.NewValues) {
			if err := remove(c, ch, nil, ch.OldValues); err != nil {
				return err
			}
		}
	} else if ch.OldRowID != nil && ch.NewRowID != nil {
		// An UPDATE, as on the writing node: an insert would move
		// sqlite_sequence (AUTOINCREMENT) to the new rowid where the
		// writer's update did not, and the copies' next ids would part.
		done, err := rowUpdate(c, ti, ch)
		if err != nil || done {
			return err
		}
		// The row is not here (eventual mode): write it whole.
	}
	return upsert(c, ch, ch.NewRowID, ch.NewValues)
}

// rowUpdate updates the row ch.OldRowID of a rowid table to ch's new rowid
// and values; false if there is no such row.
func rowUpdate(c Conn, ti *Table, ch *change.Change) (bool, error) {
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
	n, err := c.Exec(q, args...)
	return n > 0, err
}

func upsert(c Conn, ch *change.Change, rowid *int64, values change.Values) error {
	ti, err := c.Table(ch.Table)
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
	_, err = c.Exec(q, args...)
	return err
}

func remove(c Conn, ch *change.Change, rowid *int64, values change.Values) error {
	ti, err := c.Table(ch.Table)
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
	_, err = c.Exec(q, args...)
	return err
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// RowidName returns a name for the rowid that no column of the table hides.
func RowidName(ti *Table) string {
	for _, n := range []string{"rowid", "_rowid_", "oid"} {
		if ti.index(n) < 0 {
			return n
		}
	}
	return "rowid"
}

func (ti *Table) index(name string) int { return indexOf(ti.Columns, name) }

func samePK(ti *Table, cols []string, a, b change.Values) bool {
	for _, j := range ti.PK {
		k := indexOf(cols, ti.Columns[j])
		if k < 0 || k >= len(a) || k >= len(b) || !sameValue(a[k], b[k]) {
			return false
		}
	}
	return true
}

func sameValue(a, b any) bool {
	if x, ok := a.([]byte); ok {
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
