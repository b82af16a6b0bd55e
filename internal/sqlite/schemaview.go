package sqlite

import (
	"strings"
)

// Tenants see their own schema only. A tenant statement that reads
// sqlite_schema (or one of its other names) is prepared a second time with
// each reference to that table replaced by a subquery of the same columns
// that leaves out hasvc's bookkeeping (tables, and their indexes and
// triggers, whose names start with _hasvc), under the table's name:
//
//	SELECT name FROM sqlite_master
//	SELECT name FROM (SELECT type, name, ... FROM main.sqlite_schema WHERE ...) AS sqlite_master
//
// SQLite itself offers no way to hide rows of its schema table: a
// temporary view cannot take the name sqlite_master, which in the temp
// schema is the temp schema's own table (and a temporary view per
// connection would cost every connection a temp schema).
//
// An alias the tenant gave stays the subquery's; a column qualified by the
// table's name (sqlite_master.name) still resolves, so the statement means
// what it did. Nothing is replaced where it would change the meaning: in
// schema statements (a view or trigger stores its text, and copies apply
// that text) and in statements that name a rowid (rowid, oid, _rowid_: a
// subquery has none). Those still see every row, as PRAGMA table_list does.

// schemaSubquery is the schema table of schema (main or temp) without
// hasvc's rows. It keeps the table's columns, in order, with the same names
// and declared types.
func schemaSubquery(schema string) string {
	return "(SELECT type, name, tbl_name, rootpage, sql FROM " + schema + ".sqlite_schema" +
		` WHERE name NOT LIKE '\_hasvc%' ESCAPE '\' AND tbl_name NOT LIKE '\_hasvc%' ESCAPE '\')`
}

// isSchemaTable reports whether table, as the authorizer names it, is the
// schema table of the main or temp schema.
func isSchemaTable(table string) bool {
	switch strings.ToLower(table) {
	case "sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema":
		return true
	}
	return false
}

// notAlias holds the words that may follow a table in a FROM clause and
// are not an alias for it.
var notAlias = map[string]bool{
	"where": true, "group": true, "having": true, "order": true, "limit": true, "window": true,
	"union": true, "intersect": true, "except": true, "join": true, "left": true, "right": true,
	"full": true, "inner": true, "cross": true, "natural": true, "outer": true, "on": true,
	"using": true, "indexed": true, "not": true, "returning": true,
}

// renameSchemaTables returns sql with each reference to a schema table
// replaced by its subquery (see above), and whether it replaced any.
// References are names, bare or quoted, optionally qualified by main or
// temp; a name in a string or a comment, a function, an alias being
// defined (AS sqlite_master) and a column qualified by another table are
// left alone.
func renameSchemaTables(sql string) (string, bool) {
	var b strings.Builder
	last := 0 // sql[:last] is written to b
	// The two significant tokens before the current one: "schema" "." is a
	// qualifier.
	var prev, prev2 sqlToken
	renamed := false
	for i := 0; i < len(sql); {
		t := nextSQLToken(sql, i)
		i = t.end
		if t.kind == tokTrivia {
			continue
		}
		if t.kind == tokIdent && isRowidName(t.ident(sql)) {
			return sql, false
		}
		if t.kind == tokIdent && !prev.isWord(sql, "as") {
			schema := ""
			switch strings.ToLower(t.ident(sql)) {
			case "sqlite_master", "sqlite_schema":
				schema = "main"
			case "sqlite_temp_master", "sqlite_temp_schema":
				schema = "temp"
			}
			start := t.start
			if schema != "" && prev.is(sql, ".") {
				switch q := prev2.kind == tokIdent && strings.ToLower(prev2.ident(sql)) == "main"; {
				case q && schema == "main":
					start = prev2.start
				case prev2.kind == tokIdent && strings.ToLower(prev2.ident(sql)) == "temp":
					schema, start = "temp", prev2.start
				default:
					schema = "" // a column of another table: t.sqlite_master
				}
			}
			next := nextSQLToken(sql, skipSQLTrivia(sql, i))
			switch {
			case schema == "" || next.is(sql, "("):
				// Not a schema table, or a function of that name.
			case next.is(sql, "."):
				// A column qualified by the table: the subquery's alias
				// is the table's name, without its schema.
				b.WriteString(sql[last:start])
				b.WriteString(sql[t.start:t.end])
				last = i
			default:
				b.WriteString(sql[last:start])
				b.WriteString(schemaSubquery(schema))
				if !(next.kind == tokIdent && (next.isWord(sql, "as") || !notAlias[strings.ToLower(sql[next.start:next.end])])) {
					b.WriteString(" AS ")
					b.WriteString(sql[t.start:t.end])
				}
				last = i
				renamed = true
			}
		}
		prev2, prev = prev, t
	}
	if !renamed {
		return sql, false
	}
	b.WriteString(sql[last:])
	return b.String(), true
}
