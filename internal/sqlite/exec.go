package sqlite

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

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

// Sink receives a request's results as they are produced (a read streamed
// to its client) instead of in Result.Rows. For each statement object of
// the request, in order: Columns if it produces rows, Row for each row
// (values are the sink's to keep), then Done with the rest of its result.
// An error from the sink stops the request.
type Sink interface {
	Columns(names, declTypes []string) error
	Row(values []any) error
	Done(res *Result) error
}

// Run executes the statements of one request on c, which is in tenant
// mode. With cp non-nil (the writer's capture), row changes are captured
// while they run, schema changes are recorded in cp before they run, and
// row changes are named after each statement. Errors are tenant errors
// naming the failing statement; SQL errors wrap an *Error.
func (c *Conn) Run(ctx context.Context, stmts []Statement, cp *Capture) ([]Result, error) {
	return c.run(ctx, stmts, cp, nil)
}

// RunTo runs the statements of a read on c, passing the results to sink
// as they are produced.
func (c *Conn) RunTo(ctx context.Context, stmts []Statement, sink Sink) error {
	_, err := c.run(ctx, stmts, nil, sink)
	return err
}

func (c *Conn) run(ctx context.Context, stmts []Statement, cp *Capture, sink Sink) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, tenant.AtStatement(c.tenantError(ctx, newError(codeInterrupt, "interrupted")), 0)
	}
	defer c.Unwatch(c.Watch(ctx))
	if cp != nil {
		cp.on = true
		defer func() { cp.on = false }()
	}
	var results []Result
	if sink == nil {
		results = make([]Result, len(stmts))
	}
	size := 0
	for i := range stmts {
		var res Result
		if err := c.runOne(ctx, &stmts[i], &res, cp, &size, sink); err != nil {
			return nil, tenant.AtStatement(err, i)
		}
		if sink == nil {
			results[i] = res
		}
	}
	return results, nil
}

// RunIfReadOnly runs st if its SQL is one statement that only reads, with
// the statement it prepared to find that out. ran is false, and nothing
// ran, if it is not (or does not prepare: err says why). With sink set,
// the result goes there rather than into res.
func (c *Conn) RunIfReadOnly(ctx context.Context, st Statement, sink Sink) (res Result, ran bool, err error) {
	s, used, err := c.prepare(st.SQL, 0)
	if err != nil {
		return Result{}, false, tenant.AtStatement(c.tenantError(ctx, err), 0)
	}
	if s == nil {
		return Result{}, false, nil
	}
	defer c.Release(s)
	if !onlyTrivia(st.SQL[used:]) || !s.ReadOnly() {
		return Result{}, false, nil
	}
	defer c.Unwatch(c.Watch(ctx))
	size := 0
	if err := c.step(ctx, s, st.Params, &res, nil, &size, sink); err != nil {
		return Result{}, true, tenant.AtStatement(err, 0)
	}
	if sink != nil {
		if err := sink.Done(&res); err != nil {
			return Result{}, true, tenant.AtStatement(err, 0)
		}
	}
	return res, true, nil
}

// ReadOnly reports whether sql is one statement that only reads. An empty
// text is an EINVALID error, as is one that does not prepare.
func (c *Conn) ReadOnly(ctx context.Context, sql string) (bool, error) {
	s, used, err := c.prepare(sql, 0)
	if err != nil {
		return false, c.tenantError(ctx, err)
	}
	if s == nil {
		return false, invalid(KindSyntax, "empty statement")
	}
	defer c.Release(s)
	return s.ReadOnly() && onlyTrivia(sql[used:]), nil
}

// runOne runs the SQL of one statement object: its result is that of its
// last statement. With a sink, that last statement's rows go to the sink as
// they come, and earlier statements' results are dropped as before.
func (c *Conn) runOne(ctx context.Context, st *Statement, res *Result, cp *Capture, size *int, sink Sink) error {
	sql := st.SQL
	n := 0
	sunk := false
	for off := 0; off < len(sql); {
		s, used, err := c.prepare(sql, off)
		if err != nil {
			return c.tenantError(ctx, err)
		}
		off += used
		if s == nil {
			continue
		}
		n++
		if n > 1 && st.Params != nil {
			c.Release(s)
			return invalid(KindParams, "params need a statement of its own: this sql holds more than one")
		}
		*res = Result{}
		var to Sink
		if sink != nil && onlyTrivia(sql[off:]) {
			to, sunk = sink, true
		}
		err = c.step(ctx, s, st.Params, res, cp, size, to)
		c.Release(s)
		if err != nil {
			return err
		}
	}
	if n == 0 {
		return invalid(KindSyntax, "empty statement")
	}
	if sink == nil {
		return nil
	}
	if !sunk {
		// The last statement was followed by text that turned out to
		// hold none: its rows were kept, and go to the sink now.
		if res.HasRows() {
			if err := sink.Columns(res.Columns, res.DeclTypes); err != nil {
				return err
			}
			for _, row := range res.Rows {
				if err := sink.Row(row); err != nil {
					return err
				}
			}
			res.Rows = nil
		}
	}
	return sink.Done(res)
}

// onlyTrivia reports whether sql holds no more statements for sure: only
// whitespace, semicolons and comments.
func onlyTrivia(sql string) bool { return skipTrivia(sql) == len(sql) }

