package engine

import (
	"context"
	"slices"
	"time"

	"hasvc/internal/sqlite"
)

// Describe prepares sql (one statement) and describes it. Only a read
// whose columns include expressions, described with a dry run, needs a
// reader; everything else is prepared on the classifier connection, so a
// client's Parse does not wait behind long reads.
func (d *DB) Describe(ctx context.Context, sql string, opts sqlite.DescribeOptions) (*sqlite.Description, error) {
	// Preparing runs nothing, and SQLite cannot stop it: ctx is only
	// bounded (a timer) for the dry run below.
	var desc *sqlite.Description
	err := d.withClassifier(func(c *sqlite.Conn) error {
		var err error
		desc, err = c.Describe(ctx, sql, sqlite.DescribeOptions{})
		return err
	})
	if err != nil || !opts.DryRun || !desc.ReadOnly || !slices.Contains(desc.DeclTypes, "") {
		return desc, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.statementTime())
	defer cancel()
	r, h, err := d.reader(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	defer d.putBack(r, h)
	return r.Describe(ctx, sql, opts)
}
