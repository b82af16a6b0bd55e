package engine

import (
	"context"
	"strings"
	"time"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Import loads the SQLite file at path into database name, which must be
// new and empty. The file's content enters the database's stream like any
// other write (schema as SQL changes, rows as inserts, in messages of a
// bounded size), so every node, and every later replay, gets it.
func (e *Engine) Import(ctx context.Context, name, path string) error {
	db, release, err := e.Acquire(ctx, name)
	if err != nil {
		return err
	}
	defer release()
	return db.do(ctx, func(w *sqlite.Conn) error {
		if db.applied.Load() != 0 {
			return tenant.Errorf(tenant.ECONFLICT, "database %q is not empty", name)
		}
		src, err := sqlite.Open("file:"+path+"?mode=ro", sqlite.Options{ReadOnly: true})
		if err != nil {
			return tenant.Wrap(tenant.EINVALID, err, "open "+path)
		}
		defer src.Close()
		return db.importFrom(ctx, src)
	})
}

type schemaObject struct{ typ, name, sql string }

func (d *DB) importFrom(ctx context.Context, src *sqlite.Conn) error {
	var objs []schemaObject
	err := src.Internal(func() error {
		return src.Query(`SELECT type, name, sql FROM sqlite_schema
			WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_hasvc%' ESCAPE '\'
			ORDER BY rowid`, nil, func(s *sqlite.Stmt) error {
			t, _ := s.Column(0).(string)
			n, _ := s.Column(1).(string)
			q, _ := s.Column(2).(string)
			objs = append(objs, schemaObject{t, n, q})
			return nil
		})
	})
	if err != nil {
		return tenant.Wrap(tenant.EINVALID, err, "read schema: "+err.Error())
	}
	limit := d.eng.maxMessage() / 2
	var batch []change.Change
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := d.publishApply(batch)
		batch, size = nil, 0
		return err
	}
	add := func(ch change.Change) error {
		batch = append(batch, ch)
		size += changeSize(ch)
		if size >= limit {
			return flush()
		}
		return nil
	}
	// Tables first, then their rows, then what refers to them.
	for _, o := range objs {
		if o.typ != "table" {
			continue
		}
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(o.sql)), "CREATE VIRTUAL") {
			return tenant.Errorf(tenant.EINVALID, "table %q is a virtual table; hasvc does not replicate those", o.name)
		}
		if err := add(change.Change{Database: "main", Operation: change.OpSQL, SQL: o.sql}); err != nil {
			return err
		}
	}
	for _, o := range objs {
		if o.typ != "table" {
			continue
		}
		if err := d.importRows(src, o.name, add); err != nil {
			return err
		}
	}
	for _, o := range objs {
		if o.typ == "table" {
			continue
		}
		if err := add(change.Change{Database: "main", Operation: change.OpSQL, SQL: o.sql}); err != nil {
			return err
		}
	}
	return flush()
}

func (d *DB) importRows(src *sqlite.Conn, table string, add func(change.Change) error) error {
	ti, err := src.TableInfo(table)
	if err != nil {
		return err
	}
	cols := make([]string, len(ti.Columns))
	for i, c := range ti.Columns {
		cols[i] = sqlite.QuoteIdent(c)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM main." + sqlite.QuoteIdent(table)
	if !ti.WithoutRowid {
		q = "SELECT " + sqlite.RowidName(ti) + ", " + strings.Join(cols, ", ") + " FROM main." + sqlite.QuoteIdent(table)
	}
	return src.Internal(func() error {
		return src.Query(q, nil, func(s *sqlite.Stmt) error {
			ch := change.Change{Database: "main", Table: table, Columns: ti.Columns, Operation: change.OpInsert}
			off := 0
			if !ti.WithoutRowid {
				id, _ := s.Column(0).(int64)
				ch.NewRowID = change.RowID(id)
				off = 1
			}
			ch.NewValues = make(change.Values, len(ti.Columns))
			for i := range ti.Columns {
				ch.NewValues[i] = s.Column(off + i)
			}
			return add(ch)
		})
	})
}

func changeSize(ch change.Change) int {
	n := 64 + len(ch.SQL) + len(ch.Table)
	for _, c := range ch.Columns {
		n += len(c) + 3
	}
	for _, vs := range []change.Values{ch.OldValues, ch.NewValues} {
		for _, v := range vs {
			n += change.ValueSize(v) * 4 / 3
		}
	}
	return n
}

// publishApply writes one message of changes here and publishes it, on
// the one commit path: applied locally in apply mode (rows as they are, no
// triggers or foreign-key actions) in the writer's transaction, then
// committed by a commit group that expects the stream to end at the
// applied sequence. It runs on the writer.
func (d *DB) publishApply(changes []change.Change) error {
	w := d.writer
	if err := w.ApplyMode(true); err != nil {
		return err
	}
	defer w.ApplyMode(false)
	if err := w.Internal(func() error { return w.Exec("BEGIN IMMEDIATE") }); err != nil {
		return err
	}
	g := d.newGroup(true, false, time.Time{})
	p := &pending{}
	err := w.ApplyChanges(changes, false)
	if err == nil {
		var data []byte
		if data, p.ts, err = d.message(changes); err == nil {
			err = g.add(p, data)
		}
	}
	if err != nil {
		w.Internal(func() error { return w.Exec("ROLLBACK") })
		w.SchemaChanged()
		w.TxDone()
		g.cancel()
		return err
	}
	g.finish(false)
	return p.err
}
