package pg

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// COPY ... FROM STDIN and COPY ... TO STDOUT (psql's \copy), in the text
// and CSV formats, through the simple query protocol.
//
// COPY FROM inserts the rows in chunks of at most copyChunkRows rows and
// copyChunkBytes bytes of input. Inside a transaction block every chunk
// is part of the block: all or nothing, as in PostgreSQL, up to the 8 MB
// message limit of one transaction. Outside one, each chunk is a
// transaction of its own, so a load of any size goes through; a line that
// fails stops the COPY, and the error says which line and how many rows
// before it were committed.

const (
	copyChunkRows  = 500
	copyChunkBytes = 1 << 20
)

// copySpec is a parsed COPY statement.
type copySpec struct {
	table   string   // as written, quoted or not
	columns []string // as written; nil: every column
	query   string   // COPY (query) TO
	from    bool
	csv     bool
	header  bool
	delim   byte
	null    string
	quote   byte
	escape  byte
}

// parseCopy reads COPY {table [(cols)] | (query)} {FROM STDIN | TO STDOUT}
// [[WITH] (option, ...) | legacy options].
func parseCopy(sql string) (*copySpec, error) {
	all := lex(sql)
	var sig []int
	for i, t := range all {
		if t.significant() && t.text != ";" {
			sig = append(sig, i)
		}
	}
	at := func(k int) token {
		if k >= len(sig) {
			return token{}
		}
		return all[sig[k]]
	}
	text := func(from, to int) string { // significant tokens from..to-1, with what lies between
		var b strings.Builder
		for i := sig[from]; i < sig[to-1]+1; i++ {
			b.WriteString(all[i].text)
		}
		return b.String()
	}
	syntax := func(format string, args ...any) error {
		return errorf(stateSyntax, "COPY: "+format, args...)
	}
	s := &copySpec{delim: '\t', null: `\N`, quote: '"'}
	k := 1
	if at(k).text == "(" {
		depth, start := 0, k+1
		for ; k < len(sig); k++ {
			if at(k).text == "(" {
				depth++
			} else if at(k).text == ")" {
				if depth--; depth == 0 {
					break
				}
			}
		}
		if k >= len(sig) || k == start {
			return nil, syntax("unterminated query")
		}
		s.query = text(start, k)
		k++
	} else {
		if at(k).kind != tkWord && at(k).kind != tkQuoted {
			return nil, syntax("expected a table name")
		}
		s.table = at(k).text
		k++
		for at(k).text == "." { // schema.table: the schema goes (public)
			s.table = at(k + 1).text
			k += 2
		}
		if at(k).text == "(" {
			for k++; k < len(sig) && at(k).text != ")"; k++ {
				if at(k).text != "," {
					s.columns = append(s.columns, at(k).text)
				}
			}
			k++
		}
	}
	switch {
	case at(k).is("FROM"):
		s.from = true
	case at(k).is("TO"):
	default:
		return nil, syntax("expected FROM or TO")
	}
	if s.from && s.query != "" {
		return nil, syntax("COPY FROM takes a table, not a query")
	}
	if w := at(k + 1); !w.is("STDIN") && !w.is("STDOUT") {
		return nil, errorf(stateInsufficientPriv, "COPY to or from a file or program on the server is not allowed: use STDIN or STDOUT (psql's \\copy)")
	}
	k += 2
	if at(k).is("WITH") {
		k++
	}
	str := func(k int) (string, error) {
		t := at(k)
		if t.kind != tkString || t.text[0] != '\'' {
			return "", syntax("expected a quoted value after %s", at(k-1).text)
		}
		return strings.ReplaceAll(t.text[1:len(t.text)-1], "''", "'"), nil
	}
	char := func(k int, what string) (byte, error) {
		v, err := str(k)
		if err == nil && len(v) != 1 {
			err = errorf(stateFeatureNotSupp, "COPY %s must be a single one-byte character", what)
		}
		if err != nil {
			return 0, err
		}
		return v[0], nil
	}
	delimSet, quoteSet := false, false
	option := func(name string, k int, legacy bool) (int, error) {
		var err error
		if legacy && at(k).is("AS") {
			k++
		}
		switch name {
		case "FORMAT":
			switch strings.ToLower(strings.Trim(at(k).text, `'"`)) {
			case "csv":
				s.csv = true
			case "text":
			case "binary":
				return k, errorf(stateFeatureNotSupp, "COPY's binary format is not supported: use text or csv")
			default:
				return k, syntax("unknown format %s", at(k).text)
			}
			return k + 1, nil
		case "CSV":
			s.csv = true
			return k, nil
		case "BINARY":
			return k, errorf(stateFeatureNotSupp, "COPY's binary format is not supported: use text or csv")
		case "HEADER":
			s.header = true
			if v := strings.ToLower(strings.Trim(at(k).text, "'")); v == "true" || v == "on" || v == "1" || v == "match" {
				k++
			} else if v == "false" || v == "off" || v == "0" {
				s.header = false
				k++
			}
			return k, nil
		case "DELIMITER":
			s.delim, err = char(k, "delimiter")
			delimSet = true
		case "NULL":
			s.null, err = str(k)
		case "QUOTE":
			s.quote, err = char(k, "quote")
			quoteSet = true
		case "ESCAPE":
			s.escape, err = char(k, "escape")
		case "ENCODING":
			var v string
			if v, err = str(k); err == nil && !isUTF8(v) {
				err = errorf(stateFeatureNotSupp, "COPY encoding %q: hasvc speaks UTF8 only", v)
			}
		case "FREEZE":
			return k, nil
		default:
			return k, errorf(stateFeatureNotSupp, "COPY option %s is not supported", name)
		}
		return k + 1, err
	}
	var err error
	if at(k).text == "(" {
		for k++; k < len(sig) && at(k).text != ")"; {
			if at(k).text == "," {
				k++
				continue
			}
			if k, err = option(strings.ToUpper(at(k).text), k+1, false); err != nil {
				return nil, err
			}
		}
		k++
	} else {
		for k < len(sig) {
			if k, err = option(strings.ToUpper(at(k).text), k+1, true); err != nil {
				return nil, err
			}
		}
	}
	if k < len(sig) {
		return nil, syntax("unexpected %s", at(k).text)
	}
	if s.csv {
		if !delimSet {
			s.delim = ','
		}
		if s.null == `\N` {
			s.null = ""
		}
		if s.escape == 0 {
			s.escape = s.quote
		}
	} else if quoteSet || s.escape != 0 {
		return nil, errorf(stateFeatureNotSupp, "COPY QUOTE and ESCAPE are available only in CSV mode")
	}
	return s, nil
}

