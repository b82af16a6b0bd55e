package pg

import (
	"context"
	"fmt"
	"strings"

	"hasvc/internal/sqlite"
)

// Catalog queries answered by running them.
//
// GUI tools, ORMs and pgcli browse the catalog with ordinary SELECTs
// (joins, filters, ORDER BY) rather than psql's fixed texts. A query that
// names only relations of catalogSchema, or casts to regclass and its
// kind, is run as written on an in-memory SQLite database made for it
// (catalog_tables.go), with the functions catalog queries call. The query
// must be SQL SQLite understands after hasvc's usual rewriting; it runs in
// the sandbox and may only read.

// viewsQuery rewrites sql to name the in-memory tables, and reports
// whether it reads the catalog (a catalog relation, a cast to regclass or
// its kind, or a catalog function) and every catalog relation it names
// is one of catalogRelations.
func viewsQuery(sql string) (string, bool) {
	toks := lex(sql)
	var out strings.Builder
	found := false
	prev := "" // the previous significant token
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tkWord {
			w := strings.ToLower(t.text)
			call := i+1 < len(toks) && toks[i+1].text == "("
			if (w == "information_schema" || w == "pg_catalog") && i+2 < len(toks) && toks[i+1].text == "." && toks[i+2].kind == tkWord {
				name := strings.ToLower(toks[i+2].text)
				if w == "pg_catalog" && prev == "::" { // a type: the cast's rewrite reads it
					out.WriteString(t.text + "." + toks[i+2].text)
					found = found || strings.HasPrefix(sqliteType(name), regPrefix)
					i += 2
					prev = name
					continue
				}
				if w == "pg_catalog" && i+3 < len(toks) && toks[i+3].text == "(" {
					out.WriteString(toks[i+2].text) // a function: rewrite drops the qualifier anyway
					found = found || catalogFunctions[name]
					i += 2
					prev = name
					continue
				}
				table, ok := catalogRelations[w+"."+name]
				if !ok {
					return "", false
				}
				out.WriteString(table)
				found = true
				i += 2
				prev = name
				continue
			}
			if table, ok := catalogRelations[w]; ok && !call && prev != "." {
				out.WriteString(table)
				found = true
				prev = w
				continue
			}
			if catalogTables[w] && !call && prev != "." {
				return "", false
			}
			if prev == "::" && strings.HasPrefix(sqliteType(w), regPrefix) || call && catalogFunctions[w] {
				found = true
			}
		}
		if t.significant() {
			prev = strings.ToLower(t.text)
		}
		out.WriteString(t.text)
	}
	return out.String(), found
}

// pgTypeNames are the PostgreSQL names of the types a column is sent as
// (information_schema's data_type, and udt_name).
var pgTypeNames = map[uint32][2]string{
	oidInt2: {"smallint", "int2"}, oidInt4: {"integer", "int4"}, oidInt8: {"bigint", "int8"},
	oidFloat8: {"double precision", "float8"}, oidText: {"text", "text"}, oidBytea: {"bytea", "bytea"},
	oidBool: {"boolean", "bool"},
}

// catalogViewQuery runs sql (rewritten by viewsQuery; PostgreSQL's
// spellings not yet rewritten) with params on the in-memory catalog
// tables. Without params (a Describe), parameters are NULL. A query that
// SQLite cannot prepare (PostgreSQL syntax beyond the rewrites: ARRAY(
// SELECT ...), functions it lacks) gets, as other catalog queries hasvc
// does not know, no rows and the columns its select list names
// (selectColumns of original).
func (ss *session) catalogViewQuery(ctx context.Context, sql, original string, params []any) (*outcome, error) {
	sql, nparams := rewrite(sql, ss)
	sql = catalogOperators(sql)
	if params == nil && nparams > 0 {
		params = make([]any, nparams)
	}
	mem, err := sqlite.Open(":memory:", sqlite.Options{Tenant: true, Functions: true})
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	if _, err := mem.Run(ctx, []sqlite.Statement{{SQL: catalogSchema}}, nil); err != nil {
		return nil, fmt.Errorf("catalog tables: %w", err)
	}
	st, err := ss.fillCatalog(ctx, mem)
	if err != nil {
		return nil, fmt.Errorf("catalog rows: %w", err)
	}
	if err := st.register(mem); err != nil {
		return nil, err
	}
	if ro, err := mem.ReadOnly(ctx, sql); err != nil {
		return textResult(selectColumns(original), nil), nil
	} else if !ro {
		return nil, errorf(stateInsufficientPriv, "catalog relations are read-only")
	}
	stmt := sqlite.Statement{SQL: sql}
	if len(params) > 0 {
		stmt.Params = params
	}
	res, err := mem.Run(ctx, []sqlite.Statement{stmt}, nil)
	if err != nil {
		return nil, err
	}
	r := &res[0]
	cols, _ := columnTypes(r.Columns, r.DeclTypes, r.Rows, sql)
	return &outcome{cols: cols, rows: r.Rows, tag: fmt.Sprintf("SELECT %d", len(r.Rows))}, nil
}

