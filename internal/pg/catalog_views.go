package pg

import (
	"context"
	"fmt"
	"strings"

	"hasvc/internal/sqlite"
)

// Catalog relations answered with real rows for any query on them.
//
// information_schema.tables, information_schema.columns and pg_tables are
// what GUI tools and ORMs browse with ordinary SELECTs (filters, joins,
// ORDER BY), not with psql's fixed texts. A query that names only these
// is run, as written, on an in-memory SQLite database made for it, which
// holds them as tables filled from the session's schema. The query must
// be SQL SQLite understands after hasvc's usual rewriting; it runs in the
// sandbox and may only read.

// catalogViews are the relations, by the name a query gives them, with
// the name of their table in the in-memory database.
var catalogViews = map[string]string{
	"information_schema.tables":  "information_schema_tables",
	"information_schema.columns": "information_schema_columns",
	"pg_catalog.pg_tables":       "pg_tables",
	"pg_tables":                  "pg_tables",
}

// viewsQuery rewrites sql to name the in-memory tables, and reports
// whether every catalog relation it names is one of catalogViews.
func viewsQuery(sql string) (string, bool) {
	toks := lex(sql)
	var out strings.Builder
	found := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tkWord {
			w := strings.ToLower(t.text)
			if (w == "information_schema" || w == "pg_catalog") && i+2 < len(toks) && toks[i+1].text == "." && toks[i+2].kind == tkWord {
				name := w + "." + strings.ToLower(toks[i+2].text)
				table, ok := catalogViews[name]
				if !ok {
					return "", false // another catalog relation (or a function)
				}
				out.WriteString(table)
				found = true
				i += 2
				continue
			}
			if table, ok := catalogViews[w]; ok && (i+1 >= len(toks) || toks[i+1].text != "(") {
				out.WriteString(table)
				found = true
				continue
			}
			if catalogTables[w] && (i+1 >= len(toks) || toks[i+1].text != "(") {
				return "", false
			}
		}
		out.WriteString(t.text)
	}
	return out.String(), found
}

// viewsSchema creates the in-memory catalog tables.
const viewsSchema = `
CREATE TABLE information_schema_tables (table_catalog TEXT, table_schema TEXT, table_name TEXT, table_type TEXT,
	self_referencing_column_name TEXT, reference_generation TEXT, user_defined_type_catalog TEXT,
	user_defined_type_schema TEXT, user_defined_type_name TEXT, is_insertable_into TEXT, is_typed TEXT, commit_action TEXT);
CREATE TABLE information_schema_columns (table_catalog TEXT, table_schema TEXT, table_name TEXT, column_name TEXT,
	ordinal_position INTEGER, column_default TEXT, is_nullable TEXT, data_type TEXT, character_maximum_length INTEGER,
	numeric_precision INTEGER, numeric_scale INTEGER, udt_catalog TEXT, udt_schema TEXT, udt_name TEXT,
	is_identity TEXT, is_generated TEXT, is_updatable TEXT);
CREATE TABLE pg_tables (schemaname TEXT, tablename TEXT, tableowner TEXT, tablespace TEXT,
	hasindexes BOOLEAN, hasrules BOOLEAN, hastriggers BOOLEAN, rowsecurity BOOLEAN)`

// pgTypeNames are the PostgreSQL names of the types a column is sent as
// (information_schema's data_type, and udt_name).
var pgTypeNames = map[uint32][2]string{
	oidInt2: {"smallint", "int2"}, oidInt4: {"integer", "int4"}, oidInt8: {"bigint", "int8"},
	oidFloat8: {"double precision", "float8"}, oidText: {"text", "text"}, oidBytea: {"bytea", "bytea"},
	oidBool: {"boolean", "bool"},
}

// catalogViewQuery runs sql (rewritten by viewsQuery; PostgreSQL's
// spellings not yet rewritten) with params on the in-memory catalog
// tables. Without params (a Describe), parameters are NULL.
func (ss *session) catalogViewQuery(ctx context.Context, sql string, params []any) (*outcome, error) {
	sql, nparams := rewrite(sql, ss)
	if params == nil && nparams > 0 {
		params = make([]any, nparams)
	}
	mem, err := sqlite.Open(":memory:", sqlite.Options{Tenant: true})
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	if _, err := mem.Run(ctx, []sqlite.Statement{{SQL: viewsSchema}}, nil); err != nil {
		return nil, fmt.Errorf("catalog tables: %w", err)
	}
	objs, err := ss.schemaObjects(ctx)
	if err != nil {
		return nil, err
	}
	var stmts []sqlite.Statement
	add := func(sql string, params ...any) { stmts = append(stmts, sqlite.Statement{SQL: sql, Params: params}) }
	indexed, triggered := map[string]bool{}, map[string]bool{}
	for _, o := range objs {
		switch o.kind {
		case "index":
			indexed[o.table] = true
		case "trigger":
			triggered[o.table] = true
		}
	}
	for _, o := range objs {
		if o.kind != "table" && o.kind != "view" {
			continue
		}
		typ, insertable := "BASE TABLE", "YES"
		if o.kind == "view" {
			typ, insertable = "VIEW", "NO"
		}
		add(`INSERT INTO information_schema_tables VALUES (?, 'public', ?, ?, NULL, NULL, NULL, NULL, NULL, ?, 'NO', NULL)`,
			ss.db, o.name, typ, insertable)
		if o.kind == "table" {
			add(`INSERT INTO pg_tables VALUES ('public', ?, ?, NULL, ?, 0, ?, 0)`,
				o.name, ss.user(), boolInt(indexed[o.name]), boolInt(triggered[o.name]))
		}
		info, err := ss.inspect(ctx, "PRAGMA table_info("+quoteString(o.name)+")")
		if err != nil {
			return nil, err
		}
		for _, r := range info.Rows {
			pos, _ := r[0].(int64)
			decl, _ := r[2].(string)
			notNull, _ := r[3].(int64)
			pk, _ := r[5].(int64)
			nullable := "YES"
			if notNull != 0 || pk != 0 && strings.EqualFold(decl, "INTEGER") {
				nullable = "NO"
			}
			var dflt any
			if r[4] != nil {
				dflt = fmt.Sprint(r[4])
			}
			names, ok := pgTypeNames[declaredOID(decl)]
			if !ok {
				names = [2]string{"text", "text"} // no declared type
			}
			add(`INSERT INTO information_schema_columns VALUES (?, 'public', ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, 'pg_catalog', ?, 'NO', ?, ?)`,
				ss.db, o.name, r[1], pos+1, dflt, nullable, names[0], ss.db, names[1], "NEVER", insertable)
		}
	}
	if len(stmts) > 0 {
		if _, err := mem.Run(ctx, stmts, nil); err != nil {
			return nil, fmt.Errorf("catalog rows: %w", err)
		}
	}
	if ro, err := mem.ReadOnly(ctx, sql); err != nil {
		return nil, err
	} else if !ro {
		return nil, errorf(stateInsufficientPriv, "catalog relations are read-only")
	}
	st := sqlite.Statement{SQL: sql}
	if len(params) > 0 {
		st.Params = params
	}
	res, err := mem.Run(ctx, []sqlite.Statement{st}, nil)
	if err != nil {
		return nil, err
	}
	r := &res[0]
	cols, _ := columnTypes(r.Columns, r.DeclTypes, r.Rows, sql)
	return &outcome{cols: cols, rows: r.Rows, tag: fmt.Sprintf("SELECT %d", len(r.Rows))}, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
