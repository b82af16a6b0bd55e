package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"hasvc/internal/change"
)

// Last-writer-wins apply, for the messages of eventual-mode databases
// (change.Message.LWW).
//
// Every row written through such messages has a version, kept in
// _hasvc_versions (a deleted row keeps its version, as a tombstone): the
// timestamp and node of the write that made it. A change applies only if
// its version wins over the row's (change.Version.After), so every copy
// ends with the winning version of every row whatever the order its
// messages came in. A change written on a copy whose row had another
// version than the one it replaces here (its Base) had not seen that
// version: the two are in conflict, and the one that loses is recorded in
// this copy's _hasvc_conflicts, once (keyed by the loser's version).
// Copies agree on every row; their logs agree on simple conflicts but
// can differ on superseded versions: a node that wrote two versions of a
// row in turn does not list the first as lost when a concurrent write
// beats the second, while a copy that applied the concurrent write
// between the two does.
//
// The invariant: a row's content is the one its version wrote, and a
// version a copy's log lists as lost is never its row's version.

// LWWSchema creates the tables of last-writer-wins apply; it can run
// again.
const LWWSchema = `CREATE TABLE IF NOT EXISTS _hasvc_versions (
	tbl    TEXT NOT NULL,
	rowkey ANY NOT NULL,
	ts     INTEGER NOT NULL,
	node   TEXT NOT NULL,
	PRIMARY KEY (tbl, rowkey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _hasvc_conflicts (
	tbl         TEXT NOT NULL,
	rowkey      ANY NOT NULL,
	ts          INTEGER NOT NULL,
	node        TEXT NOT NULL,
	columns     TEXT NOT NULL,
	vals        TEXT,
	winner_ts   INTEGER NOT NULL,
	winner_node TEXT NOT NULL,
	PRIMARY KEY (tbl, rowkey, ts, node)
) WITHOUT ROWID;`

// Message writes the changes of message m to c: in stream order, or, for
// an LWW message, each row change only if it wins (see above). With
// rowsOnly the message is one this copy wrote itself (its schema changes
// ran here); an LWW message's rows too are here already then, with their
// versions, so nothing of it is written.
func Message(c Conn, m *change.Message, rowsOnly bool) error {
	if !m.LWW {
		return Changes(c, m.Changes, rowsOnly)
	}
	if rowsOnly {
		return nil
	}
	if err := EnsureLWW(c); err != nil {
		return err
	}
	v := change.Version{Timestamp: m.Timestamp, Node: m.Node}
	for i := range m.Changes {
		ch := &m.Changes[i]
		if ch.Operation == change.OpSQL {
			if err := Changes(c, m.Changes[i:i+1], false); err != nil {
				return fmt.Errorf("change %d: %w", i, err)
			}
			continue
		}
		if err := lwwChange(c, ch, v); err != nil {
			return fmt.Errorf("change %d (%s %s): %w", i, ch.Operation, ch.Table, err)
		}
	}
	return nil
}

// EnsureLWW creates the tables of last-writer-wins apply on c unless they
// exist.
func EnsureLWW(c Conn) error {
	if _, err := c.Table("_hasvc_conflicts"); err == nil {
		return nil
	}
	for _, stmt := range strings.SplitAfter(LWWSchema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := c.Exec(stmt); err != nil {
			return fmt.Errorf("create the tables of last-writer-wins apply: %w", err)
		}
	}
	return nil
}

// lwwChange writes row change ch of version v if it wins.
func lwwChange(c Conn, ch *change.Change, v change.Version) error {
	ti, err := c.Table(ch.Table)
	if err != nil {
		return err
	}
	key, newKey, err := rowKeys(ti, ch)
	if err != nil {
		return err
	}
	cur, err := version(c, ch.Table, key)
	if err != nil {
		return err
	}
	if cur != nil && *cur == v {
		return nil // written here already
	}
	conflict := cur != nil && (ch.Base == nil || *ch.Base != *cur)
	if cur != nil && cur.After(v) {
		if conflict {
			var values change.Values // a delete leaves none
			if ch.Operation != change.OpDelete {
				values = ch.NewValues
			}
			return logConflict(c, ch.Table, key, v, ch.Columns, values, *cur)
		}
		return nil
	}
	if conflict {
		if err := logCurrent(c, ti, ch.Table, key, *cur, v); err != nil {
			return err
		}
	}
	if err := Changes(c, []change.Change{*ch}, false); err != nil {
		return err
	}
	if err := setVersion(c, ch.Table, key, v); err != nil {
		return err
	}
	if newKey != key {
		return setVersion(c, ch.Table, newKey, v)
	}
	return nil
}

