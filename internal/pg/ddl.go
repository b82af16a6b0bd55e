package pg

import "strings"

// PostgreSQL's auto-numbered keys in CREATE TABLE.
//
// A column of type SERIAL (SERIAL4, SERIAL8, BIGSERIAL, SMALLSERIAL,
// SERIAL2) or declared GENERATED {ALWAYS | BY DEFAULT} AS IDENTITY gets
// its value from a sequence in PostgreSQL. SQLite has no sequences; it
// assigns one column by itself, the rowid, which a table's INTEGER
// PRIMARY KEY stands for. So such a column that is the table's primary
// key becomes INTEGER PRIMARY KEY (an insert that leaves it out gets the
// next number), and one that is not is refused: taken as a type name, it
// would store NULL in every row.

// serialTypes are the pseudo-types of auto-numbered columns.
var serialTypes = map[string]bool{
	"SERIAL": true, "SERIAL4": true, "SERIAL8": true, "BIGSERIAL": true, "SMALLSERIAL": true, "SERIAL2": true,
}

// rewriteSerial rewrites the auto-numbered columns of a CREATE TABLE (see
// above); other statements come back unchanged.
func rewriteSerial(sql string) (string, *pgError) {
	toks := lex(sql)
	sig := make([]int, 0, len(toks)) // indexes of significant tokens
	for i, t := range toks {
		if t.significant() {
			sig = append(sig, i)
		}
	}
	at := func(k int) token {
		if k < 0 || k >= len(sig) {
			return token{}
		}
		return toks[sig[k]]
	}
	if !at(0).is("CREATE") {
		return sql, nil
	}
	k := 1
	for k < 4 && !at(k).is("TABLE") {
		k++
	}
	if !at(k).is("TABLE") {
		return sql, nil
	}
	for k < len(sig) && at(k).text != "(" {
		k++
	}
	// The definitions: ranges of significant-token indexes between the
	// commas of the column list.
	type def struct{ from, to int }
	var defs []def
	depth, start := 0, k+1
	for ; k < len(sig); k++ {
		switch at(k).text {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				defs = append(defs, def{start, k})
				k = len(sig)
			}
		case ",":
			if depth == 1 {
				defs = append(defs, def{start, k})
				start = k + 1
			}
		}
	}
	// The table's PRIMARY KEY (col) constraint, if it names one column.
	tablePK := ""
	for _, d := range defs {
		j := d.from
		if at(j).is("CONSTRAINT") {
			j += 2
		}
		if at(j).is("PRIMARY") && at(j+1).is("KEY") && at(j+2).text == "(" && at(j+4).text == ")" {
			tablePK = identName(at(j + 3).text)
		}
	}
	changed := false
	for _, d := range defs {
		name := at(d.from)
		if name.kind != tkWord && name.kind != tkQuoted || isConstraintWord(name) || d.to-d.from < 2 {
			continue
		}
		typ := d.from + 1
		serial := serialTypes[strings.ToUpper(at(typ).text)]
		identity := -1 // where GENERATED ... AS IDENTITY begins
		primary := false
		for j := typ + 1; j < d.to; j++ {
			if at(j).is("PRIMARY") && at(j+1).is("KEY") {
				primary = true
			}
			if at(j).is("GENERATED") {
				identity = j
			}
		}
		if identity >= 0 {
			end := identity + 1
			for end < d.to && !at(end).is("IDENTITY") && !at(end).is("AS") {
				end++ // ALWAYS | BY DEFAULT
			}
			if !at(end).is("AS") || !at(end+1).is("IDENTITY") {
				identity = -1 // GENERATED ALWAYS AS (expr): SQLite's own generated column
			} else {
				end += 2
				if at(end).text == "(" { // sequence options
					for n := 0; end < d.to; end++ {
						if at(end).text == "(" {
							n++
						} else if at(end).text == ")" {
							if n--; n == 0 {
								end++
								break
							}
						}
					}
				}
				// The clause goes, with the space inside it.
				for j := sig[identity]; j <= sig[end-1]; j++ {
					toks[j].text = ""
				}
			}
		}
		if !serial && identity < 0 {
			continue
		}
		if !primary && tablePK != identName(name.text) {
			return "", errorf(stateFeatureNotSupp,
				"column %s: SERIAL and IDENTITY are supported only for the table's primary key, which becomes SQLite's auto-assigned rowid (hasvc has no sequences): declare it %s SERIAL PRIMARY KEY",
				name.text, name.text)
		}
		toks[sig[typ]].text = "INTEGER"
		changed = true
	}
	if !changed {
		return sql, nil
	}
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(t.text)
	}
	return b.String(), nil
}

// isConstraintWord reports whether a definition in a column list starts a
// table constraint rather than a column.
func isConstraintWord(t token) bool {
	for _, kw := range []string{"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE"} {
		if t.is(kw) {
			return true
		}
	}
	return false
}