// copy runs a COPY statement sent in a simple query.
func (ss *session) copy(ctx context.Context, sql string) (*outcome, error) {
	s, err := parseCopy(sql)
	if err != nil {
		return nil, err
	}
	if s.from {
		if ss.readOnly {
			return nil, errorf(stateInsufficientPriv, "this token may only read; COPY FROM writes")
		}
		if ss.readOnlyNow() {
			return nil, errorf(stateReadOnlyTx, "cannot execute COPY FROM in a read-only transaction")
		}
		return ss.copyIn(ctx, s)
	}
	return ss.copyOut(ctx, s)
}

// copyIn runs COPY ... FROM STDIN: it asks the client for the data and
// inserts the rows (see the file comment).
func (ss *session) copyIn(ctx context.Context, s *copySpec) (*outcome, error) {
	cols := s.columns
	table := ss.tableColumns(ctx, identName(s.table))
	if len(table) == 0 {
		return nil, errorf(stateUndefinedTable, "relation %s does not exist", s.table)
	}
	decl := map[string]string{}
	for _, c := range table {
		decl[c.name] = c.decl
	}
	if cols == nil {
		for _, c := range table {
			cols = append(cols, sqlite.QuoteIdent(c.name))
		}
	}
	kinds := make([]uint32, len(cols))
	for i, c := range cols {
		d, ok := decl[identName(c)]
		if !ok {
			return nil, errorf(stateUndefinedColumn, "column %s of relation %s does not exist", c, s.table)
		}
		kinds[i] = declaredOID(d)
	}
	ss.be.Send(&pgproto3.CopyInResponse{OverallFormat: 0, ColumnFormatCodes: make([]uint16, len(cols))})
	if err := ss.be.Flush(); err != nil {
		return nil, err
	}

	perChunk := max(1, min(copyChunkRows, 32000/len(cols)))
	var (
		buf       []byte
		chunk     []any
		lines     []int // line of each row in chunk
		line      int   // lines read
		committed int64 // rows committed (outside a block) or inserted
		chunkSize int
		header    = s.header
	)
	// One row's INSERT; a chunk's repeats its VALUES row.
	marks := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	insertOne := "INSERT INTO " + s.table + " (" + strings.Join(cols, ", ") + ") VALUES " + marks
	insert := func() error {
		rows := len(lines)
		if rows == 0 {
			return nil
		}
		var q strings.Builder
		q.WriteString(insertOne)
		for range rows - 1 {
			q.WriteString(", ")
			q.WriteString(marks)
		}
		_, err := ss.exec(ctx, sqlite.Statement{SQL: q.String(), Params: chunk})
		if err != nil {
			// Nothing of the chunk stays. Run it again a row per
			// statement to learn which row fails (one INSERT of many rows
			// cannot say), as PostgreSQL names the line. If the chunk goes
			// in this time, what stopped it changed meanwhile: go on.
			var row int
			if row, err = ss.insertRows(ctx, insertOne, chunk, len(cols)); err != nil {
				where := fmt.Sprintf("COPY %s, in the lines %d to %d", s.table, lines[0], line)
				if row >= 0 {
					where = fmt.Sprintf("COPY %s, line %d", s.table, lines[row])
				}
				if !ss.inTx {
					where += fmt.Sprintf("; the %d rows before line %d are committed (outside a transaction block COPY commits every %d rows)", committed, lines[0], perChunk)
				}
				return withContext(err, where)
			}
		}
		committed += int64(rows)
		chunk, lines, chunkSize = chunk[:0], lines[:0], 0
		return nil
	}
	// records takes the complete records in buf (all of it when final).
	records := func(final bool) error {
		for len(buf) > 0 {
			fields, n, err := s.nextRecord(buf, final)
			if err != nil {
				return errorf(stateBadCopy, "COPY %s, line %d: %v", s.table, line+1, err)
			}
			if n == 0 {
				return nil // an incomplete record: wait for more data
			}
			line += bytes.Count(buf[:n], []byte{'\n'})
			if !bytes.HasSuffix(buf[:n], []byte{'\n'}) {
				line++
			}
			buf = buf[n:]
			if fields == nil {
				continue // end-of-data marker
			}
			if header {
				header = false
				continue
			}
			if len(fields) != len(cols) {
				return errorf(stateBadCopy, "COPY %s, line %d: %d fields, the table has %d columns", s.table, line, len(fields), len(cols))
			}
			lines = append(lines, line)
			for i, f := range fields {
				v, err := copyValue(f, kinds[i])
				if err != nil {
					return errorf(stateBadCopy, "COPY %s, line %d, column %s: %v", s.table, line, cols[i], err)
				}
				chunk = append(chunk, v)
				chunkSize += len(f.text)
			}
			if len(lines) >= perChunk || chunkSize >= copyChunkBytes {
				if err := insert(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for {
		msg, err := ss.be.Receive()
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			buf = append(buf, m.Data...)
			if err := records(false); err != nil {
				return nil, err
			}
		case *pgproto3.CopyDone:
			if err := records(true); err != nil {
				return nil, err
			}
			if err := insert(); err != nil {
				return nil, err
			}
			return &outcome{tag: "COPY " + strconv.FormatInt(committed, 10)}, nil
		case *pgproto3.CopyFail:
			return nil, errorf(stateQueryCanceled, "COPY from stdin failed: %s", m.Message)
		case *pgproto3.Flush, *pgproto3.Sync:
		default:
			return nil, errorf(stateProtocolViolation, "unexpected %T during COPY", msg)
		}
	}
}

// insertRows runs insert (one row's INSERT) once for each row of values
// (n values a row), all in one transaction: the session's, or one of
// their own outside a transaction block. On failure it returns the row
// that failed (-1 if unknown), and nothing of them stays outside a block.
func (ss *session) insertRows(ctx context.Context, insert string, values []any, n int) (int, error) {
	if ss.inTx || ss.scratch != nil {
		for r := 0; r*n < len(values); r++ {
			if _, err := ss.exec(ctx, sqlite.Statement{SQL: insert, Params: values[r*n : (r+1)*n]}); err != nil {
				return r, err
			}
		}
		return -1, nil
	}
	stmts := make([]sqlite.Statement, 0, len(values)/n)
	for r := 0; r*n < len(values); r++ {
		stmts = append(stmts, sqlite.Statement{SQL: insert, Params: values[r*n : (r+1)*n]})
	}
	if _, err := ss.execAloneAll(ctx, stmts, ss.readOnlyNow()); err != nil {
		return tenant.ErrorStatement(err), err
	}
	return -1, nil
}

// copyField is one field of a COPY record.
type copyField struct {
	text string
	null bool
}

// nextRecord reads the record at the start of buf and returns its fields
// and how many bytes it took; n is 0 if buf holds no complete record yet
// (unless final). A line "\." (the end-of-data marker) gives nil fields.
func (s *copySpec) nextRecord(buf []byte, final bool) (fields []copyField, n int, err error) {
	if !s.csv {
		end := bytes.IndexByte(buf, '\n')
		if end < 0 && !final {
			return nil, 0, nil
		}
		n = end + 1
		if end < 0 {
			end, n = len(buf), len(buf)
		}
		line := strings.TrimSuffix(string(buf[:end]), "\r")
		if line == `\.` {
			return nil, n, nil
		}
		for _, raw := range strings.Split(line, string(s.delim)) {
			if raw == s.null {
				fields = append(fields, copyField{null: true})
				continue
			}
			v, err := unescapeCopy(raw)
			if err != nil {
				return nil, 0, err
			}
			fields = append(fields, copyField{text: v})
		}
		return fields, n, nil
	}
	// CSV: a quoted field may hold delimiters, quotes (escaped) and newlines.
	var f []byte
	quoted, inQuotes := false, false
	for i := 0; i < len(buf); i++ {
		c := buf[i]
		switch {
		case inQuotes && c == s.escape && i+1 < len(buf) && (buf[i+1] == s.quote || buf[i+1] == s.escape && s.escape != s.quote):
			f = append(f, buf[i+1])
			i++
		case inQuotes && c == s.quote:
			inQuotes = false
		case inQuotes:
			f = append(f, c)
		case c == s.quote:
			inQuotes, quoted = true, true
		case c == s.delim:
			fields = append(fields, csvField(f, quoted, s.null))
			f, quoted = f[:0:0], false
		case c == '\n':
			line := strings.TrimSuffix(string(f), "\r")
			if len(fields) == 0 && !quoted && line == `\.` {
				return nil, i + 1, nil
			}
			fields = append(fields, csvField([]byte(line), quoted, s.null))
			return fields, i + 1, nil
		default:
			f = append(f, c)
		}
	}
	if !final {
		return nil, 0, nil
	}
	if inQuotes {
		return nil, 0, fmt.Errorf("unterminated CSV quoted field")
	}
	return append(fields, csvField(f, quoted, s.null)), len(buf), nil
}

// csvField is a CSV field: an unquoted one matching the NULL string is
// NULL.
func csvField(f []byte, quoted bool, null string) copyField {
	if !quoted && string(f) == null {
		return copyField{null: true}
	}
	return copyField{text: string(f)}
}

// unescapeCopy decodes the backslash escapes of COPY's text format.
func unescapeCopy(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case 'x':
			j := i + 1
			for j < len(s) && j < i+3 && isHex(s[j]) {
				j++
			}
			if j == i+1 {
				b.WriteByte('x')
				continue
			}
			v, _ := strconv.ParseUint(s[i+1:j], 16, 8)
			b.WriteByte(byte(v))
			i = j - 1
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i:j], 8, 16)
			b.WriteByte(byte(v))
			i = j - 1
		default:
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// copyValue is the value a field binds for a column of type oid: text
// (SQLite's column affinity makes numbers of numeric text), the bytes of
// bytea input, 1/0 for booleans.
func copyValue(f copyField, oid uint32) (any, error) {
	if f.null {
		return nil, nil
	}
	switch oid {
	case oidBytea:
		if strings.HasPrefix(f.text, `\x`) {
			return decodeByteaText(f.text)
		}
		return []byte(f.text), nil
	case oidBool:
		switch strings.ToLower(strings.TrimSpace(f.text)) {
		case "t", "true", "yes", "on", "1", "y":
			return int64(1), nil
		case "f", "false", "no", "off", "0", "n":
			return int64(0), nil
		}
		return nil, fmt.Errorf("invalid input syntax for type boolean: %q", f.text)
	}
	return f.text, nil
}

// copyOut runs COPY ... TO STDOUT: the rows of the table or query, each a
// CopyData message in the text or CSV format.
func (ss *session) copyOut(ctx context.Context, s *copySpec) (*outcome, error) {
	query := s.query
	if query == "" {
		cols := "*"
		if s.columns != nil {
			cols = strings.Join(s.columns, ", ")
		}
		query = "SELECT " + cols + " FROM " + s.table
	}
	run, _ := rewrite(query, ss)
	res, err := ss.exec(ctx, sqlite.Statement{SQL: run})
	if err != nil {
		return nil, err
	}
	if !res.HasRows() {
		return nil, errorf(stateFeatureNotSupp, "COPY (query) TO needs a query that returns rows")
	}
	cols, _ := columnTypes(res.Columns, res.DeclTypes, res.Rows, run)
	ss.be.Send(&pgproto3.CopyOutResponse{OverallFormat: 0, ColumnFormatCodes: make([]uint16, len(cols))})
	var line []byte
	if s.header {
		for i, c := range cols {
			if i > 0 {
				line = append(line, s.delim)
			}
			line = s.appendField(line, []byte(c.name))
		}
		ss.be.Send(&pgproto3.CopyData{Data: append(line, '\n')})
	}
	var field []byte
	for _, row := range res.Rows {
		line = line[:0]
		for i, v := range row {
			if i > 0 {
				line = append(line, s.delim)
			}
			if v == nil {
				line = append(line, s.null...)
				continue
			}
			field = appendText(field[:0], v, cols[i].oid)
			line = s.appendField(line, field)
		}
		ss.be.Send(&pgproto3.CopyData{Data: append(line, '\n')})
	}
	ss.be.Send(&pgproto3.CopyDone{})
	return &outcome{tag: "COPY " + strconv.Itoa(len(res.Rows))}, nil
}

// appendField appends one non-NULL field: escaped for the text format,
// quoted when needed for CSV.
func (s *copySpec) appendField(b, f []byte) []byte {
	if s.csv {
		if len(f) > 0 && !bytes.ContainsAny(f, string([]byte{s.delim, s.quote, '\n', '\r'})) && string(f) != s.null {
			return append(b, f...)
		}
		b = append(b, s.quote)
		for _, c := range f {
			if c == s.quote || c == s.escape {
				b = append(b, s.escape)
			}
			b = append(b, c)
		}
		return append(b, s.quote)
	}
	for _, c := range f {
		switch c {
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if c == s.delim {
				b = append(b, '\\')
			}
			b = append(b, c)
		}
	}
	return b
}
