package pg

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// inferParams guesses the types of a statement's $n parameters the client
// left unspecified (0), from where they stand (columnSlots), and from
// casts ($1::int8). columns returns a table's columns in order, with their
// declared types. Parameters it cannot place stay 0 (unknown), as
// PostgreSQL allows.
func inferParams(sql string, oids []uint32, columns func(table string) []tableColumn) []uint32 {
	toks := words(sql)
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
	for i, t := range toks {
		if t.kind == tkParam && i+1 < len(toks) && toks[i+1].text == "::" {
			if typ, _ := castType(toks, i+2); typ != "" {
				set(t, typ)
			}
		}
	}
	columnSlots(toks, columns, func(i int, decl string) { set(toks[i], decl) })
	return oids
}

// columnSlots calls visit with the index of every token of toks
// (significant tokens of one statement) that stands where a value of a
// known column goes, and that column's declared type: a VALUES slot of an
// INSERT column, the right of "column op" (or the left of "op column"),
// SET column =, IN (...) after a column; LIMIT and OFFSET take an INTEGER.
func columnSlots(toks []token, columns func(table string) []tableColumn, visit func(i int, decl string)) {
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
	columnAt := func(i int) (string, bool) {
		if i < 0 || i >= len(toks) || (toks[i].kind != tkWord && toks[i].kind != tkQuoted) {
			return "", false
		}
		d, ok := decls[identName(toks[i].text)]
		return d, ok
	}
	for i, t := range toks {
		switch {
		case isOperator(t.text) && (i == 0 || !isOperator(toks[i-1].text)) || t.is("LIKE"):
			l, r := i-1, i+1
			for r < len(toks) && isOperator(toks[r].text) {
				r++
			}
			if d, ok := columnAt(l); ok && r < len(toks) {
				visit(r, d)
			}
			if d, ok := columnAt(r); ok && l >= 0 {
				visit(l, d)
			}
		case t.is("IN") && i+1 < len(toks) && toks[i+1].text == "(":
			if d, ok := columnAt(i - 1); ok {
				for j := i + 2; j < len(toks) && toks[j].text != ")"; j++ {
					visit(j, d)
				}
			}
		case (t.is("LIMIT") || t.is("OFFSET")) && i+1 < len(toks):
			visit(i+1, "INTEGER")
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
						visit(j, decls[cols[slot]])
					}
				}
			}
		}
	}
}

// byteaLiterals turns the string literals of sql that stand for a bytea
// (BLOB) column's value and are written in PostgreSQL's bytea input
// format ('\x00ff', or with backslash escapes) into blob literals, as
// PostgreSQL would store the bytes: clients that put values into the SQL
// text themselves (pgx's simple protocol, PgBouncer in transaction mode)
// send bytea that way. Other text is unchanged.
func byteaLiterals(sql string, columns func(table string) []tableColumn) string {
	all := lex(sql)
	var toks []token
	var at []int // index in all of each token of toks
	for i, t := range all {
		if t.significant() && t.text != ";" {
			toks = append(toks, t)
			at = append(at, i)
		}
	}
	changed := false
	columnSlots(toks, columns, func(i int, decl string) {
		t := toks[i]
		if t.kind != tkString || t.text[0] != '\'' || declaredOID(decl) != oidBytea {
			return
		}
		body := strings.ReplaceAll(t.text[1:len(t.text)-1], "''", "'")
		if !strings.Contains(body, `\`) {
			return // plain text: its bytes, as PostgreSQL stores them
		}
		b, err := decodeByteaText(body)
		if err != nil {
			return // not bytea input: SQLite stores the text, as given
		}
		all[at[i]].text = "x'" + hex.EncodeToString(b) + "'"
		changed = true
	})
	if !changed {
		return sql
	}
	var out strings.Builder
	for _, t := range all {
		out.WriteString(t.text)
	}
	return out.String()
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
	case oidInt2, oidInt4:
		// int8 whatever the declared width: SQLite keeps 64 bits, and a
		// client told int4 could not send a wider value at all.
		return oidInt8
	}
	return 0
}
