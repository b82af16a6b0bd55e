package engine

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"hasvc/internal/sqlite"
)

// WriteDump writes the SQLite file at path (a backup: tenants' tables,
// and an eventual-mode database's row versions, which it leaves out) as SQL that recreates it: each table's CREATE statement and its
// rows as INSERTs, then indexes, views and triggers, as the sqlite3
// shell's .dump does. It has no transaction control or pragmas, so it
// runs both in the sqlite3 shell and as the SQL of one POST /db/<name>
// request (small dumps: a request is one transaction and one message).
func WriteDump(w io.Writer, path string) error {
	c, err := sqlite.Open("file:"+path+"?mode=ro", sqlite.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer c.Close()
	bw := bufio.NewWriterSize(w, 64<<10)
	type object struct{ typ, name, sql string }
	var objs []object
	err = c.Internal(func() error {
		return c.Query(`SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL
			AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_hasvc%' ESCAPE '\' ORDER BY rowid`, nil, func(s *sqlite.Stmt) error {
			t, _ := s.Column(0).(string)
			n, _ := s.Column(1).(string)
			q, _ := s.Column(2).(string)
			objs = append(objs, object{t, n, q})
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, o := range objs {
		if o.typ != "table" {
			continue
		}
		fmt.Fprintf(bw, "%s;\n", o.sql)
		prefix := "INSERT INTO " + sqlite.QuoteIdent(o.name) + " VALUES("
		err := c.Internal(func() error {
			return c.Query("SELECT * FROM main."+sqlite.QuoteIdent(o.name), nil, func(s *sqlite.Stmt) error {
				bw.WriteString(prefix)
				for i := range s.ColumnCount() {
					if i > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString(sqlLiteral(s.Column(i)))
				}
				_, err := bw.WriteString(");\n")
				return err
			})
		})
		if err != nil {
			return err
		}
	}
	for _, o := range objs {
		if o.typ != "table" {
			fmt.Fprintf(bw, "%s;\n", o.sql)
		}
	}
	return bw.Flush()
}

// sqlLiteral writes a value as SQLite reads it back with its storage
// class: a REAL always has a fraction or an exponent.
func sqlLiteral(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		switch {
		case math.IsInf(v, 1):
			return "1e999"
		case math.IsInf(v, -1):
			return "-1e999"
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	case []byte:
		return "X'" + hex.EncodeToString(v) + "'"
	case string:
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return "CAST(X'" + hex.EncodeToString([]byte(v)) + "' AS TEXT)"
		}
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return "NULL"
}
