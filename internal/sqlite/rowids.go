package sqlite

import (
	"fmt"
	"strings"
)

// Rowids from a node's own range (eventual mode).
//
// In eventual mode every node commits its writes at once and the stream
// orders them afterwards; a row image is applied by its rowid. If two nodes
// gave two different new rows the same rowid (SQLite hands out max+1 from
// each node's own copy), the later row would replace the earlier one on
// every copy: an acknowledged insert lost. So on a writer with a range
// (SetRowidRange), every rowid SQLite would choose for a tenant's INSERT is
// chosen by hasvc instead, from this node's range, which no other node
// uses:
//
//	INSERT INTO t(a, b) VALUES (1, 2), (3, 4)
//	INSERT INTO t(a, b, rowid) WITH _hasvc_src(c1, c2) AS (VALUES (1, 2), (3, 4))
//	  SELECT c1, c2, hasvc_rowid('t') FROM _hasvc_src WHERE true
//
// A rowid the tenant gives (an INTEGER PRIMARY KEY value, or rowid by name)
// is kept; a NULL one, which asks SQLite for a new rowid, becomes
// ifnull(value, hasvc_rowid('t')). The statement means what it did: same
// parameters in the same order, same RETURNING columns, same upsert clause
// (WHERE true keeps SQLite from reading ON CONFLICT as a join constraint).
// Rows that triggers insert into other tables still get SQLite's rowids:
// a trigger's text is stored and replicated as written.

// RowidFunc is the SQL function that hands out the next rowid of a table
// from the writer's range.
const RowidFunc = "hasvc_rowid"

// rowidRange is a writer's range of rowids and the next free one of each
// table, found (the largest rowid in the range, plus one) on the first
// insert of each transaction, so a copy replaced under the connection or a
// rowid a tenant chose inside the range is never handed out again.
type rowidRange struct {
	lo, hi int64
	next   map[string]int64
}

// SetRowidRange makes the rowids of the tenant's inserts on c come from
// lo..hi (see above). It is for the writer of an eventual-mode database.
func (c *Conn) SetRowidRange(lo, hi int64) error {
	if c.rowids == nil {
		if err := c.raw.createRowidFunction(RowidFunc, c.handle); err != nil {
			return err
		}
	}
	c.rowids = &rowidRange{lo: lo, hi: hi, next: map[string]int64{}}
	return nil
}

// nextRowid is RowidFunc: the next rowid of table from the range; ok is
// false (SQL NULL, SQLite chooses) on a connection without a range.
func (c *Conn) nextRowid(table string) (int64, bool, error) {
	r := c.rowids
	if r == nil {
		return 0, false, nil
	}
	if !isReplicatedTable(table) {
		// Only the rewrite calls it, for the tenant's own tables; a
		// tenant calling it on SQLite's or hasvc's gets nothing of them.
		return 0, false, fmt.Errorf("%s: no rowids are handed out for table %s", RowidFunc, table)
	}
	key := strings.ToLower(table)
	n, ok := r.next[key]
	if !ok {
		n = r.lo
		err := c.Internal(func() error {
			ti, err := c.TableInfo(table)
			if err != nil {
				return err
			}
			rowid := QuoteIdent(RowidName(ti))
			return c.Query("SELECT max("+rowid+") FROM main."+QuoteIdent(table)+" WHERE "+rowid+" BETWEEN ?1 AND ?2",
				[]any{r.lo, r.hi}, func(s *Stmt) error {
					if m, ok := s.Column(0).(int64); ok {
						n = m + 1
					}
					return nil
				})
		})
		if err != nil {
			return 0, false, err
		}
	}
	if n > r.hi {
		return 0, false, fmt.Errorf("table %s has used every rowid of this node's range (%d to %d)", table, r.lo, r.hi)
	}
	r.next[key] = n + 1
	return n, true, nil
}

// forgetRowids ends a transaction's view of the range.
func (c *Conn) forgetRowids() {
	if c.rowids != nil {
		clear(c.rowids.next)
	}
}

// insertTarget is what the rewrite needs to know of the table an INSERT
// writes.
type insertTarget struct {
	columns []string // the columns an INSERT without a column list fills, in order
	alias   string   // the INTEGER PRIMARY KEY column, "" if none
	rowid   string   // a name of the rowid no column hides
}

// insertTarget describes table for the rewrite; ok is false if it is not a
// rowid table of the main schema (a view, a WITHOUT ROWID table).
func (c *Conn) insertTarget(table string) (t *insertTarget, ok bool) {
	err := c.Internal(func() error {
		var kind string
		var wr int64
		err := c.Query("SELECT type, wr FROM pragma_table_list(?1) WHERE schema = 'main'", []any{table}, func(s *Stmt) error {
			kind, _ = s.Column(0).(string)
			wr, _ = s.Column(1).(int64)
			return nil
		})
		if err != nil || kind != "table" || wr != 0 {
			return err
		}
		ti, err := c.TableInfo(table)
		if err != nil {
			return err
		}
		t = &insertTarget{rowid: RowidName(ti)}
		for i, col := range ti.Columns {
			if !ti.Generated[i] {
				t.columns = append(t.columns, col)
			}
		}
		if len(ti.PK) != 1 {
			return nil
		}
		// An INTEGER PRIMARY KEY is the rowid, unless declared DESC
		// (SQLite's quirk), which makes it an ordinary key with an index.
		pk := ti.Columns[ti.PK[0]]
		var typ string
		var indexed int64
		err = c.Query(`SELECT upper(type), (SELECT count(*) FROM pragma_index_list(?1, 'main') WHERE origin = 'pk')
			FROM pragma_table_xinfo(?1, 'main') WHERE name = ?2`, []any{table, pk}, func(s *Stmt) error {
			typ, _ = s.Column(0).(string)
			indexed, _ = s.Column(1).(int64)
			return nil
		})
		if err == nil && typ == "INTEGER" && indexed == 0 {
			t.alias = pk
		}
		return err
	})
	return t, err == nil && t != nil
}

