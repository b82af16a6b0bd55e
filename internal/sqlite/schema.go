package sqlite

import (
	"hasvc/internal/apply"
	"strings"
)

// TableInfo is what capture and apply need to know of a table.
type TableInfo = apply.Table

// TableInfo returns the description of table name, cached until the next
// schema change on this connection.
func (c *Conn) TableInfo(name string) (*TableInfo, error) {
	if ti, ok := c.tables[name]; ok {
		return ti, nil
	}
	var ti *TableInfo
	err := c.Internal(func() error {
		var err error
		ti, err = apply.Describe(c.queryValues, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	if c.tables == nil {
		c.tables = map[string]*TableInfo{}
	}
	c.tables[name] = ti
	return ti, nil
}

// queryValues runs sql with args and calls row with each row's values.
func (c *Conn) queryValues(sql string, args []any, row func([]any) error) error {
	return c.Query(sql, args, func(s *Stmt) error {
		vals := make([]any, s.ColumnCount())
		for i := range vals {
			vals[i] = s.Column(i)
		}
		return row(vals)
	})
}

// SchemaChanged forgets cached table descriptions.
func (c *Conn) SchemaChanged() {
	clear(c.tables)
	c.ddlRan = true
}

// FollowSchema makes c see a schema another connection changed, for a
// connection that describes statements without running them: SQLite
// notices a changed schema only when a statement that reads a table runs
// (it prepares that statement again then), so one prepared on c since the
// change, or kept in c's cache, would describe the old schema. If the
// schema's version changed since the last look, a read of the schema
// table makes SQLite load the new schema, and c forgets its cached
// statements and tables.
func (c *Conn) FollowSchema() error {
	return c.Internal(func() error {
		v, err := c.QueryInt64("PRAGMA schema_version")
		if err != nil || v == c.schemaVersion {
			return err
		}
		c.forgetStatements()
		clear(c.tables)
		if err := c.Exec("SELECT 1 FROM sqlite_schema LIMIT 1"); err != nil {
			return err
		}
		c.schemaVersion = v
		return nil
	})
}

// RolledBack forgets cached table descriptions if a schema change may have
// been rolled back.
func (c *Conn) RolledBack() {
	if c.ddlRan {
		clear(c.tables)
	}
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(s string) string { return apply.QuoteIdent(s) }

// QuoteString returns s as an SQL string literal.
func QuoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Internal runs fn with the tenant sandbox off, for hasvc's own SQL. The
// connection's last insert rowid is as fn found it afterwards: a row hasvc
// inserts into its own tables (a migration, an idempotency key) is never
// the last_insert_id a tenant's next statement reports.
func (c *Conn) Internal(fn func() error) error {
	prev, last := c.tenant, c.raw.lastInsertID()
	c.tenant = false
	defer func() {
		c.tenant = prev
		c.raw.setLastInsertID(last)
	}()
	return fn()
}
