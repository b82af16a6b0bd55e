package sqlite

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Description tells what a statement takes and returns, for protocols that
// announce result types before running it (pgwire's Describe).
type Description struct {
	Columns   []string
	DeclTypes []string // declared type of each column, "" for expressions
	// Sample holds, for columns without a declared type, the value of a
	// first row from a dry run of a read-only statement (see
	// DescribeOptions); nil where there is none.
	Sample   []any
	Params   []string // SQLite's parameter names ("?1", ":name", "" for '?')
	ReadOnly bool
}

// DescribeOptions ask for a dry run: a read-only statement whose columns
// lack declared types runs to its first row, with Params bound (NULL where
// missing), for a sample of their values.
type DescribeOptions struct {
	DryRun bool
	Params []any
}

// dryRunLimit bounds the dry run of Describe.
const dryRunLimit = time.Second

// Describe prepares sql and describes it.
func (c *Conn) Describe(ctx context.Context, sql string, opts DescribeOptions) (*Description, error) {
	s, used, err := c.prepare(sql, 0)
	if err != nil {
		return nil, c.tenantError(ctx, err)
	}
	if s == nil {
		return &Description{ReadOnly: true}, nil
	}
	defer c.Release(s)
	if strings.TrimSpace(sql[used:]) != "" {
		return nil, invalid(KindMultiple, "cannot insert multiple commands into a prepared statement")
	}
	desc := &Description{
		Columns:   s.names,
		DeclTypes: s.decl,
		Params:    s.params,
		ReadOnly:  s.ReadOnly(),
	}
	if !opts.DryRun || !desc.ReadOnly || !slices.Contains(s.decl, "") {
		return desc, nil
	}
	for i, v := range opts.Params {
		if i < len(s.params) && v != nil {
			if err := s.bind(i+1, v); err != nil {
				return nil, invalid(KindParams, "param %d: %v", i+1, err)
			}
		}
	}
	// The sample is a convenience: a statement slow to give its first row
	// (an aggregate over a large or endless set) is described without.
	dctx, cancel := context.WithTimeout(ctx, dryRunLimit)
	defer cancel()
	defer c.Unwatch(c.Watch(dctx))
	more, err := s.step()
	if err != nil {
		if ctx.Err() == nil && dctx.Err() != nil {
			return desc, nil
		}
		return nil, c.tenantError(ctx, err)
	}
	desc.Sample = make([]any, s.ncols)
	if more {
		for i, t := range s.decl {
			if t == "" {
				desc.Sample[i] = s.Column(i)
			}
		}
	}
	return desc, nil
}
