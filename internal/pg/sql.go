package pg

import (
	"encoding/hex"
	"hasvc/internal/sqlite"
	"strconv"
	"strings"
)

// This file reads PostgreSQL clients' SQL just enough to run it on SQLite:
// split a simple query into statements, recognise the statements the
// session answers itself (BEGIN, SET, SHOW...), and rewrite the few
// PostgreSQL spellings SQLite does not take ($n parameters, ::casts,
// pg_catalog-qualified functions). It is a lexer, not a parser: what it
// does not recognise passes through to SQLite unchanged.

type tokKind int

const (
	tkSpace tokKind = iota
	tkComment
	tkWord   // identifier or keyword
	tkQuoted // "identifier"
	tkString // 'string' (or E'string', $tag$string$tag$)
	tkNumber
	tkParam // $n
	tkPunct // one character, or "::"
)

type token struct {
	kind tokKind
	text string
}

// lex splits sql into tokens. Unterminated strings, identifiers and
// comments run to the end; SQLite reports them.
func lex(sql string) []token {
	toks := make([]token, 0, len(sql)/3+4) // about one token in three bytes
	for i := 0; i < len(sql); {
		var t token
		t, i = nextToken(sql, i)
		toks = append(toks, t)
	}
	return toks
}

// nextToken returns the token of sql that starts at byte i (i < len(sql))
// and the index after it.
func nextToken(sql string, i int) (token, int) {
	c := sql[i]
	start := i
	kind := tkPunct
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
		for i < len(sql) && strings.IndexByte(" \t\n\r\f", sql[i]) >= 0 {
			i++
		}
		kind = tkSpace
	case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
		for i < len(sql) && sql[i] != '\n' {
			i++
		}
		kind = tkComment
	case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
		depth := 0
		for i < len(sql) {
			if strings.HasPrefix(sql[i:], "/*") {
				depth++
				i += 2
			} else if strings.HasPrefix(sql[i:], "*/") {
				depth--
				i += 2
				if depth == 0 {
					break
				}
			} else {
				i++
			}
		}
		kind = tkComment
	case c == '\'':
		i = endQuoted(sql, i+1, '\'')
		kind = tkString
	case (c == 'E' || c == 'e') && i+1 < len(sql) && sql[i+1] == '\'':
		i = endEscaped(sql, i+2)
		kind = tkString
	case c == '"':
		i = endQuoted(sql, i+1, '"')
		kind = tkQuoted
	case c == '$' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
		i++
		for i < len(sql) && sql[i] >= '0' && sql[i] <= '9' {
			i++
		}
		kind = tkParam
	case c == '$':
		// $tag$ ... $tag$ (dollar quoting), else a lone '$'.
		j := i + 1
		for j < len(sql) && isWordByte(sql[j]) {
			j++
		}
		if j < len(sql) && sql[j] == '$' {
			tag := sql[i : j+1]
			if k := strings.Index(sql[j+1:], tag); k >= 0 {
				i = j + 1 + k + len(tag)
			} else {
				i = len(sql)
			}
			kind = tkString
		} else {
			i++
		}
	case isWordStart(c):
		for i < len(sql) && isWordByte(sql[i]) {
			i++
		}
		kind = tkWord
	case c >= '0' && c <= '9' || c == '.' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
		for i < len(sql) && (isWordByte(sql[i]) || sql[i] == '.' ||
			(sql[i] == '+' || sql[i] == '-') && (sql[i-1] == 'e' || sql[i-1] == 'E')) {
			i++
		}
		kind = tkNumber
	case c == ':' && i+1 < len(sql) && sql[i+1] == ':':
		i += 2
	default:
		i++
	}
	return token{kind: kind, text: sql[start:i]}, i
}

func isWordStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isWordByte(c byte) bool { return isWordStart(c) || c >= '0' && c <= '9' }

