package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"hasvc/internal/change"
	"hasvc/internal/tenant"
)

// Statement is one statement of a request. Params is nil, a []any of
// positional values, or a map[string]any of named values keyed without
// their ':', '@' or '$' prefix; values are int64, float64, string, []byte
// or nil.
type Statement struct {
	SQL    string
	Params any
}

// Result is the outcome of one statement: rows for statements that produce
// columns (decided by the prepared statement), rows affected and the last
// insert id for the others.
type Result struct {
	Columns      []string
	DeclTypes    []string // declared type of each column, "" for expressions
	Rows         [][]any
	RowsAffected int64
	LastInsertID int64
}

// HasRows reports whether the statement produced columns.
func (r *Result) HasRows() bool { return r.Columns != nil }

// maxResultBytes bounds what one request may return.
const maxResultBytes = 64 << 20

// run executes the statements of one request on c, which is in tenant
// mode. With cp non-nil (the writer), schema changes are recorded in cp
// before they run and row changes are named after each statement.
func (c *conn) run(ctx context.Context, stmts []Statement, cp *capture) ([]Result, error) {
	stop := c.watch(ctx)
	defer stop()
	results := make([]Result, len(stmts))
	size := 0
	for i := range stmts {
		if err := c.runOne(ctx, &stmts[i], &results[i], cp, &size); err != nil {
			return nil, tenant.AtStatement(err, i)
		}
	}
	return results, nil
}

func (c *conn) runOne(ctx context.Context, st *Statement, res *Result, cp *capture, size *int) error {
	sql := st.SQL
	n := 0
	for off := 0; off < len(sql); {
		s, used, err := c.prepare(sql, off)
		if err != nil {
			return c.sqlError(ctx, err)
		}
		off += used
		if s == nil {
			continue
		}
		n++
		if n > 1 && st.Params != nil {
			c.release(s)
			return tenant.Errorf(tenant.EINVALID, "params need a statement of its own: this sql holds more than one")
		}
		*res = Result{}
		err = c.step(ctx, s, st.Params, res, cp, size)
		c.release(s)
		if err != nil {
			return err
		}
	}
	if n == 0 {
		return tenant.Errorf(tenant.EINVALID, "empty statement")
	}
	return nil
}

func (c *conn) step(ctx context.Context, s *stmt, params any, res *Result, cp *capture, size *int) error {
	if err := bindParams(s, params); err != nil {
		return err
	}
	mark := 0
	if cp != nil {
		if s.ddl {
			cp.changes = append(cp.changes, change.Change{Database: "main", Operation: change.OpSQL, SQL: s.sql})
		}
		mark = len(cp.changes)
	}
	if s.ncols > 0 {
		res.Columns = s.names
		res.DeclTypes = s.decl
		res.Rows = [][]any{}
		for {
			more, err := s.step()
			if err != nil {
				return c.sqlError(ctx, err)
			}
			if !more {
				break
			}
			row := make([]any, s.ncols)
			for i := range row {
				row[i] = s.column(i)
				*size += valueSize(row[i])
			}
			if *size > maxResultBytes {
				return tenant.Errorf(tenant.ETOOLARGE, "result larger than %d bytes", maxResultBytes)
			}
			res.Rows = append(res.Rows, row)
		}
	} else {
		for {
			more, err := s.step()
			if err != nil {
				return c.sqlError(ctx, err)
			}
			if !more {
				break
			}
		}
		if !s.ddl && !s.readonly() {
			res.RowsAffected = c.raw.changes()
		}
		res.LastInsertID = c.raw.lastInsertID()
	}
	if s.ddl {
		c.schemaChanged()
	}
	if cp != nil {
		if cp.err != nil {
			return cp.err
		}
		if err := c.resolve(cp.changes[mark:]); err != nil {
			return err
		}
	}
	return nil
}

func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 8
	case []byte:
		return len(x) + 8
	}
	return 8
}

// bindParams binds a statement's parameters by name or position.
func bindParams(s *stmt, params any) error {
	switch p := params.(type) {
	case nil:
		if len(s.params) > 0 {
			return tenant.Errorf(tenant.EINVALID, "statement has %d parameters and no params were given", len(s.params))
		}
	case []any:
		if len(p) != len(s.params) {
			return tenant.Errorf(tenant.EINVALID, "statement has %d parameters, %d params given", len(s.params), len(p))
		}
		for i, v := range p {
			if err := s.bind(i+1, v); err != nil {
				return tenant.Wrap(tenant.EINVALID, err, fmt.Sprintf("param %d: %v", i+1, err))
			}
		}
	case map[string]any:
		for i, name := range s.params {
			if name == "" {
				return tenant.Errorf(tenant.EINVALID, "parameter %d is an anonymous '?': give params as an array", i+1)
			}
			v, ok := p[name[1:]]
			if !ok {
				return tenant.Errorf(tenant.EINVALID, "missing parameter %s", name)
			}
			if err := s.bind(i+1, v); err != nil {
				return tenant.Wrap(tenant.EINVALID, err, fmt.Sprintf("param %s: %v", name, err))
			}
		}
	default:
		return tenant.Errorf(tenant.EINVALID, "params must be an array or an object")
	}
	return nil
}

// sqlError turns an error from SQLite into a tenant error.
func (c *conn) sqlError(ctx context.Context, err error) error {
	var se *SQLiteError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Primary() {
	case sqliteInterrupt:
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return tenant.Wrap(tenant.ETIMEOUT, err, "statement timed out")
		}
		return tenant.Wrap(tenant.ETIMEOUT, err, "statement interrupted")
	case sqliteAuth:
		return tenant.Wrap(tenant.EFORBIDDEN, err, "not allowed: "+se.Message)
	case sqliteTooBig:
		return tenant.Wrap(tenant.ETOOLARGE, err, se.Message)
	case sqliteBusy:
		return tenant.Wrap(tenant.EUNAVAILABLE, err, se.Message)
	case sqliteFull:
		return tenant.Wrap(tenant.EUNAVAILABLE, err, se.Message)
	}
	msg := se.Message
	if strings.HasPrefix(msg, "not authorized") {
		return tenant.Wrap(tenant.EFORBIDDEN, err, "not allowed: "+msg)
	}
	return tenant.Wrap(tenant.EINVALID, err, msg)
}
