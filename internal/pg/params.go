package pg

import (
	"strconv"
	"strings"
)

// inferParams guesses the types of a statement's $n parameters the client
// left unspecified (0), from where they stand: a VALUES slot of an INSERT
// column, the right of "column op" (or the left of "op column"), SET
// column =, IN (...) after a column, LIMIT and OFFSET. columns returns a
// table's columns in order, with their declared types. Parameters it cannot
// place stay 0 (unknown), as PostgreSQL allows.
func inferParams(sql string, oids []uint32, columns func(table string) []tableColumn) []uint32 {
	toks := words(sql)
	var tables []string
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].is("INTO") || toks[i].is("UPDATE") || toks[i].is("FROM") || toks[i].is("JOIN") {
			j := i + 1
			if j+2 < len(toks) && toks[j+1].text == "." {
				j += 2 // schema.table
			}
			if toks[j].kind == tkWord || toks[j].kind == tkQuoted {
				tables = append(tables, identName(toks[j].text))
			}
		}
	}
	decls := map[string]string{}
	var order []string // the first table's columns, for INSERT without a list
	for k, tb := range tables {
		for _, c := range columns(tb) {
			if _, dup := decls[c.name]; !dup {
				decls[c.name] = c.decl
			}
			if k == 0 {
				order = append(order, c.name)
			}
		}
	}
	set := func(tok token, decl string) {
		if tok.kind != tkParam {
			return
		}
		n, err := strconv.Atoi(tok.text[1:])
		if err != nil || n < 1 || n > len(oids) || oids[n-1] != 0 {
			return
		}
		if oid := paramOID(decl); oid != 0 {
			oids[n-1] = oid
		}
	}
	columnAt := func(i int) (string, bool) {
		if i < 0 || i >= len(toks) || (toks[i].kind != tkWord && toks[i].kind != tkQuoted) {
			return "", false
		}
		d, ok := decls[identName(toks[i].text)]
		return d, ok
	}
	for i, t := range toks {
		switch {
		case t.kind == tkParam && i+1 < len(toks) && toks[i+1].text == "::":
			// $1::int8
			if typ, _ := castType(toks, i+2); typ != "" {
				set(t, typ)
			}
		case isOperator(t.text) && (i == 0 || !isOperator(toks[i-1].text)) || t.is("LIKE"):
			l, r := i-1, i+1
			for r < len(toks) && isOperator(toks[r].text) {
				r++
			}
			if d, ok := columnAt(l); ok && r < len(toks) {
				set(toks[r], d)
			}
			if d, ok := columnAt(r); ok && l >= 0 {
				set(toks[l], d)
			}
		case t.is("IN") && i+1 < len(toks) && toks[i+1].text == "(":
			if d, ok := columnAt(i - 1); ok {
				for j := i + 2; j < len(toks) && toks[j].text != ")"; j++ {
					set(toks[j], d)
				}
			}
		case (t.is("LIMIT") || t.is("OFFSET")) && i+1 < len(toks):
			set(toks[i+1], "INTEGER")
		case t.is("VALUES") && (toks[0].is("INSERT") || toks[0].is("REPLACE")):
			cols := insertColumns(toks[:i], order)
			slot, depth := 0, 0
		values:
			for j := i + 1; j < len(toks); j++ {
				switch toks[j].text {
				case "(":
					depth++
					if depth == 1 {
						slot = 0
					}
				case ")":
					depth--
				case ",":
					if depth == 1 {
						slot++
					}
				default:
					if depth == 0 {
						break values
					}
					if depth == 1 && slot < len(cols) {
						set(toks[j], decls[cols[slot]])
					}
				}
			}
		}
	}
	return oids
}

// tableColumn is a column of a table: lower-case name, declared type.
type tableColumn struct{ name, decl string }

// insertColumns reads INSERT INTO t (a, b) before VALUES, or all columns.
func insertColumns(toks []token, order []string) []string {
	var cols []string
	in := false
	for _, t := range toks {
		switch {
		case t.text == "(":
			in = true
		case t.text == ")":
			in = false
		case in && (t.kind == tkWord || t.kind == tkQuoted):
			cols = append(cols, identName(t.text))
		}
	}
	if cols == nil {
		return order
	}
	return cols
}

func isOperator(s string) bool {
	switch s {
	case "=", "<", ">", "!":
		return true
	}
	return false
}

// identName is an identifier's lower-case name, quotes removed.
func identName(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strings.ReplaceAll(strings.Trim(s, `"`), `""`, `"`)
	}
	return strings.ToLower(s)
}

// paramOID is the parameter type for a column's declared type.
func paramOID(decl string) uint32 {
	switch oid := declaredOID(decl); oid {
	case oidBool, oidInt8, oidFloat8, oidText, oidBytea:
		return oid
	}
	return 0
}
