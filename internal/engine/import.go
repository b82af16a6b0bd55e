package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/change"
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
	return db.do(ctx, func(w *conn) error {
		if db.applied.Load() != 0 {
			return tenant.Errorf(tenant.ECONFLICT, "database %q is not empty", name)
		}
		src, err := openConn("file:"+path+"?mode=ro", true)
		if err != nil {
			return tenant.Wrap(tenant.EINVALID, err, "open "+path)
		}
		defer src.close()
		return db.importFrom(ctx, src)
	})
}

type schemaObject struct{ typ, name, sql string }

func (d *DB) importFrom(ctx context.Context, src *conn) error {
	var objs []schemaObject
	err := src.internal(func() error {
		return src.query(`SELECT type, name, sql FROM sqlite_schema
			WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_hasvc%' ESCAPE '\'
			ORDER BY rowid`, nil, func(s *stmt) error {
			t, _ := s.column(0).(string)
			n, _ := s.column(1).(string)
			q, _ := s.column(2).(string)
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
		err := d.publishApply(ctx, batch)
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

func (d *DB) importRows(src *conn, table string, add func(change.Change) error) error {
	ti, err := src.tableInfo(table)
	if err != nil {
		return err
	}
	cols := make([]string, len(ti.columns))
	for i, c := range ti.columns {
		cols[i] = quoteIdent(c)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM main." + quoteIdent(table)
	if !ti.withoutRowid {
		q = "SELECT " + rowidName(ti) + ", " + strings.Join(cols, ", ") + " FROM main." + quoteIdent(table)
	}
	return src.internal(func() error {
		return src.query(q, nil, func(s *stmt) error {
			ch := change.Change{Database: "main", Table: table, Columns: ti.columns, Operation: change.OpInsert}
			off := 0
			if !ti.withoutRowid {
				id, _ := s.column(0).(int64)
				ch.NewRowID = ptr(id)
				off = 1
			}
			ch.NewValues = make(change.Values, len(ti.columns))
			for i := range ti.columns {
				ch.NewValues[i] = s.column(off + i)
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
			n += valueSize(v) * 4 / 3
		}
	}
	return n
}

// publishApply publishes one message of changes, expecting the stream to
// end at the applied sequence, and applies it here. It runs on the writer.
func (d *DB) publishApply(ctx context.Context, changes []change.Change) error {
	msg := change.Message{Node: d.eng.Node, Changes: changes, Timestamp: d.eng.now().UnixNano()}
	data := msg.AppendJSON(nil)
	if len(data) > d.eng.maxMessage() {
		return tenant.Errorf(tenant.ETOOLARGE, "one row takes %d bytes, over the %d-byte message limit", len(data), d.eng.maxMessage())
	}
	last := d.applied.Load()
	ack, err := d.eng.JS.Publish(ctx, tenant.Subject(d.name), data, jetstream.WithExpectLastSequence(last))
	if err != nil {
		return publishError(err)
	}
	if ack.Sequence != last+1 {
		return fmt.Errorf("stream stored the message at %d, expected %d", ack.Sequence, last+1)
	}
	return d.applyMessages([]seqMessage{{seq: ack.Sequence, msg: change.Message{Changes: changes}}})
}