// endQuoted returns the index after the closing quote q, where doubled
// quotes stand for one.
func endQuoted(sql string, i int, q byte) int {
	for i < len(sql) {
		if sql[i] == q {
			if i+1 < len(sql) && sql[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return i
}

// endEscaped is endQuoted for E” strings, where a backslash escapes.
func endEscaped(sql string, i int) int {
	for i < len(sql) {
		switch sql[i] {
		case '\\':
			i += 2
			continue
		case '\'':
			if i+1 < len(sql) && sql[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return min(i, len(sql))
}

// significant reports whether a token is more than white space or comment.
func (t token) significant() bool { return t.kind != tkSpace && t.kind != tkComment }

// is reports whether t is the keyword kw (upper case).
func (t token) is(kw string) bool { return t.kind == tkWord && strings.EqualFold(t.text, kw) }

// splitStatements splits a simple query into its statements, without their
// semicolons; statements holding only white space and comments are
// dropped. A CREATE TRIGGER body (BEGIN ... END) is not split.
func splitStatements(q string) []string {
	if one := strings.TrimRight(strings.TrimSpace(q), ";"); strings.IndexByte(one, ';') < 0 {
		// No semicolon but at the end: one statement, unless there is
		// nothing but white space and comments (most queries: no need to
		// read them whole). A final semicolon inside a comment or an
		// unterminated string goes too: SQLite reads the rest the same.
		for i := 0; i < len(one); {
			var t token
			if t, i = nextToken(one, i); t.significant() {
				return []string{strings.TrimSpace(one)}
			}
		}
		return nil
	}
	toks := lex(q)
	var out []string
	start := 0
	off := 0
	var words []token // first significant tokens of the current statement
	inTrigger := false
	for i, t := range toks {
		if t.significant() && t.text != ";" {
			if len(words) < 4 {
				words = append(words, t)
				if isCreateTrigger(words) {
					inTrigger = true
				}
			}
		}
		end := off + len(t.text)
		if t.text == ";" && t.kind == tkPunct {
			if inTrigger && !lastWordIsEnd(toks[:i]) {
				off = end
				continue
			}
			if len(words) > 0 {
				out = append(out, strings.TrimSpace(q[start:off]))
			}
			start = end
			words = words[:0]
			inTrigger = false
		}
		off = end
	}
	if len(words) > 0 {
		out = append(out, strings.TrimSpace(q[start:]))
	}
	return out
}

func isCreateTrigger(w []token) bool {
	if len(w) < 2 || !w[0].is("CREATE") {
		return false
	}
	for _, t := range w[1:] {
		if t.is("TRIGGER") {
			return true
		}
		if !t.is("TEMP") && !t.is("TEMPORARY") {
			return false
		}
	}
	return false
}

func lastWordIsEnd(toks []token) bool {
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i].significant() {
			return toks[i].is("END")
		}
	}
	return false
}

// words returns the tokens of sql that are more than white space, comments
// and semicolons.
func words(sql string) []token {
	var out []token
	for _, t := range lex(sql) {
		if t.significant() && t.text != ";" {
			out = append(out, t)
		}
	}
	return out
}

// keywords returns the first n significant tokens of sql, upper-cased
// where they are words.
func keywords(sql string, n int) []string {
	var out []string
	for i := 0; i < len(sql) && len(out) < n; {
		var t token
		t, i = nextToken(sql, i)
		if !t.significant() {
			continue
		}
		if t.kind == tkWord {
			out = append(out, strings.ToUpper(t.text))
		} else {
			out = append(out, t.text)
		}
	}
	return out
}

// session values the rewrite substitutes for PostgreSQL's functions.
type substitutions interface {
	builtin(name string) (string, bool)                // version(), current_database()...
	lookupSetting(name string) (value string, ok bool) // current_setting('name')
}

// rewrite turns one PostgreSQL statement into SQLite's dialect: $n becomes
// ?n (bound by number, wherever it appears), expr::type becomes
// CAST(expr AS type), a pg_catalog. qualifier on a function goes, and the
// functions clients call on connecting (version(), current_database(),
// current_setting('x')...) become literals. It returns the new text and the
// highest parameter number.
func rewrite(sql string, sub substitutions) (string, int) {
	toks := lex(sql)
	out := make([]string, 0, len(toks))
	// opens[i] is, for a ")" at out[i], the index of its "(".
	opens := map[int]int{}
	var stack []int
	maxParam := 0
	changed := false
	lastSig := func(before int) int {
		for j := before - 1; j >= 0; j-- {
			if s := out[j]; strings.TrimSpace(s) != "" && !strings.HasPrefix(s, "--") && !strings.HasPrefix(s, "/*") {
				return j
			}
		}
		return -1
	}
	nextSig := func(i int) int {
		for j := i; j < len(toks); j++ {
			if toks[j].significant() {
				return j
			}
		}
		return -1
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == tkParam:
			n, err := strconv.Atoi(t.text[1:])
			if err == nil && n > 0 && n <= 65535 {
				maxParam = max(maxParam, n)
				out = append(out, "?"+t.text[1:])
				changed = true
				continue
			}
		case t.kind == tkString && (t.text[0] == 'E' || t.text[0] == 'e'):
			out = append(out, sqlite.QuoteString(unescapeE(t.text[2:len(t.text)-1])))
			changed = true
			continue
		case t.kind == tkString && t.text[0] == '$':
			tag := t.text[:strings.IndexByte(t.text[1:], '$')+2]
			body := t.text[len(tag):]
			body = strings.TrimSuffix(body, tag)
			out = append(out, sqlite.QuoteString(body))
			changed = true
			continue
		case t.kind == tkWord && strings.EqualFold(t.text, "pg_catalog"):
			// pg_catalog.f( → f(
			if i+3 < len(toks) && toks[i+1].text == "." && toks[i+2].kind == tkWord && toks[i+3].text == "(" {
				i++ // and the "."
				changed = true
				continue
			}
		case t.kind == tkWord && aliasKeywords[strings.ToLower(t.text)] && len(out) > 0 && lastSig(len(out)) >= 0 &&
			strings.EqualFold(out[lastSig(len(out))], "AS"):
			// PostgreSQL takes any keyword as a column label after AS
			// (AS default); SQLite takes it quoted.
			out = append(out, `"`+strings.ToLower(t.text)+`"`)
			changed = true
			continue
		case t.kind == tkWord:
			name := strings.ToLower(t.text)
			j := nextSig(i + 1)
			call := j >= 0 && toks[j].text == "("
			var value string
			var ok bool
			end := i
			if call && name == "current_setting" {
				// current_setting('name')
				k := nextSig(j + 1)
				if k >= 0 && toks[k].kind == tkString && toks[k].text[0] == '\'' {
					if m := nextSig(k + 1); m >= 0 && toks[m].text == ")" {
						value, ok = sub.lookupSetting(strings.ReplaceAll(toks[k].text[1:len(toks[k].text)-1], "''", "'"))
						if !ok {
							value, ok = "", true
						}
						end = m
					}
				}
			} else if call {
				if k := nextSig(j + 1); k >= 0 && toks[k].text == ")" {
					if value, ok = sub.builtin(name + "()"); ok {
						end = k
					}
				}
			} else if p := lastSig(len(out)); p < 0 || out[p] != "." {
				value, ok = sub.builtin(name)
			}
			expr, isExpr := exprFunctions[name]
			if isExpr && call {
				if k := nextSig(j + 1); k >= 0 && toks[k].text == ")" {
					value, ok, end = expr, true, k
				}
			}
			if ok {
				lit := value
				if !isExpr {
					lit = sqlite.QuoteString(value)
				}
				// A bare select item gets the function's name as its
				// column name, as in PostgreSQL.
				p := lastSig(len(out))
				n := nextSig(end + 1)
				if p >= 0 && (strings.EqualFold(out[p], "SELECT") || out[p] == ",") &&
					(n < 0 || toks[n].text == "," || toks[n].text == ";" || toks[n].is("FROM")) {
					lit += ` AS "` + name + `"`
				}
				out = append(out, lit)
				i = end
				changed = true
				continue
			}
		case t.kind == tkPunct && t.text == "(":
			stack = append(stack, len(out))
		case t.kind == tkPunct && t.text == ")":
			if n := len(stack); n > 0 {
				opens[len(out)] = stack[n-1]
				stack = stack[:n-1]
			}
		case t.kind == tkPunct && t.text == "::":
			typ, next := castType(toks, i+1)
			start := castOperand(out, opens, lastSig)
			if typ == "" || start < 0 {
				break
			}
			operand := strings.Join(out[start:], "")
			if lit, ok := byteaLiteral(operand, typ); ok {
				// 'x'::bytea reads the text as bytea input ('\x...').
				out = append(out[:start], lit)
			} else if strings.HasPrefix(typ, regPrefix) {
				// A catalog function (catalogFunctions) does the cast.
				out = append(out[:start], typ+"("+operand+")")
			} else {
				out = append(out[:start], "CAST("+operand+" AS "+typ+")")
			}
			// Indexes past start changed: forget the parentheses there.
			for k := range opens {
				if k >= start {
					delete(opens, k)
				}
			}
			i = next - 1
			changed = true
			continue
		}
		out = append(out, t.text)
	}
	if !changed {
		return sql, maxParam
	}
	return strings.Join(out, ""), maxParam
}

// exprFunctions are PostgreSQL functions without arguments that clients
// call, as SQLite expressions evaluated where the statement runs (a
// literal would be frozen in a prepared statement).
var exprFunctions = map[string]string{
	// now() and its synonyms: the time in UTC, as timestamptz's text.
	"now":                   `(strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00')`,
	"transaction_timestamp": `(strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00')`,
	"statement_timestamp":   `(strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00')`,
	"clock_timestamp":       `(strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00')`,
	// A version 4 UUID from 122 random bits.
	"gen_random_uuid": `(lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))))`,
}

// castOperand returns the index in out where the operand of a :: cast
// begins: a literal, parameter or (qualified) name, a parenthesized group,
// or a function call.
func castOperand(out []string, opens map[int]int, lastSig func(int) int) int {
	j := lastSig(len(out))
	if j < 0 {
		return -1
	}
	if out[j] == ")" {
		o, ok := opens[j]
		if !ok {
			return -1
		}
		j = o
		if p := lastSig(j); p >= 0 && isWordStart(out[p][0]) && !isKeyword(out[p]) {
			j = p // a function call
		} else {
			return j
		}
	}
	// Qualified names: a.b.c
	for {
		p := lastSig(j)
		if p >= 1 && out[p] == "." {
			if q := lastSig(p); q >= 0 && (isWordStart(out[q][0]) || out[q][0] == '"') {
				j = q
				continue
			}
		}
		return j
	}
}

// isKeyword reports words after which "(" opens a group, not a call.
func isKeyword(w string) bool {
	switch strings.ToUpper(w) {
	case "SELECT", "WHERE", "AND", "OR", "NOT", "IN", "ON", "AS", "FROM", "VALUES", "THEN", "ELSE", "WHEN", "CASE", "BY", "EXISTS", "RETURNING", "SET", "IS":
		return true
	}
	return false
}

// castType reads the type after "::" starting at token i and returns its
// SQLite spelling and the index after it.
func castType(toks []token, i int) (string, int) {
	for i < len(toks) && !toks[i].significant() {
		i++
	}
	var words []string
	for i < len(toks) {
		t := toks[i]
		if t.kind == tkWord || t.kind == tkQuoted {
			w := strings.ToLower(strings.Trim(t.text, `"`))
			if len(words) > 0 && !multiWordType(words, w) {
				break
			}
			words = append(words, w)
			i++
			// skip the space between words of a multi-word type
			j := i
			for j < len(toks) && toks[j].kind == tkSpace {
				j++
			}
			if j < len(toks) && toks[j].kind == tkWord && multiWordType(words, strings.ToLower(toks[j].text)) {
				i = j
			}
			continue
		}
		if t.text == "." && len(words) == 1 && words[0] == "pg_catalog" {
			words = words[:0]
			i++
			continue
		}
		break
	}
	if len(words) == 0 {
		return "", i
	}
	// (n[,m]) and [] after the type.
	if i < len(toks) && toks[i].text == "(" {
		for i < len(toks) && toks[i].text != ")" {
			i++
		}
		i++
	}
	for i+1 < len(toks) && toks[i].text == "[" && toks[i+1].text == "]" {
		i += 2
	}
	return sqliteType(strings.Join(words, " ")), i
}

func multiWordType(words []string, next string) bool {
	prev := words[len(words)-1]
	switch {
	case prev == "double" && next == "precision",
		prev == "character" && next == "varying",
		(prev == "timestamp" || prev == "time") && next == "with" || next == "without",
		(prev == "with" || prev == "without") && next == "time",
		prev == "time" && len(words) > 1 && next == "zone":
		return true
	}
	return false
}

// sqliteType maps a PostgreSQL type name to what CAST in SQLite should
// produce.
func sqliteType(pg string) string {
	switch pg {
	case "regclass", "regtype", "regnamespace", "regproc", "regprocedure", "regrole":
		return regPrefix + pg[len("reg"):]
	case "int", "int2", "int4", "int8", "integer", "bigint", "smallint", "oid", "bool", "boolean":
		return "INTEGER"
	case "float4", "float8", "real", "double precision", "float":
		return "REAL"
	case "numeric", "decimal":
		return "NUMERIC"
	case "bytea":
		return "BLOB"
	}
	return "TEXT"
}

// aliasKeywords are SQLite's reserved words that PostgreSQL clients use as
// column labels after AS (not SELECT, VALUES, WITH, NOT or MATERIALIZED,
// which follow AS in CREATE VIEW v AS SELECT and WITH x AS NOT
// MATERIALIZED).
var aliasKeywords = map[string]bool{
	"default": true, "order": true, "group": true, "check": true, "primary": true, "references": true,
	"table": true, "index": true, "limit": true, "offset": true, "where": true, "having": true, "from": true,
	"to": true, "end": true, "case": true, "when": true, "then": true, "else": true, "and": true, "or": true,
	"in": true, "is": true, "null": true, "unique": true, "constraint": true, "foreign": true, "collate": true,
	"using": true, "join": true, "on": true, "set": true, "into": true, "all": true, "distinct": true,
	"exists": true, "between": true, "like": true, "escape": true, "transaction": true, "union": true,
	"intersect": true, "except": true, "create": true, "drop": true, "insert": true, "delete": true,
	"update": true, "add": true, "alter": true, "as": true, "autoincrement": true, "cross": true,
	"current_date": true, "current_time": true, "current_timestamp": true, "deferrable": true, "full": true,
	"inner": true, "isnull": true, "left": true, "natural": true, "notnull": true, "outer": true,
	"returning": true, "right": true, "window": true, "filter": true, "over": true, "partition": true,
	"range": true, "rows": true, "groups": true, "do": true, "nothing": true, "first": true, "last": true,
}

// regPrefix starts the names of the functions that stand for casts to
// PostgreSQL's object identifier types ('users'::regclass); only catalog
// queries (catalogViewQuery) have them.
const regPrefix = "hasvc_reg"

// byteaLiteral turns a string literal cast to bytea into a blob literal.
func byteaLiteral(operand, typ string) (string, bool) {
	if typ != "BLOB" || len(operand) < 2 || operand[0] != '\'' || operand[len(operand)-1] != '\'' {
		return "", false
	}
	toks := lex(operand)
	if len(toks) != 1 || toks[0].kind != tkString {
		return "", false
	}
	b, err := decodeByteaText(strings.ReplaceAll(operand[1:len(operand)-1], "''", "'"))
	if err != nil {
		return "", false
	}
	return "X'" + hex.EncodeToString(b) + "'", true
}

// unescapeE decodes the body of an E” string.
func unescapeE(s string) string {
	if !strings.ContainsAny(s, `\'`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' && i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// literalsAsParams takes out of a SELECT's text the literals its WHERE
// clause compares with, as parameters, and returns the text with "?" in
// their place and their values (nil if it took none). Clients of the
// simple protocol (psql, psycopg 2, anything that interpolates) send
// every query with its values written in; texts that differ only in
// those values are then one statement, prepared once by SQLite rather
// than for every query.
//
// Only a number or a plain string right after a comparison operator (=,
// <, >, and the operators ending in them), in the WHERE clause of the
// statement itself (not a subquery's), is taken: a literal elsewhere may
// not be a value (a column's name is its expression's text; ORDER BY 2
// and LIMIT 5 are a position and a count), and one after LIKE keeps the
// index SQLite can use for its pattern. A literal and a parameter compare
// alike in SQLite: neither has an affinity. A text that has parameters
// of its own is left as it is.
func literalsAsParams(sql string) (string, []any) {
	const most = 32 // a longer text gains little; SQLite's limit is far
	var out strings.Builder
	var params []any
	depth, inWhere, first := 0, false, true
	prev := "" // the previous significant token
	for i := 0; i < len(sql); {
		var t token
		t, i = nextToken(sql, i)
		if t.kind == tkParam || t.text == "?" || t.text == ":" || t.text == "@" || t.text == "$" {
			return "", nil // parameters already, or what may be one
		}
		if t.significant() {
			switch {
			case first && !t.is("SELECT"):
				return "", nil
			case t.text == "(":
				depth++
			case t.text == ")":
				depth--
			case depth == 0 && t.kind == tkWord:
				w := strings.ToUpper(t.text)
				if w == "WHERE" {
					inWhere = true
				} else if whereEnds[w] {
					inWhere = false
				}
			case inWhere && (prev == "=" || prev == "<" || prev == ">") && len(params) < most:
				if v, ok := literalValue(t); ok {
					params = append(params, v)
					out.WriteString("?")
					prev = "?"
					continue
				}
			}
			first = false
			prev = t.text
		}
		out.WriteString(t.text)
	}
	if len(params) == 0 {
		return "", nil
	}
	return out.String(), params
}

// whereEnds are the keywords after a statement's WHERE clause.
var whereEnds = map[string]bool{
	"GROUP": true, "HAVING": true, "WINDOW": true, "ORDER": true, "LIMIT": true, "OFFSET": true,
	"UNION": true, "INTERSECT": true, "EXCEPT": true, "RETURNING": true, "FOR": true,
}

// literalValue is the value of a number or plain string literal token as
// SQLite reads it: an integer, a real, or text.
func literalValue(t token) (any, bool) {
	switch t.kind {
	case tkNumber:
		if n, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return n, true
		}
		if strings.ContainsAny(t.text, ".eE") && !strings.ContainsAny(t.text, "_xX") {
			if f, err := strconv.ParseFloat(t.text, 64); err == nil {
				return f, true
			}
		}
	case tkString:
		// Only '...': not E'...', $$...$$, and nothing a backslash makes
		// bytea's input (byteaLiterals reads those).
		if len(t.text) < 2 || t.text[0] != '\'' || t.text[len(t.text)-1] != '\'' || strings.Contains(t.text, `\`) {
			return nil, false
		}
		inner := t.text[1 : len(t.text)-1]
		if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
			return nil, false // unterminated: SQLite says so
		}
		return strings.ReplaceAll(inner, "''", "'"), true
	}
	return nil, false
}
