package engine

import (
	"fmt"
	"strings"
)

// tableInfo is what capture and apply need to know of a table.
type tableInfo struct {
	columns      []string
	generated    []bool // column is generated (never written by apply)
	pk           []int  // indexes of the primary key columns, in key order
	withoutRowid bool
}

// tableInfo returns the description of table name, cached until the next
// schema change on this connection.
func (c *conn) tableInfo(name string) (*tableInfo, error) {
	if ti, ok := c.tables[name]; ok {
		return ti, nil
	}
	ti := &tableInfo{}
	var pkPos []int64
	err := c.internal(func() error {
		err := c.query("SELECT name, pk, hidden FROM pragma_table_xinfo(?1, 'main')", []any{name}, func(s *stmt) error {
			col, _ := s.column(0).(string)
			pk, _ := s.column(1).(int64)
			hidden, _ := s.column(2).(int64)
			ti.columns = append(ti.columns, col)
			ti.generated = append(ti.generated, hidden == 2 || hidden == 3)
			pkPos = append(pkPos, pk)
			return nil
		})
		if err != nil {
			return err
		}
		return c.query("SELECT wr FROM pragma_table_list(?1) WHERE schema = 'main'", []any{name}, func(s *stmt) error {
			wr, _ := s.column(0).(int64)
			ti.withoutRowid = wr == 1
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(ti.columns) == 0 {
		return nil, fmt.Errorf("table %q does not exist", name)
	}
	for k := int64(1); ; k++ {
		found := false
		for i, p := range pkPos {
			if p == k {
				ti.pk = append(ti.pk, i)
				found = true
			}
		}
		if !found {
			break
		}
	}
	if c.tables == nil {
		c.tables = map[string]*tableInfo{}
	}
	c.tables[name] = ti
	return ti, nil
}

// schemaChanged forgets cached table descriptions.
func (c *conn) schemaChanged() {
	clear(c.tables)
	c.ddlRan = true
}

// rolledBack forgets cached table descriptions if a schema change may have
// been rolled back.
func (c *conn) rolledBack() {
	if c.ddlRan {
		clear(c.tables)
	}
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// internal runs fn with the tenant sandbox off, for hasvc's own SQL.
func (c *conn) internal(fn func() error) error {
	prev := c.tenant
	c.tenant = false
	defer func() { c.tenant = prev }()
	return fn()
}
