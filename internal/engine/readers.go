package engine

import (
	"context"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// read runs stmts, classified as reads, on a reader. isRead is false if
// a statement is not read-only after all (nothing was changed: readers are
// query_only) or could not be prepared there.
func (d *DB) read(ctx context.Context, stmts []sqlite.Statement, sink sqlite.Sink) (*ExecResult, bool, error) {
	r, err := d.reader(ctx)
	if err != nil {
		return nil, true, err
	}
	defer d.putReader(r)
	if len(stmts) == 1 {
		// One statement: the statement prepared to see whether it only
		// reads is the one that runs.
		res, ran, err := r.RunIfReadOnly(ctx, stmts[0], sink)
		if ran {
			if err != nil {
				return nil, true, err
			}
			if sink != nil {
				return &ExecResult{Streamed: true}, true, nil
			}
			return &ExecResult{Results: []sqlite.Result{res}}, true, nil
		}
		if err == nil {
			d.writes.add(stmts[0].SQL)
		}
		return nil, false, err
	}
	// One snapshot for the whole request.
	if err := r.Internal(func() error { return r.Exec("BEGIN") }); err != nil {
		return nil, true, err
	}
	defer r.Internal(func() error { return r.Exec("COMMIT") })
	if sink != nil {
		if err := r.RunTo(ctx, stmts, sink); err != nil {
			return nil, true, err
		}
		return &ExecResult{Streamed: true}, true, nil
	}
	results, err := r.Run(ctx, stmts, nil)
	if err != nil {
		return nil, true, err
	}
	return &ExecResult{Results: results}, true, nil
}

// reader returns a reader for a single read, waiting while readerSem's
// readers are all busy.
func (d *DB) reader(ctx context.Context) (*sqlite.Conn, error) {
	select {
	case d.readerSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.closed:
		return nil, tenant.Errorf(tenant.EUNAVAILABLE, "database %q is closing", d.name)
	}
	r, err := d.txReader()
	if err != nil {
		<-d.readerSem
	}
	return r, err
}

// txReader returns an idle reader, or a new one. Used alone, for a
// transaction's snapshot, it does not count against the readers that serve
// single reads (readerSem): a client may keep a transaction open for as
// long as it likes (PostgreSQL drivers that never autocommit do), and
// those must not starve everyone else's reads.
func (d *DB) txReader() (*sqlite.Conn, error) {
	d.readerMu.Lock()
	if n := len(d.readers); n > 0 {
		r := d.readers[n-1]
		d.readers = d.readers[:n-1]
		d.readerMu.Unlock()
		return r, nil
	}
	d.readerMu.Unlock()
	return sqlite.Open(d.eng.dsn(d.name), sqlite.Options{ReadOnly: true, Tenant: true})
}

// putTxReader gives back a transaction's reader: kept idle while the pool
// has room, closed otherwise.
func (d *DB) putTxReader(r *sqlite.Conn) {
	d.readerMu.Lock()
	keep := len(d.readers) < cap(d.readerSem)
	select {
	case <-d.closed:
		keep = false
	default:
	}
	if keep {
		d.readers = append(d.readers, r)
	}
	d.readerMu.Unlock()
	if !keep {
		r.Close()
	}
}

func (d *DB) putReader(r *sqlite.Conn) {
	d.readerMu.Lock()
	d.readers = append(d.readers, r)
	d.readerMu.Unlock()
	<-d.readerSem
}
