package engine

import (
	"context"
	"hasvc/internal/sqlite"
)

// Describe prepares sql (one statement) on a reader and describes it.
func (d *DB) Describe(ctx context.Context, sql string, opts sqlite.DescribeOptions) (*sqlite.Description, error) {
	ctx, cancel := context.WithTimeout(ctx, d.statementTime())
	defer cancel()
	r, err := d.reader(ctx)
	if err != nil {
		return nil, err
	}
	defer d.putReader(r)
	return r.Describe(ctx, sql, opts)
}
