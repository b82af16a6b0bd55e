package pg

import (
	"bytes"
	"context"
	"fmt"
	"hasvc/internal/sqlite"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// This file is the pg_catalog shim: the catalog queries that psql's \dt,
// \d <table>, \l and \dn send (psql 15's text), answered from SQLite's own
// schema. Other queries on catalog tables get an empty result with the
// columns their select list names, so browsing tools see "nothing there"
// rather than an error. SQLite objects get oids 16384 + their rowid in
// sqlite_schema, stable while the schema is.

// catalogTables are the catalog relations a query may name without the
// pg_catalog. qualifier.
var catalogTables = map[string]bool{
	"pg_class": true, "pg_namespace": true, "pg_attribute": true, "pg_type": true,
	"pg_database": true, "pg_index": true, "pg_constraint": true, "pg_proc": true,
	"pg_settings": true, "pg_roles": true, "pg_user": true, "pg_tables": true,
	"pg_views": true, "pg_indexes": true, "pg_am": true, "pg_description": true,
	"pg_inherits": true, "pg_policy": true, "pg_trigger": true, "pg_attrdef": true,
	"pg_collation": true, "pg_extension": true, "pg_stat_activity": true,
	"pg_enum": true, "pg_range": true, "pg_sequence": true, "pg_matviews": true,
	"pg_statistic_ext": true, "pg_publication": true, "pg_depend": true,
	"pg_foreign_table": true, "pg_partitioned_table": true,
}

const oidBase = 16384

// isCatalogQuery reports whether sql reads PostgreSQL's catalog.
func isCatalogQuery(sql string) bool {
	var lower [64]byte // no name it looks for is longer
	for i := 0; i < len(sql); {
		var t token
		t, i = nextToken(sql, i)
		if t.kind != tkWord || len(t.text) > len(lower) {
			continue
		}
		w := lower[:len(t.text)]
		for k := range len(t.text) {
			c := t.text[k]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			w[k] = c
		}
		next := "" // the token right after the word
		if i < len(sql) {
			nt, _ := nextToken(sql, i)
			next = nt.text
		}
		switch {
		case (string(w) == "pg_catalog" || string(w) == "information_schema") && next == ".":
			return true
		case catalogTables[string(w)] && next != "(":
			return true
		case bytes.HasPrefix(w, []byte(regPrefix)) || catalogFunctions[string(w)] && next == "(":
			return true // a cast to regclass..., or format_type(...)
		}
	}
	return false
}

// catalog answers a catalog query (params: its parameters, nil for a
// Describe).
func (ss *session) catalog(ctx context.Context, sql string, params []any) (*outcome, error) {
	has := func(parts ...string) bool {
		for _, p := range parts {
			if !strings.Contains(sql, p) {
				return false
			}
		}
		return true
	}
	switch {
	case has(`as "Schema"`, "c.relkind IN (", "pg_catalog.pg_class c"):
		return ss.listRelations(ctx, sql)
	case has("SELECT c.oid,", "c.relname", "pg_catalog.pg_table_is_visible(c.oid)") && !has("$1"):
		return ss.findRelations(ctx, sql)
	case has("c.relchecks, c.relkind, c.relhasindex", "c.relrowsecurity"):
		return ss.relationInfo(ctx, sql)
	case has("SELECT a.attname,", "format_type(a.atttypid, a.atttypmod)", "pg_catalog.pg_attribute a"):
		return ss.relationColumns(ctx, sql)
	case has("SELECT c2.relname, i.indisprimary, i.indisunique"):
		return ss.relationIndexes(ctx, sql)
	case has("generate_subscripts(confkey, 1)", "fk.contype = 'f'"):
		return ss.foreignKeyColumns(ctx)
	case has("unnest(current_schemas("):
		return textResult([]string{"unnest"}, [][]any{{"pg_catalog"}, {"public"}}), nil
	case has("format_type(tp, tpm)", ") s(name, tp, tpm)"):
		return gdesc(sql), nil
	case has("pg_get_viewdef("):
		return ss.viewDefinition(ctx, sql)
	case has("AS TABLE_CAT", "AS TABLE_TYPE", "FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c"):
		return ss.jdbcTables(ctx, sql)
	case has("FROM pg_catalog.pg_database d"):
		return ss.listDatabases(ctx)
	case has("FROM pg_catalog.pg_namespace n", `AS "Name"`):
		return textResult([]string{"Name", "Owner"}, [][]any{{"public", ss.user()}}), nil
	}
	if q, ok := viewsQuery(sql); ok {
		return ss.catalogViewQuery(ctx, q, sql, params)
	}
	return textResult(selectColumns(sql), nil), nil
}

// gdesc answers psql's \gdesc, which describes a query's columns with
// SELECT name AS "Column", format_type(tp, tpm) AS "Type" FROM (VALUES
// ('id', '23'::pg_catalog.oid, -1), ...) s(name, tp, tpm).
func gdesc(sql string) *outcome {
	var rows [][]any
	var tuple []token
	depth := 0
	for _, t := range words(sql) {
		switch t.text {
		case "(":
			depth++
			if depth == 2 {
				tuple = tuple[:0]
			}
			continue
		case ")":
			depth--
			if depth == 1 && len(tuple) > 0 {
				rows = append(rows, gdescRow(tuple))
			}
			continue
		}
		if depth == 2 {
			tuple = append(tuple, t)
		}
	}
	return textResult([]string{"Column", "Type"}, rows)
}

// gdescRow reads one (name, 'oid'::pg_catalog.oid, typmod) of \gdesc.
func gdescRow(tuple []token) []any {
	var strs []string
	typmod := int64(-1)
	for i, t := range tuple {
		switch t.kind {
		case tkString:
			if t.text[0] == 'E' || t.text[0] == 'e' {
				strs = append(strs, unescapeE(t.text[2:len(t.text)-1]))
			} else {
				strs = append(strs, strings.ReplaceAll(t.text[1:len(t.text)-1], "''", "'"))
			}
		case tkNumber:
			n, _ := strconv.ParseInt(t.text, 10, 64)
			if i > 0 && tuple[i-1].text == "-" {
				n = -n
			}
			typmod = n
		}
	}
	if len(strs) < 2 {
		return []any{nil, nil}
	}
	oid, _ := strconv.ParseInt(strs[1], 10, 64)
	return []any{strs[0], formatType(oid, typmod)}
}

// foreignKeyColumns answers pgcli's foreign key query: one row per column
// of each foreign key (parentschema, parenttable, parentcolumn,
// childschema, childtable, childcolumn).
func (ss *session) foreignKeyColumns(ctx context.Context) (*outcome, error) {
	names := []string{"parentschema", "parenttable", "parentcolumn", "childschema", "childtable", "childcolumn"}
	objs, err := ss.schemaObjects(ctx)
	if err != nil {
		return nil, err
	}
	var rows [][]any
	for _, o := range objs {
		if o.kind != "table" {
			continue
		}
		fks, err := ss.inspect(ctx, "PRAGMA foreign_key_list("+sqlite.QuoteString(o.name)+")")
		if err != nil {
			return nil, err
		}
		for _, r := range fks.Rows {
			parent, to := fmt.Sprint(r[2]), r[4]
			if to == nil { // REFERENCES parent: its primary key
				if pk, err := ss.inspect(ctx, "SELECT name FROM pragma_table_info("+sqlite.QuoteString(parent)+") WHERE pk = 1"); err == nil && len(pk.Rows) > 0 {
					to = pk.Rows[0][0]
				}
			}
			rows = append(rows, []any{"public", parent, to, "public", o.name, r[3]})
		}
	}
	return textResult(names, rows), nil
}

// textResult is a result whose columns are all text.
func textResult(names []string, rows [][]any) *outcome {
	cols := make([]column, len(names))
	for i, n := range names {
		cols[i] = column{n, oidText}
	}
	return &outcome{cols: cols, rows: rows, tag: "SELECT " + strconv.Itoa(len(rows))}
}

// schemaObject is a row of sqlite_schema that a tenant sees.
type schemaObject struct {
	oid   int64
	kind  string // table, view, index, trigger
	name  string
	table string
	sql   string
}

func (ss *session) schemaObjects(ctx context.Context) ([]schemaObject, error) {
	res, err := ss.inspect(ctx, `SELECT rowid, type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema
		WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_hasvc%' ESCAPE '\' ORDER BY rowid`)
	if err != nil {
		return nil, err
	}
	objs := make([]schemaObject, 0, len(res.Rows))
	for _, r := range res.Rows {
		rowid, _ := r[0].(int64)
		o := schemaObject{oid: oidBase + rowid}
		o.kind, _ = r[1].(string)
		o.name, _ = r[2].(string)
		o.table, _ = r[3].(string)
		o.sql, _ = r[4].(string)
		objs = append(objs, o)
	}
	return objs, nil
}

var (
	relkindList   = regexp.MustCompile(`c\.relkind IN \(([^)]*)\)`)
	relnameRegex  = regexp.MustCompile(`c\.relname OPERATOR\(pg_catalog\.~\) '((?:[^']|'')*)'`)
	nspnameRegex  = regexp.MustCompile(`n\.nspname OPERATOR\(pg_catalog\.~\) '((?:[^']|'')*)'`)
	quotedOID     = regexp.MustCompile(`'(\d+)'`)
	relkindOfKind = map[string]string{"table": "r", "view": "v", "index": "i"}
	kindName      = map[string]string{"r": "table", "v": "view", "i": "index"}
)

// nameFilter reads psql's name pattern (\dt t*), or matches everything.
func nameFilter(sql string, re *regexp.Regexp) (func(string) bool, error) {
	m := re.FindStringSubmatch(sql)
	if m == nil {
		return func(string) bool { return true }, nil
	}
	pat, err := regexp.Compile(strings.ReplaceAll(m[1], "''", "'"))
	if err != nil {
		return nil, errorf(stateInvalidParamValue, "invalid name pattern: %v", err)
	}
	return pat.MatchString, nil
}

// listRelations answers \dt, \dv, \di and \d without a name.
func (ss *session) listRelations(ctx context.Context, sql string) (*outcome, error) {
	kinds := map[string]bool{}
	if m := relkindList.FindStringSubmatch(sql); m != nil {
		for _, k := range strings.Split(m[1], ",") {
			kinds[strings.Trim(strings.TrimSpace(k), "'")] = true
		}
	}
	rels, err := ss.relations(ctx, sql)
	if err != nil {
		return nil, err
	}
	var rows [][]any
	for _, o := range rels {
		if !kinds[relkindOfKind[o.kind]] {
			continue
		}
		row := []any{"public", o.name, o.kind, ss.user()}
		if strings.Contains(sql, `as "Table"`) {
			row = append(row, o.table)
		}
		rows = append(rows, row)
	}
	sortRows(rows, 1) // psql's ORDER BY 1, 2: the schema is always public
	return textResult(selectColumns(sql), rows), nil
}

// relations returns the tables, views and indexes whose names match the
// name and schema patterns psql put in sql (all of them if there are none).
func (ss *session) relations(ctx context.Context, sql string) ([]schemaObject, error) {
	match, err := nameFilter(sql, relnameRegex)
	if err != nil {
		return nil, err
	}
	schemaOK, err := nameFilter(sql, nspnameRegex)
	if err != nil {
		return nil, err
	}
	if !schemaOK("public") {
		return nil, nil
	}
	objs, err := ss.schemaObjects(ctx)
	if err != nil {
		return nil, err
	}
	var out []schemaObject
	for _, o := range objs {
		if relkindOfKind[o.kind] != "" && match(o.name) {
			out = append(out, o)
		}
	}
	return out, nil
}

// sortRows orders rows by their text columns cols, in turn.
func sortRows(rows [][]any, cols ...int) {
	slices.SortStableFunc(rows, func(a, b []any) int {
		for _, c := range cols {
			if n := strings.Compare(fmt.Sprint(a[c]), fmt.Sprint(b[c])); n != 0 {
				return n
			}
		}
		return 0
	})
}

// findRelations answers \d <pattern>'s first query: oid, schema, name.
func (ss *session) findRelations(ctx context.Context, sql string) (*outcome, error) {
	rels, err := ss.relations(ctx, sql)
	if err != nil {
		return nil, err
	}
	var rows [][]any
	for _, o := range rels {
		rows = append(rows, []any{strconv.FormatInt(o.oid, 10), "public", o.name})
	}
	sortRows(rows, 1) // psql's ORDER BY 1, 2: the schema is always public
	out := textResult([]string{"oid", "nspname", "relname"}, rows)
	out.cols[0].oid = oidOID
	return out, nil
}

// objectByOID finds the object a query names by a quoted oid.
func (ss *session) objectByOID(ctx context.Context, sql string) (*schemaObject, error) {
	m := quotedOID.FindStringSubmatch(sql)
	if m == nil {
		return nil, nil
	}
	oid, _ := strconv.ParseInt(m[1], 10, 64)
	objs, err := ss.schemaObjects(ctx)
	if err != nil {
		return nil, err
	}
	for i := range objs {
		if objs[i].oid == oid {
			return &objs[i], nil
		}
	}
	return nil, nil
}

// relationInfo answers \d's table-properties query (psql 15's 15 columns).
func (ss *session) relationInfo(ctx context.Context, sql string) (*outcome, error) {
	names := []string{"relchecks", "relkind", "relhasindex", "relhasrules", "relhastriggers",
		"relrowsecurity", "relforcerowsecurity", "relhasoids", "relispartition", "?column?",
		"reltablespace", "reloftype", "relpersistence", "relreplident", "amname"}
	o, err := ss.objectByOID(ctx, sql)
	if err != nil || o == nil {
		return textResult(names, nil), err
	}
	idx, err := ss.indexes(ctx, o)
	if err != nil {
		return nil, err
	}
	hasIndex := "f"
	if len(idx) > 0 {
		hasIndex = "t"
	}
	am := "heap"
	if o.kind != "table" {
		am = ""
	}
	row := []any{"0", relkindOfKind[o.kind], hasIndex, "f", "f", "f", "f", "f", "f", "", "0", "", "p", "d", am}
	return textResult(names, [][]any{row}), nil
}

// relationColumns answers \d's column query: name, type, default, not
// null, collation, identity, generated.
func (ss *session) relationColumns(ctx context.Context, sql string) (*outcome, error) {
	names := []string{"attname", "format_type", "pg_get_expr", "attnotnull", "attcollation", "attidentity", "attgenerated"}
	o, err := ss.objectByOID(ctx, sql)
	if err != nil || o == nil {
		return textResult(names, nil), err
	}
	res, err := ss.inspect(ctx, "PRAGMA table_info("+sqlite.QuoteString(o.name)+")")
	if err != nil {
		return nil, err
	}
	var rows [][]any
	for _, r := range res.Rows {
		notNull, _ := r[3].(int64)
		if pk, _ := r[5].(int64); pk != 0 && strings.EqualFold(fmt.Sprint(r[2]), "INTEGER") {
			notNull = 1 // a rowid alias is never NULL
		}
		typ := strings.ToLower(fmt.Sprint(r[2]))
		var dflt any
		if r[4] != nil {
			dflt = fmt.Sprint(r[4])
		}
		rows = append(rows, []any{r[1], typ, dflt, notNull, nil, "", ""})
	}
	out := textResult(names, rows)
	out.cols[3].oid = oidBool // pgcli's \d tests it for truth
	return out, nil
}

// index is an index as \d shows it.
type index struct {
	name    string
	primary bool
	unique  bool
	cons    bool // made by a PRIMARY KEY or UNIQUE constraint
	columns []string
}

// indexes lists a table's indexes, with the primary key first.
func (ss *session) indexes(ctx context.Context, o *schemaObject) ([]index, error) {
	if o.kind != "table" {
		return nil, nil
	}
	info, err := ss.inspect(ctx, "PRAGMA table_info("+sqlite.QuoteString(o.name)+")")
	if err != nil {
		return nil, err
	}
	var pk []string
	for pos := int64(1); ; pos++ {
		found := false
		for _, r := range info.Rows {
			if n, _ := r[5].(int64); n == pos {
				pk = append(pk, fmt.Sprint(r[1]))
				found = true
			}
		}
		if !found {
			break
		}
	}
	list, err := ss.inspect(ctx, "PRAGMA index_list("+sqlite.QuoteString(o.name)+")")
	if err != nil {
		return nil, err
	}
	var out []index
	if len(pk) > 0 {
		out = append(out, index{name: o.name + "_pkey", primary: true, unique: true, cons: true, columns: pk})
	}
	for _, r := range list.Rows {
		origin := fmt.Sprint(r[3])
		if origin == "pk" {
			continue // shown above
		}
		ix := index{name: fmt.Sprint(r[1])}
		ix.unique = fmt.Sprint(r[2]) == "1"
		ii, err := ss.inspect(ctx, "PRAGMA index_info("+sqlite.QuoteString(ix.name)+")")
		if err != nil {
			return nil, err
		}
		for _, c := range ii.Rows {
			if c[2] == nil {
				ix.columns = append(ix.columns, "expression")
			} else {
				ix.columns = append(ix.columns, fmt.Sprint(c[2]))
			}
		}
		if origin == "u" {
			ix.cons = true
			ix.name = o.name + "_" + strings.Join(ix.columns, "_") + "_key"
		}
		out = append(out, ix)
	}
	return out, nil
}

// relationIndexes answers \d's index query (psql 15's 12 columns).
func (ss *session) relationIndexes(ctx context.Context, sql string) (*outcome, error) {
	names := []string{"relname", "indisprimary", "indisunique", "indisclustered", "indisvalid",
		"pg_get_indexdef", "pg_get_constraintdef", "contype", "condeferrable", "condeferred",
		"indisreplident", "reltablespace"}
	o, err := ss.objectByOID(ctx, sql)
	if err != nil || o == nil {
		return textResult(names, nil), err
	}
	idx, err := ss.indexes(ctx, o)
	if err != nil {
		return nil, err
	}
	tf := func(b bool) string {
		if b {
			return "t"
		}
		return "f"
	}
	var rows [][]any
	for _, ix := range idx {
		create := "CREATE INDEX "
		if ix.unique {
			create = "CREATE UNIQUE INDEX "
		}
		def := create + ix.name + " ON public." + o.name + " USING btree (" + strings.Join(ix.columns, ", ") + ")"
		var condef, contype any
		if ix.cons {
			if ix.primary {
				condef, contype = "PRIMARY KEY ("+strings.Join(ix.columns, ", ")+")", "p"
			} else {
				condef, contype = "UNIQUE ("+strings.Join(ix.columns, ", ")+")", "u"
			}
		}
		rows = append(rows, []any{ix.name, tf(ix.primary), tf(ix.unique), "f", "t", def, condef, contype, "f", "f", "f", "0"})
	}
	return textResult(names, rows), nil
}

// viewDefinition answers pg_get_viewdef(oid).
func (ss *session) viewDefinition(ctx context.Context, sql string) (*outcome, error) {
	o, err := ss.objectByOID(ctx, sql)
	if err != nil {
		return nil, err
	}
	var rows [][]any
	if o != nil {
		rows = [][]any{{viewBody(o.sql)}}
	}
	return textResult([]string{"pg_get_viewdef"}, rows), nil
}

var (
	jdbcRelname = regexp.MustCompile(`c\.relname LIKE '((?:[^']|'')*)'`)
	jdbcNspname = regexp.MustCompile(`n\.nspname LIKE '((?:[^']|'')*)'`)
	jdbcRelkind = regexp.MustCompile(`c\.relkind = '(\w)' AND n\.nspname !~ '\^pg_'`)
)

// likeMatcher turns a LIKE pattern into a matcher (no pattern: all).
func likeMatcher(sql string, re *regexp.Regexp) func(string) bool {
	m := re.FindStringSubmatch(sql)
	if m == nil {
		return func(string) bool { return true }
	}
	var b strings.Builder
	b.WriteString("^")
	pat := strings.ReplaceAll(m[1], "''", "'")
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		case '\\':
			if i+1 < len(pat) {
				i++
				b.WriteString(regexp.QuoteMeta(pat[i : i+1]))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re2 := regexp.MustCompile(b.String())
	return re2.MatchString
}

// jdbcTables answers pgjdbc's DatabaseMetaData.getTables.
func (ss *session) jdbcTables(ctx context.Context, sql string) (*outcome, error) {
	names := []string{"table_cat", "table_schem", "table_name", "table_type", "remarks",
		"type_cat", "type_schem", "type_name", "self_referencing_col_name", "ref_generation"}
	want := map[string]string{}
	for _, m := range jdbcRelkind.FindAllStringSubmatch(sql, -1) {
		want[kindName[m[1]]] = strings.ToUpper(kindName[m[1]])
	}
	match := likeMatcher(sql, jdbcRelname)
	if !likeMatcher(sql, jdbcNspname)("public") {
		return textResult(names, nil), nil
	}
	objs, err := ss.schemaObjects(ctx)
	if err != nil {
		return nil, err
	}
	var rows [][]any
	for _, o := range objs {
		if typ, ok := want[o.kind]; ok && match(o.name) {
			rows = append(rows, []any{nil, "public", o.name, typ, nil, "", "", "", "", ""})
		}
	}
	sortRows(rows, 3, 2) // ORDER BY TABLE_TYPE, TABLE_SCHEM (public), TABLE_NAME
	return textResult(names, rows), nil
}

// listDatabases answers \l with the databases the token may use.
func (ss *session) listDatabases(ctx context.Context) (*outcome, error) {
	cfgs, err := ss.srv.DB.List(ctx)
	if err != nil {
		return nil, err
	}
	var rows [][]any
	for _, c := range cfgs {
		if ss.principal.Covers(c.Name) {
			rows = append(rows, []any{c.Name, ss.user(), "UTF8", "C", "C", nil, "libc", nil})
		}
	}
	return textResult([]string{"Name", "Owner", "Encoding", "Collate", "Ctype", "ICU Locale", "Locale Provider", "Access privileges"}, rows), nil
}

// selectColumns names the columns of a query's top-level select list: the
// alias, else the last name of the expression, else "?column?".
func selectColumns(sql string) []string {
	toks := lex(sql)
	depth := 0
	var names []string
	var item []token
	started := false
	flush := func() {
		var sig []token
		for _, t := range item {
			if t.significant() {
				sig = append(sig, t)
			}
		}
		item = item[:0]
		if len(sig) == 0 {
			return
		}
		name := "?column?"
		last := sig[len(sig)-1]
		switch {
		case len(sig) >= 2 && sig[len(sig)-2].is("AS"):
			name = strings.Trim(last.text, `"`)
		case last.kind == tkQuoted || last.kind == tkWord && !last.is("END"):
			name = strings.Trim(last.text, `"`)
		case last.text == ")" && sig[0].kind == tkWord:
			name = strings.ToLower(sig[0].text)
			if len(sig) > 2 && sig[1].text == "." {
				name = strings.ToLower(sig[2].text)
			}
		}
		names = append(names, name)
	}
	for _, t := range toks {
		if !started {
			if t.is("SELECT") {
				started = true
			}
			continue
		}
		switch {
		case t.text == "(":
			depth++
		case t.text == ")":
			depth--
		case depth == 0 && t.text == ",":
			flush()
			continue
		case depth == 0 && (t.is("FROM") || t.is("WHERE") || t.is("UNION") || t.is("ORDER") || t.is("LIMIT") || t.text == ";"):
			flush()
			if len(names) == 0 {
				return []string{"?column?"}
			}
			return names
		case depth == 0 && len(item) == 0 && t.is("DISTINCT"):
			continue
		}
		item = append(item, t)
	}
	flush()
	if len(names) == 0 {
		return []string{"?column?"}
	}
	return names
}