// rewriteInsert returns sql, an INSERT (or REPLACE) statement, with the
// rowids SQLite would choose taken from RowidFunc (see above), and whether
// it rewrote it. describe describes the target table; a statement it
// cannot take apart is left as it is.
func rewriteInsert(sql string, describe func(table string) (*insertTarget, bool)) (string, bool) {
	p := insertParser{sql: sql}
	// WITH ... before INSERT: skipped as it is.
	first := p.next()
	if first.isWord(sql, "with") {
		for {
			t := p.next()
			if t.kind == tokTrivia {
				return sql, false
			}
			if p.depth == 0 && (t.isWord(sql, "insert") || t.isWord(sql, "replace")) {
				first = t
				break
			}
		}
	}
	switch {
	case first.isWord(sql, "replace"):
	case first.isWord(sql, "insert"):
		if p.peek().isWord(sql, "or") {
			p.next()
			p.next() // the conflict resolution
		}
	default:
		return sql, false
	}
	if !p.next().isWord(sql, "into") {
		return sql, false
	}
	name := p.next()
	if name.kind != tokIdent {
		return sql, false
	}
	if p.peek().is(sql, ".") {
		if !strings.EqualFold(name.ident(sql), "main") {
			return sql, false
		}
		p.next()
		if name = p.next(); name.kind != tokIdent {
			return sql, false
		}
	}
	table := name.ident(sql)
	if p.peek().isWord(sql, "as") {
		p.next()
		p.next()
	}
	headEnd := p.pos
	target, ok := describe(table)
	if !ok {
		return sql, false
	}

	// The column list, if any.
	var cols []string
	if p.peek().is(sql, "(") {
		p.next()
		for {
			t := p.next()
			if t.kind != tokIdent {
				return sql, false
			}
			cols = append(cols, t.ident(sql))
			if t = p.next(); t.is(sql, ")") {
				break
			} else if !t.is(sql, ",") {
				return sql, false
			}
		}
	}

	fn := RowidFunc + "(" + QuoteString(table) + ")"
	if p.peek().isWord(sql, "default") {
		p.next()
		if cols != nil || !p.next().isWord(sql, "values") {
			return sql, false
		}
		rowid := target.rowid
		if target.alias != "" {
			rowid = target.alias
		}
		return sql[:headEnd] + " (" + QuoteIdent(rowid) + ") VALUES (" + fn + ")" + sql[p.pos:], true
	}

	// The rows: everything up to the upsert clause, RETURNING or the end.
	srcStart := p.pos
	srcEnd := len(sql)
	for {
		at := p.pos
		t := p.next()
		if t.kind == tokTrivia {
			break
		}
		if p.depth == 0 && (t.isWord(sql, "returning") || t.is(sql, ";") ||
			t.isWord(sql, "on") && p.peek().isWord(sql, "conflict")) {
			srcEnd = at
			break
		}
	}
	if p.depth != 0 || strings.TrimSpace(sql[srcStart:srcEnd]) == "" {
		return sql, false
	}

	if cols == nil {
		cols = target.columns
	}
	// Where the rowid is among the columns, if the statement gives it.
	at := -1
	for i, col := range cols {
		if strings.EqualFold(col, target.alias) || isRowidName(col) && !hasColumn(target.columns, col) {
			at = i
		}
	}
	var b strings.Builder
	b.WriteString(sql[:headEnd])
	b.WriteString(" (")
	for i, col := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteIdent(col))
	}
	if at < 0 {
		rowid := target.rowid
		if target.alias != "" {
			rowid = target.alias
		}
		b.WriteString(", " + QuoteIdent(rowid))
	}
	b.WriteString(") WITH _hasvc_src(")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "c%d", i+1)
	}
	b.WriteString(") AS (")
	b.WriteString(strings.TrimSpace(sql[srcStart:srcEnd]))
	b.WriteString(") SELECT ")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == at {
			fmt.Fprintf(&b, "ifnull(c%d, %s)", i+1, fn)
		} else {
			fmt.Fprintf(&b, "c%d", i+1)
		}
	}
	if at < 0 {
		b.WriteString(", " + fn)
	}
	b.WriteString(" FROM _hasvc_src WHERE true ")
	b.WriteString(strings.TrimLeft(sql[srcEnd:], " \t\r\n"))
	return b.String(), true
}

func hasColumn(cols []string, name string) bool {
	for _, c := range cols {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

// insertParser reads the significant tokens of a statement, keeping the
// depth of parentheses.
type insertParser struct {
	sql   string
	pos   int
	depth int
}

// next returns the next significant token (trivia at the end).
func (p *insertParser) next() sqlToken {
	p.pos = skipSQLTrivia(p.sql, p.pos)
	t := nextSQLToken(p.sql, p.pos)
	p.pos = t.end
	switch {
	case t.is(p.sql, "("):
		p.depth++
	case t.is(p.sql, ")"):
		p.depth--
	}
	return t
}

// peek returns the next significant token without taking it.
func (p *insertParser) peek() sqlToken {
	return nextSQLToken(p.sql, skipSQLTrivia(p.sql, p.pos))
}