// catalogOperators rewrites the PostgreSQL operators catalog queries use
// into SQLite's: x ~ re (and !~, ~*, !~*) into x REGEXP re (with
// catalogFunctions' regexp), x = ANY(array) into x IN (the array's
// elements), x <> ALL(array) into x NOT IN (...), and ARRAY[a, b] into
// an array (as JSON, which hasvc_array reads).
func catalogOperators(sql string) string {
	toks := lex(sql)
	out := make([]string, 0, len(toks))
	// closers[depth] is what the ")" closing a rewritten group becomes.
	var closers []string
	sig := func(i int) int { // the next significant token from i
		for ; i < len(toks); i++ {
			if toks[i].significant() {
				return i
			}
		}
		return -1
	}
	operand := func() bool { // does an operand end just before?
		for j := len(out) - 1; j >= 0; j-- {
			s := strings.TrimSpace(out[j])
			if s == "" || strings.HasPrefix(s, "--") || strings.HasPrefix(s, "/*") {
				continue
			}
			c := s[len(s)-1]
			return c == ')' || c == '\'' || c == '"' || isWordByte(c) && !isKeyword(strings.ToLower(s))
		}
		return false
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.is("OPERATOR"):
			// OPERATOR(pg_catalog.~) and the like: the operator alone.
			j := sig(i + 1)
			if j < 0 || toks[j].text != "(" {
				break
			}
			k := j + 1
			for k < len(toks) && toks[k].text != ")" {
				k++
			}
			var op strings.Builder
			for _, it := range toks[j+1 : min(k, len(toks))] {
				if !it.is("pg_catalog") && it.text != "." {
					op.WriteString(strings.TrimSpace(it.text))
				}
			}
			out = append(out, " ")
			rest := catalogOperators("x " + op.String() + " y")
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(rest, "x"), "y"))
			i = k
			continue
		case t.is("COLLATE"):
			// COLLATE pg_catalog.default (or "C"): SQLite's own.
			j := sig(i + 1)
			if j >= 0 && toks[j].is("pg_catalog") {
				if k := sig(j + 1); k >= 0 && toks[k].text == "." {
					if m := sig(k + 1); m >= 0 {
						i = m
						continue
					}
				}
			}
		case t.text == "~" && operand():
			op := " REGEXP "
			if j := sig(i + 1); j >= 0 && toks[j].text == "*" {
				op, i = " REGEXP '(?i)' || ", j
			}
			out = append(out, op)
			continue
		case t.text == "!" && i+1 < len(toks) && toks[i+1].text == "~":
			op := " NOT REGEXP "
			i++
			if j := sig(i + 1); j >= 0 && toks[j].text == "*" {
				op, i = " NOT REGEXP '(?i)' || ", j
			}
			out = append(out, op)
			continue
		case t.text == "=" || t.text == "<" || t.text == "!":
			// = ANY( / <> ALL( / != ALL(
			k, neg := i, t.text != "="
			if neg {
				if i+1 >= len(toks) || toks[i+1].text != ">" && toks[i+1].text != "=" || t.text == "<" && toks[i+1].text != ">" {
					break
				}
				k = i + 1
			}
			j := sig(k + 1)
			if j < 0 || toks[j].kind != tkWord {
				break
			}
			if !(toks[j].is("ANY") && !neg || toks[j].is("ALL") && neg) {
				break
			}
			p := sig(j + 1)
			if p < 0 || toks[p].text != "(" {
				break
			}
			if neg {
				out = append(out, " NOT")
			}
			out = append(out, " IN (SELECT value FROM json_each(hasvc_array(")
			closers = append(closers, ")))")
			i = p
			continue
		case t.is("ARRAY"):
			if j := sig(i + 1); j >= 0 && toks[j].text == "[" {
				depth, k := 0, j
				for ; k < len(toks); k++ {
					if toks[k].text == "[" {
						depth++
					} else if toks[k].text == "]" {
						if depth--; depth == 0 {
							break
						}
					}
				}
				if k < len(toks) {
					inner := make([]string, 0, k-j)
					for _, it := range toks[j+1 : k] {
						inner = append(inner, it.text)
					}
					out = append(out, "json_array("+catalogOperators(strings.Join(inner, ""))+")")
					i = k
					continue
				}
			}
		case t.text == "(":
			closers = append(closers, ")")
		case t.text == ")":
			if n := len(closers); n > 0 {
				out = append(out, closers[n-1])
				closers = closers[:n-1]
				continue
			}
		}
		out = append(out, t.text)
	}
	return strings.Join(out, "")
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
