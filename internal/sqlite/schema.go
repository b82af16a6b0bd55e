package sqlite

import (
	"fmt"
	"strings"
)

// TableInfo is what capture and apply need to know of a table.
type TableInfo struct {
	Columns      []string
	Generated    []bool // column is generated (never written by apply)
	PK           []int  // indexes of the primary key columns, in key order
	WithoutRowid bool
}

// TableInfo returns the description of table name, cached until the next
// schema change on this connection.
func (c *Conn) TableInfo(name string) (*TableInfo, error) {
	if ti, ok := c.tables[name]; ok {
		return ti, nil
	}
	ti := &TableInfo{}
	var pkPos []int64
	err := c.Internal(func() error {
		err := c.Query("SELECT name, pk, hidden FROM pragma_table_xinfo(?1, 'main')", []any{name}, func(s *Stmt) error {
			col, _ := s.Column(0).(string)
			pk, _ := s.Column(1).(int64)
			hidden, _ := s.Column(2).(int64)
			ti.Columns = append(ti.Columns, col)
			ti.Generated = append(ti.Generated, hidden == 2 || hidden == 3)
			pkPos = append(pkPos, pk)
			return nil
		})
		if err != nil {
			return err
		}
		return c.Query("SELECT wr FROM pragma_table_list(?1) WHERE schema = 'main'", []any{name}, func(s *Stmt) error {
			wr, _ := s.Column(0).(int64)
			ti.WithoutRowid = wr == 1
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(ti.Columns) == 0 {
		return nil, fmt.Errorf("table %q does not exist", name)
	}
	for k := int64(1); ; k++ {
		found := false
		for i, p := range pkPos {
			if p == k {
				ti.PK = append(ti.PK, i)
				found = true
			}
		}
		if !found {
			break
		}
	}
	if c.tables == nil {
		c.tables = map[string]*TableInfo{}
	}
	c.tables[name] = ti
	return ti, nil
}

// SchemaChanged forgets cached table descriptions.
func (c *Conn) SchemaChanged() {
	clear(c.tables)
	c.ddlRan = true
}

// RolledBack forgets cached table descriptions if a schema change may have
// been rolled back.
func (c *Conn) RolledBack() {
	if c.ddlRan {
		clear(c.tables)
	}
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// Internal runs fn with the tenant sandbox off, for hasvc's own SQL.
func (c *Conn) Internal(fn func() error) error {
	prev := c.tenant
	c.tenant = false
	defer func() { c.tenant = prev }()
	return fn()
}
