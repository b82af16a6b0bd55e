package pg

import (
	"context"

	"hasvc/internal/sqlite"
)

// The postgres database.
//
// psql -l, and many GUI tools on their first connection, connect to a
// database named postgres. Unless a tenant made a database of that name,
// a session may open it with any valid token: it holds no tables, answers
// the catalog (\l lists the databases the token covers), and runs SQL that
// reads no table (SELECT version(), SELECT 1, SHOW) on an empty, read-only
// in-memory SQLite database of its own.

// catalogDB is the name clients connect to by default.
const catalogDB = "postgres"

// openCatalogOnly makes the session one on the postgres database.
func (ss *session) openCatalogOnly() error {
	c, err := sqlite.Open(":memory:", sqlite.Options{ReadOnly: true, Tenant: true})
	if err != nil {
		return err
	}
	ss.scratch = c
	ss.readOnly = true
	return nil
}

// scratchRun runs statements on the postgres database's empty copy; a
// statement that would write is refused, saying where to write.
func (ss *session) scratchRun(ctx context.Context, stmts []sqlite.Statement) ([]sqlite.Result, error) {
	for _, st := range stmts {
		if ro, err := ss.scratch.ReadOnly(ctx, st.SQL); err == nil && !ro {
			return nil, errorf(stateReadOnlyTx, "the postgres database holds no tables and takes no writes: connect to one of your databases (\\l lists them)")
		}
	}
	return ss.scratch.Run(ctx, stmts, nil)
}
