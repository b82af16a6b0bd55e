package engine

import (
	"container/list"
	"context"
	"sync"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Deciding whether a request only reads (and runs on a reader) or writes
// (and goes to the writer), without a reader: readers may all be held by
// long reads, and a write must not wait behind them to be classified.
// Statements are classified by preparing them on a connection of their
// own, which only ever prepares, so it is never busy for long; what was
// learned is remembered by SQL text (whether a text reads or writes does
// not change with the schema).

// classify reports whether every statement of stmts only reads. An error
// (a statement that does not prepare, perhaps because an earlier statement
// of the request creates what it names) means the request is not known to
// only read.
func (d *DB) classify(ctx context.Context, stmts []sqlite.Statement) (bool, error) {
	for i := range stmts {
		sql := stmts[i].SQL
		ro, known := d.texts.get(sql)
		if !known && len(stmts) == 1 && sqlite.IsSelect(sql) {
			// A lone SELECT goes to a reader unprepared: the reader
			// prepares it once and runs it only if it is that one read
			// (RunIfReadOnly), else it is remembered as a write. Texts
			// differing only in their literals (every query of a client
			// that does not bind parameters) then cost one prepare, not
			// two, and do not churn this cache.
			return true, nil
		}
		if !known {
			var err error
			if ro, err = d.prepareOnly(ctx, sql); err != nil {
				return false, tenant.AtStatement(err, i)
			}
			d.texts.set(sql, ro)
		}
		if !ro {
			return false, nil
		}
	}
	return true, nil
}

// prepareOnly prepares sql on the classifier connection and reports
// whether it is one statement that only reads.
func (d *DB) prepareOnly(ctx context.Context, sql string) (ro bool, err error) {
	err = d.withClassifier(func(c *sqlite.Conn) error {
		ro, err = c.ReadOnly(ctx, sql)
		return err
	})
	return ro, err
}

// Inspect runs a statement that reads the schema only (PRAGMA
// table_info, a query of sqlite_schema: the catalog a PostgreSQL client
// asks about) on the classifier connection.
func (d *DB) Inspect(ctx context.Context, st sqlite.Statement) (*sqlite.Result, error) {
	var res []sqlite.Result
	err := d.withClassifier(func(c *sqlite.Conn) error {
		var err error
		res, err = c.Run(ctx, []sqlite.Statement{st}, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &res[0], nil
}

// withClassifier runs f with the classifier connection (opened on first
// use), which f must use only to prepare or to read the schema: holding
// it long would make it the bottleneck the readers were.
func (d *DB) withClassifier(f func(*sqlite.Conn) error) error {
	d.classifierMu.Lock()
	defer d.classifierMu.Unlock()
	if d.classifier == nil {
		c, err := sqlite.Open(d.eng.dsn(d.name), sqlite.Options{ReadOnly: true, Tenant: true})
		if err != nil {
			return err
		}
		d.classifier = c
		d.classifierSaw = 0
	}
	// The classifier only prepares: after a commit it reads the schema's
	// version so that what it prepares next describes a schema another
	// request changed. Read before the look, so a commit during it is
	// looked at next time.
	if v := d.version.Load(); v != d.classifierSaw {
		if err := d.classifier.FollowSchema(); err != nil {
			return err
		}
		d.classifierSaw = v
	}
	return f(d.classifier)
}

// sqlTexts remembers recent SQL texts and whether each only reads. It
// holds at most max texts, dropping the least recently used: a tenant
// that sends a new literal in every statement must not grow the node's
// memory.
type sqlTexts struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *sqlText, most recent first
	index map[string]*list.Element
}

type sqlText struct {
	sql      string
	readOnly bool
}

// defaultTexts is how many texts a database remembers.
const defaultTexts = 2048

func newSQLTexts(max int) *sqlTexts {
	return &sqlTexts{max: max, order: list.New(), index: map[string]*list.Element{}}
}

// get reports whether sql is remembered, and whether it only reads.
func (w *sqlTexts) get(sql string) (readOnly, known bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.index[sql]
	if !ok {
		return false, false
	}
	w.order.MoveToFront(e)
	return e.Value.(*sqlText).readOnly, true
}

// set remembers whether sql only reads.
func (w *sqlTexts) set(sql string, readOnly bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.index[sql]; ok {
		e.Value.(*sqlText).readOnly = readOnly
		w.order.MoveToFront(e)
		return
	}
	w.index[sql] = w.order.PushFront(&sqlText{sql, readOnly})
	for w.order.Len() > w.max {
		last := w.order.Back()
		w.order.Remove(last)
		delete(w.index, last.Value.(*sqlText).sql)
	}
}

// len returns how many texts are remembered.
func (w *sqlTexts) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.order.Len()
}
