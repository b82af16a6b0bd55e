package engine

import (
	"context"
	"strings"

	"hasvc/internal/tenant"
)

// Description tells what a statement takes and returns, for protocols that
// announce result types before running it (pgwire's Describe).
type Description struct {
	Columns   []string
	DeclTypes []string // declared type of each column, "" for expressions
	// Sample holds, for columns without a declared type, the value of a
	// first row from a dry run of a read-only statement with every
	// parameter NULL; nil where there is none.
	Sample   []any
	Params   []string // SQLite's parameter names ("?1", ":name", "" for '?')
	ReadOnly bool
}

// Describe prepares sql (one statement) on a reader and describes it; with
// dry, a read-only statement whose columns lack declared types runs to its
// first row for a sample of their values.
func (d *DB) Describe(ctx context.Context, sql string, dry bool) (*Description, error) {
	r, err := d.reader(ctx)
	if err != nil {
		return nil, err
	}
	defer d.putReader(r)
	return r.describe(ctx, sql, dry)
}

// describe prepares sql and describes it; with dry, a read-only statement
// with columns of no declared type runs to its first row.
func (c *conn) describe(ctx context.Context, sql string, dry bool) (*Description, error) {
	s, used, err := c.prepare(sql, 0)
	if err != nil {
		return nil, c.sqlError(ctx, err)
	}
	if s == nil {
		return &Description{ReadOnly: true}, nil
	}
	defer c.release(s)
	if strings.TrimSpace(sql[used:]) != "" {
		return nil, tenant.Errorf(tenant.EINVALID, "cannot insert multiple commands into a prepared statement")
	}
	desc := &Description{
		Columns:   s.names,
		DeclTypes: s.decl,
		Params:    s.params,
		ReadOnly:  s.readonly(),
	}
	if !dry || !desc.ReadOnly || !containsEmpty(s.decl) {
		return desc, nil
	}
	stop := c.watch(ctx)
	defer stop()
	more, err := s.step()
	if err != nil {
		return nil, c.sqlError(ctx, err)
	}
	desc.Sample = make([]any, s.ncols)
	if more {
		for i, t := range s.decl {
			if t == "" {
				desc.Sample[i] = s.column(i)
			}
		}
	}
	return desc, nil
}

func containsEmpty(ss []string) bool {
	for _, s := range ss {
		if s == "" {
			return true
		}
	}
	return false
}
