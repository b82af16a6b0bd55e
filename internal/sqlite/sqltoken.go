package sqlite

import "strings"

// A tokenizer of SQLite's SQL, to the extent hasvc's rewrites of tenants'
// statements need (schemaview.go, rowids.go): strings, quoted identifiers
// and comments are whole tokens, so nothing inside them is taken for a
// name or a keyword.

// isRowidName reports whether name is one of SQLite's names for a rowid.
func isRowidName(name string) bool {
	switch strings.ToLower(name) {
	case "rowid", "oid", "_rowid_":
		return true
	}
	return false
}

type sqlTokenKind int

const (
	tokTrivia sqlTokenKind = iota // white space and comments
	tokIdent                      // a word or a quoted identifier
	tokString                     // '...'
	tokOther                      // an operator or punctuation byte, or a number
)

// sqlToken is sql[start:end], tokenized as SQLite does (tokenize.c) to
// the extent renaming needs: strings, quoted identifiers and comments are
// whole tokens, so nothing inside them is taken for a name.
type sqlToken struct {
	kind       sqlTokenKind
	start, end int
}

func (t sqlToken) is(sql, text string) bool {
	return t.kind != tokTrivia && t.end-t.start == len(text) && sql[t.start:t.end] == text
}

// isWord reports whether t is the bare word w, in any case.
func (t sqlToken) isWord(sql, w string) bool {
	return t.kind == tokIdent && t.end-t.start == len(w) && strings.EqualFold(sql[t.start:t.end], w)
}

// ident returns the name an identifier token stands for, unquoted.
func (t sqlToken) ident(sql string) string {
	s := sql[t.start:t.end]
	if len(s) >= 2 {
		switch q := s[0]; q {
		case '"', '`':
			return strings.ReplaceAll(s[1:len(s)-1], string([]byte{q, q}), string(q))
		case '[':
			return s[1 : len(s)-1]
		}
	}
	return s
}

func skipSQLTrivia(sql string, i int) int {
	for i < len(sql) {
		t := nextSQLToken(sql, i)
		if t.kind != tokTrivia {
			return i
		}
		i = t.end
	}
	return i
}

// nextSQLToken returns the token at sql[i:]; an unterminated string,
// identifier or comment runs to the end of the text. At the end of the
// text it returns empty trivia.
func nextSQLToken(sql string, i int) sqlToken {
	if i >= len(sql) {
		return sqlToken{tokTrivia, len(sql), len(sql)}
	}
	c := sql[i]
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
		j := i + 1
		for j < len(sql) && (sql[j] == ' ' || sql[j] == '\t' || sql[j] == '\n' || sql[j] == '\r' || sql[j] == '\f') {
			j++
		}
		return sqlToken{tokTrivia, i, j}
	case strings.HasPrefix(sql[i:], "--"):
		if n := strings.IndexByte(sql[i:], '\n'); n >= 0 {
			return sqlToken{tokTrivia, i, i + n + 1}
		}
		return sqlToken{tokTrivia, i, len(sql)}
	case strings.HasPrefix(sql[i:], "/*"):
		if n := strings.Index(sql[i+2:], "*/"); n >= 0 {
			return sqlToken{tokTrivia, i, i + 2 + n + 2}
		}
		return sqlToken{tokTrivia, i, len(sql)}
	case (c == ':' || c == '@' || c == '#' || c == '$') && i+1 < len(sql) && isIdentByte(sql[i+1]):
		// A parameter (:name, @name, $name): its name is no reference.
		j := i + 1
		for j < len(sql) && isIdentByte(sql[j]) {
			j++
		}
		return sqlToken{tokOther, i, j}
	case c == '\'':
		return sqlToken{tokString, i, endQuotedSQL(sql, i, '\'')}
	case c == '"' || c == '`':
		return sqlToken{tokIdent, i, endQuotedSQL(sql, i, c)}
	case c == '[':
		if n := strings.IndexByte(sql[i:], ']'); n >= 0 {
			return sqlToken{tokIdent, i, i + n + 1}
		}
		return sqlToken{tokIdent, i, len(sql)}
	case isIdentByte(c) && !(c >= '0' && c <= '9') && c != '$':
		j := i + 1
		for j < len(sql) && isIdentByte(sql[j]) {
			j++
		}
		return sqlToken{tokIdent, i, j}
	case c >= '0' && c <= '9':
		// A number, with any suffix SQLite would take as part of it
		// (1e5, 0x1F): never a name.
		j := i + 1
		for j < len(sql) && (isIdentByte(sql[j]) || sql[j] == '.') {
			j++
		}
		return sqlToken{tokOther, i, j}
	}
	return sqlToken{tokOther, i, i + 1}
}

// isIdentByte reports whether c may be part of an unquoted SQLite name.
func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

// endQuotedSQL returns the end of the quoted token starting at sql[i] with
// quote q, where a doubled q stands for itself.
func endQuotedSQL(sql string, i int, q byte) int {
	for j := i + 1; j < len(sql); j++ {
		if sql[j] == q {
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(sql)
}