// Stamp gives the row changes of a write of version v made on c their
// Base (the row's version before it) and records v as their rows'
// version. It runs in the write's transaction.
func Stamp(c Conn, changes []change.Change, v change.Version) error {
	if err := EnsureLWW(c); err != nil {
		return err
	}
	for i := range changes {
		ch := &changes[i]
		if ch.Operation == change.OpSQL {
			continue
		}
		ti, err := c.Table(ch.Table)
		if err != nil {
			return err
		}
		key, newKey, err := rowKeys(ti, ch)
		if err != nil {
			return fmt.Errorf("change %d (%s %s): %w", i, ch.Operation, ch.Table, err)
		}
		if ch.Base, err = version(c, ch.Table, key); err != nil {
			return err
		}
		if err := setVersion(c, ch.Table, key, v); err != nil {
			return err
		}
		if newKey != key {
			if err := setVersion(c, ch.Table, newKey, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowKeys returns the keys naming the row ch changes in the versions
// table, before and after the change (the same unless an update moved
// it): the rowid, or the JSON array of a WITHOUT ROWID table's primary
// key values. An insert's row is named by its new key.
func rowKeys(ti *Table, ch *change.Change) (key, newKey any, err error) {
	old, err := rowKey(ti, ch.Columns, ch.OldRowID, ch.OldValues)
	if err != nil && ch.Operation != change.OpInsert {
		return nil, nil, err
	}
	nw, nerr := rowKey(ti, ch.Columns, ch.NewRowID, ch.NewValues)
	switch ch.Operation {
	case change.OpInsert:
		return nw, nw, nerr
	case change.OpDelete:
		return old, old, nil
	}
	if nerr != nil {
		return nil, nil, nerr
	}
	return old, nw, nil
}

func rowKey(ti *Table, cols []string, rowid *int64, values change.Values) (any, error) {
	if !ti.WithoutRowid {
		if rowid == nil {
			return nil, errors.New("a change without its rowid")
		}
		return *rowid, nil
	}
	if len(ti.PK) == 0 {
		return nil, errors.New("no primary key to name the row")
	}
	buf := []byte{'['}
	for n, j := range ti.PK {
		k := indexOf(cols, ti.Columns[j])
		if k < 0 || k >= len(values) {
			return nil, fmt.Errorf("primary key column %q missing", ti.Columns[j])
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = change.AppendValue(buf, values[k])
	}
	return string(append(buf, ']')), nil
}

// version returns the version of row key of table tbl, or nil.
func version(c Conn, tbl string, key any) (*change.Version, error) {
	var v *change.Version
	err := c.Query("SELECT ts, node FROM _hasvc_versions WHERE tbl = ? AND rowkey = ?", []any{tbl, key}, func(row []any) error {
		ts, _ := row[0].(int64)
		node, _ := row[1].(string)
		v = &change.Version{Timestamp: ts, Node: node}
		return nil
	})
	return v, err
}

func setVersion(c Conn, tbl string, key any, v change.Version) error {
	_, err := c.Exec("INSERT OR REPLACE INTO _hasvc_versions (tbl, rowkey, ts, node) VALUES (?, ?, ?, ?)", tbl, key, v.Timestamp, v.Node)
	return err
}

// logConflict records that version lost to version winner: the row as
// lost left it, values over columns (nil: lost deleted it).
func logConflict(c Conn, tbl string, key any, lost change.Version, columns []string, values change.Values, winner change.Version) error {
	cols, err := json.Marshal(columns)
	if err != nil {
		return err
	}
	var vals any
	if values != nil {
		data, err := values.MarshalJSON()
		if err != nil {
			return err
		}
		vals = string(data)
	}
	_, err = c.Exec(`INSERT OR IGNORE INTO _hasvc_conflicts (tbl, rowkey, ts, node, columns, vals, winner_ts, winner_node)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tbl, key, lost.Timestamp, lost.Node, string(cols), vals, winner.Timestamp, winner.Node)
	return err
}

// logCurrent records that the row key's current version cur lost to
// version winner, with the row as cur left it (none: cur deleted it).
func logCurrent(c Conn, ti *Table, tbl string, key any, cur, winner change.Version) error {
	var where string
	var args []any
	if ti.WithoutRowid {
		var pk change.Values
		text, _ := key.(string)
		if err := json.Unmarshal([]byte(text), &pk); err != nil || len(pk) != len(ti.PK) {
			return fmt.Errorf("row key %v of %s: %v", key, tbl, err)
		}
		var conds []string
		for n, j := range ti.PK {
			conds = append(conds, QuoteIdent(ti.Columns[j])+" IS ?")
			args = append(args, pk[n])
		}
		where = strings.Join(conds, " AND ")
	} else {
		where = RowidName(ti) + " = ?"
		args = []any{key}
	}
	cols := make([]string, 0, len(ti.Columns))
	var sel []string
	for j, name := range ti.Columns {
		if ti.Generated[j] {
			continue
		}
		cols = append(cols, name)
		sel = append(sel, QuoteIdent(name))
	}
	var values change.Values
	err := c.Query("SELECT "+strings.Join(sel, ", ")+" FROM main."+QuoteIdent(tbl)+" WHERE "+where, args, func(row []any) error {
		values = append(change.Values(nil), row...)
		return nil
	})
	if err != nil {
		return err
	}
	return logConflict(c, tbl, key, cur, cols, values, winner)
}