// LeadingWords returns the first n words of sql, upper-cased, after white
// space and comments ("" for words it does not have): what kind of
// statement a client holds, without preparing it.
func LeadingWords(sql string, n int) []string {
	out := make([]string, n)
	i := 0
	for k := range n {
		i += skipTrivia(sql[i:])
		j := i
		for j < len(sql) && (sql[j] == '_' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= 'a' && sql[j] <= 'z') {
			j++
		}
		if j == i {
			break
		}
		out[k] = strings.ToUpper(sql[i:j])
		i = j
	}
	return out
}

// skipTrivia returns the index of the first byte of sql that is not white
// space, a comment or a semicolon (len(sql) if there is none).
func skipTrivia(sql string) int {
	i := 0
	for i < len(sql) {
		t := nextSQLToken(sql, i)
		if t.kind != tokTrivia && !t.is(sql, ";") {
			return i
		}
		i = t.end
	}
	return len(sql)
}

// IsSelect reports whether sql's first word is SELECT. Such a statement
// only reads (SQLite has no SELECT that writes); a caller may use this to
// go to a reader without preparing sql first, but what runs there is still
// checked (RunIfReadOnly), since the text may hold further statements.
func IsSelect(sql string) bool {
	i := skipTrivia(sql)
	const kw = "select"
	if len(sql)-i < len(kw) || !strings.EqualFold(sql[i:i+len(kw)], kw) {
		return false
	}
	if j := i + len(kw); j < len(sql) {
		c := sql[j]
		return !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80)
	}
	return true
}

func (c *Conn) step(ctx context.Context, s *Stmt, params any, res *Result, cp *Capture, size *int, sink Sink) error {
	if err := bindParams(s, params); err != nil {
		return err
	}
	mark := 0
	ctasNew := false
	if cp != nil {
		switch {
		case s.ddl && !utf8.ValidString(s.sql):
			return invalid(KindOther, "a schema statement must be valid UTF-8: it replicates as its text")
		case s.ctas != "":
			// CREATE TABLE ... AS SELECT would run its SELECT again on
			// every copy (random(), parameters, time): it replicates as
			// the table it made and its rows, added after it runs.
			exists, err := c.tableExists(s.ctas)
			if err != nil {
				return err
			}
			ctasNew = !exists
		case s.ddl:
			cp.append(change.Change{Database: "main", Operation: change.OpSQL, SQL: s.sql}, len(s.sql))
		}
		mark = len(cp.changes)
	}
	if s.ncols > 0 {
		// The first step comes before the columns are told: SQLite may
		// prepare the statement again there, with other columns.
		more, err := s.stepRow()
		if err != nil {
			return c.stepError(ctx, err, cp)
		}
		res.Columns = s.names
		res.DeclTypes = s.decl
		if sink != nil {
			if err := sink.Columns(s.names, s.decl); err != nil {
				return err
			}
		} else {
			res.Rows = [][]any{}
		}
		for more {
			row := make([]any, s.ncols)
			s.values(row)
			for _, v := range row {
				*size += change.ValueSize(v)
			}
			if *size > maxResultBytes {
				return tenant.Errorf(tenant.ETOOLARGE, "result larger than %d bytes", maxResultBytes)
			}
			if sink != nil {
				if err := sink.Row(row); err != nil {
					return err
				}
			} else {
				res.Rows = append(res.Rows, row)
			}
			if more, err = s.stepRow(); err != nil {
				return c.stepError(ctx, err, cp)
			}
		}
	} else {
		for {
			more, err := s.step()
			if err != nil {
				return c.stepError(ctx, err, cp)
			}
			if !more {
				break
			}
		}
		if !s.ddl && !s.ReadOnly() {
			res.RowsAffected = c.raw.changes()
		}
		res.LastInsertID = c.raw.lastInsertID()
	}
	if s.ddl {
		c.SchemaChanged()
	}
	if ctasNew {
		if err := c.captureTable(cp, s.ctas); err != nil {
			return err
		}
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

// stepError turns the error of a step into a tenant error: the capture's
// own, if it stopped the statement (over its limit), else SQLite's.
func (c *Conn) stepError(ctx context.Context, err error, cp *Capture) error {
	if cp != nil && cp.err != nil {
		return cp.err
	}
	return c.tenantError(ctx, err)
}

// invalid returns an EINVALID tenant error about a statement, of kind.
func invalid(kind Kind, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return tenant.Wrap(tenant.EINVALID, statementError(kind, msg), msg)
}

// bindParams binds a statement's parameters by name or position.
func bindParams(s *Stmt, params any) error {
	switch p := params.(type) {
	case nil:
		if len(s.params) > 0 {
			return invalid(KindParams, "statement has %d parameters and no params were given", len(s.params))
		}
	case []any:
		if len(p) != len(s.params) {
			return invalid(KindParams, "statement has %d parameters, %d params given", len(s.params), len(p))
		}
		for i, v := range p {
			if err := s.bind(i+1, v); err != nil {
				return invalid(KindParams, "param %d: %v", i+1, err)
			}
		}
	case map[string]any:
		for i, name := range s.params {
			if name == "" {
				return invalid(KindParams, "parameter %d is an anonymous '?': give params as an array", i+1)
			}
			v, ok := p[name[1:]]
			if !ok {
				return invalid(KindParams, "missing parameter %s", name)
			}
			if err := s.bind(i+1, v); err != nil {
				return invalid(KindParams, "param %s: %v", name, err)
			}
		}
	default:
		return invalid(KindParams, "params must be an array or an object")
	}
	return nil
}
