package sqlite

import (
	"errors"
	"fmt"
	"hasvc/internal/change"
	"hasvc/internal/tenant"
	"math"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// Capture collects the row changes of the writer's current transaction
// through SQLite's preupdate hook. Changes made by triggers and foreign-key
// actions are captured too, with their full row images; apply runs with
// triggers and foreign keys off, so a replica gets exactly these rows and
// never a trigger's effect twice.
//
// Limit bounds the bytes of the values captured since Reset: a statement
// whose changes pass it is interrupted at once and fails with ETOOLARGE,
// so one transaction cannot fill the node's memory with row images
// before the message limit is checked.
type Capture struct {
	Limit int // 0: no limit

	raw     rawConn
	on      bool
	changes []change.Change
	ends    []int // ends[i]: bytes of the values of changes[:i+1]
	bytes   int
	err     error // why capture failed; fails the statement
}

// Reset empties the capture for a new transaction.
func (cp *Capture) Reset() {
	cp.changes, cp.ends, cp.bytes, cp.err = cp.changes[:0], cp.ends[:0], 0, nil
}

// Bytes returns about how many bytes the captured values take.
func (cp *Capture) Bytes() int { return cp.bytes }

// Changes returns the changes captured since Reset, in order.
func (cp *Capture) Changes() []change.Change { return cp.changes }

// Len returns how many changes were captured since Reset.
func (cp *Capture) Len() int { return len(cp.changes) }

// Truncate forgets the changes after the first n (a statement that failed,
// a savepoint rolled back to).
func (cp *Capture) Truncate(n int) {
	cp.changes, cp.ends, cp.err = cp.changes[:n], cp.ends[:n], nil
	cp.bytes = 0
	if n > 0 {
		cp.bytes = cp.ends[n-1]
	}
}

// append adds a change whose values take size bytes.
func (cp *Capture) append(ch change.Change, size int) {
	cp.bytes += size
	cp.changes = append(cp.changes, ch)
	cp.ends = append(cp.ends, cp.bytes)
}

// room returns how many more bytes of values may be captured.
func (cp *Capture) room() int {
	if cp.Limit <= 0 {
		return math.MaxInt
	}
	return cp.Limit - cp.bytes
}

// tooBig records that the changes passed the limit.
func (cp *Capture) tooBig() {
	if cp.err == nil {
		msg := fmt.Sprintf("the transaction's changes take more than %d bytes, the limit of one transaction", cp.Limit)
		cp.err = tenant.Wrap(tenant.ETOOLARGE, statementError(KindTooBig, msg), msg)
	}
}

// addRow accounts for a row added outside the hook (captureTable).
func (cp *Capture) addRow(ch change.Change, vals change.Values) error {
	size := 0
	for _, v := range vals {
		size += change.ValueSize(v)
	}
	if size > cp.room() {
		cp.tooBig()
		return cp.err
	}
	cp.append(ch, size)
	return nil
}

// preupdate is what SQLite's preupdate hook says of a row change.
type preupdate struct {
	op                 int // sqlite3.SQLITE_INSERT, _UPDATE or _DELETE
	database, table    string
	oldRowid, newRowid int64
}

func (cp *Capture) hook(d preupdate) {
	if !cp.on || cp.err != nil || d.database != "main" || !isReplicatedTable(d.table) {
		return
	}
	ch := change.Change{Database: "main", Table: d.table}
	room := cp.room()
	var err error
	size, more := 0, 0
	switch d.op {
	case sqlite3.SQLITE_INSERT:
		ch.Operation = change.OpInsert
		ch.NewRowID = change.RowID(d.newRowid)
		ch.NewValues, size, err = cp.row(true, room)
	case sqlite3.SQLITE_UPDATE:
		ch.Operation = change.OpUpdate
		ch.OldRowID, ch.NewRowID = change.RowID(d.oldRowid), change.RowID(d.newRowid)
		ch.OldValues, size, err = cp.row(false, room)
		if err == nil {
			ch.NewValues, more, err = cp.row(true, room-size)
			size += more
		}
	case sqlite3.SQLITE_DELETE:
		ch.Operation = change.OpDelete
		ch.OldRowID = change.RowID(d.oldRowid)
		ch.OldValues, size, err = cp.row(false, room)
	default:
		err = fmt.Errorf("preupdate: unknown operation %d", d.op)
	}
	switch {
	case errors.Is(err, errNoRoom):
		// Stop the statement now rather than let it build more.
		cp.tooBig()
		cp.raw.interrupt()
		return
	case err != nil:
		cp.err = fmt.Errorf("capture %s: %w", d.table, err)
		return
	}
	cp.append(ch, size)
}

var errNoRoom = errors.New("over the capture limit")

// row reads the old or new row of the change being made, copying at most
// room bytes of values (errNoRoom past them), and returns their size.
func (cp *Capture) row(newRow bool, room int) (change.Values, int, error) {
	n := cp.raw.preupdateCount()
	vs := make(change.Values, n)
	size := 0
	for i := range n {
		v, vsize, err := cp.raw.preupdateValue(newRow, i, room-size)
		if se := (*Error)(nil); errors.As(err, &se) && se.Code == codeRange {
			// A VIRTUAL generated column: not stored, so the hook has
			// no value for it. It travels as NULL; apply never writes
			// generated columns, and every copy computes it.
			v, vsize, err = nil, 8, nil
		}
		if err != nil {
			return nil, 0, err
		}
		vs[i] = v
		size += vsize
	}
	return vs, size, nil
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

// tableExists reports whether the main schema has a table called name.
func (c *Conn) tableExists(name string) (bool, error) {
	var n int64
	err := c.Internal(func() error {
		var err error
		n, err = c.QueryInt64("SELECT count(*) FROM main.sqlite_schema WHERE type = 'table' AND name = ?", name)
		return err
	})
	return n > 0, err
}

// captureTable records a table a statement just created with its rows
// (CREATE TABLE ... AS SELECT): the CREATE TABLE as SQLite stored it, then
// one insert per row, each a full row image like any captured insert.
func (c *Conn) captureTable(cp *Capture, table string) error {
	return c.Internal(func() error {
		ddl, err := c.QueryText("SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?", table)
		if err != nil {
			return err
		}
		cp.append(change.Change{Database: "main", Operation: change.OpSQL, SQL: ddl}, len(ddl))
		ti, err := c.TableInfo(table)
		if err != nil {
			return err
		}
		cols := make([]string, len(ti.Columns))
		for i, col := range ti.Columns {
			cols[i] = QuoteIdent(col)
		}
		q := "SELECT " + RowidName(ti) + ", " + strings.Join(cols, ", ") + " FROM main." + QuoteIdent(table)
		return c.Query(q, nil, func(s *Stmt) error {
			id, _ := s.Column(0).(int64)
			vals := make(change.Values, len(ti.Columns))
			for i := range vals {
				vals[i] = s.Column(i + 1)
			}
			return cp.addRow(change.Change{Database: "main", Table: table, Columns: ti.Columns,
				Operation: change.OpInsert, NewRowID: change.RowID(id), NewValues: vals}, vals)
		})
	})
}
