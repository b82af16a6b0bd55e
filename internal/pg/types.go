package pg

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PostgreSQL type OIDs hasvc sends or reads.
const (
	oidBool    = 16
	oidBytea   = 17
	oidName    = 19
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidText    = 25
	oidOID     = 26
	oidFloat4  = 700
	oidFloat8  = 701
	oidUnknown = 705
	oidBPChar  = 1042
	oidVarchar = 1043
	oidNumeric = 1700
	oidUUID    = 2950
)

// column is one result column as the client sees it.
type column struct {
	name string
	oid  uint32
}

// typeLen is the typlen RowDescription announces.
func typeLen(oid uint32) int16 {
	switch oid {
	case oidBool:
		return 1
	case oidInt2:
		return 2
	case oidInt4, oidFloat4, oidOID:
		return 4
	case oidInt8, oidFloat8:
		return 8
	case oidName:
		return 64
	}
	return -1
}

// declaredOID maps a column's declared SQLite type to a PostgreSQL type,
// by SQLite's own affinity rules, with booleans apart; other names (dates,
// JSON...) are text. 0: no declared type (the values decide).
func declaredOID(decl string) uint32 {
	if decl == "" {
		return 0
	}
	d := strings.ToUpper(decl)
	switch {
	case strings.Contains(d, "BOOL"):
		return oidBool
	case strings.Contains(d, "INT"):
		return intOID(d)
	case strings.Contains(d, "CHAR"), strings.Contains(d, "CLOB"), strings.Contains(d, "TEXT"):
		return oidText
	case strings.Contains(d, "BLOB"), d == "BYTEA":
		return oidBytea
	case strings.Contains(d, "REAL"), strings.Contains(d, "FLOA"), strings.Contains(d, "DOUB"),
		strings.Contains(d, "NUMERIC"), strings.Contains(d, "DECIMAL"):
		return oidFloat8
	}
	// Dates, times, JSON, UUIDs and other names: SQLite keeps what it is
	// given, usually text.
	return oidText
}

// intOID maps an integer type name to PostgreSQL's width for it: INT,
// INTEGER, INT4 and MEDIUMINT are int4, SMALLINT, INT2 and TINYINT int2,
// BIGINT, INT8 and any other name holding INT int8. SQLite stores 64 bits
// in any of them; columnTypes widens a column whose values do not fit.
func intOID(upper string) uint32 {
	if i := strings.IndexByte(upper, '('); i >= 0 {
		upper = upper[:i] // INT(11)
	}
	switch strings.TrimSpace(upper) {
	case "INT", "INTEGER", "INT4", "MEDIUMINT":
		return oidInt4
	case "SMALLINT", "INT2", "TINYINT":
		return oidInt2
	}
	return oidInt8
}

// declTypes returns the declared types of a result's columns as the
// session announces them: in an eventual-mode database every integer
// column is int8, since the rowids a node hands out there (and so any key
// or reference holding one) need 64 bits.
func (ss *session) declTypes(decl []string) []string {
	if !ss.wideInts || !slices.ContainsFunc(decl, isNarrowInt) {
		return decl
	}
	out := slices.Clone(decl)
	for i, d := range out {
		if isNarrowInt(d) {
			out[i] = "BIGINT"
		}
	}
	return out
}

// isNarrowInt reports whether a declared type is announced as int2 or int4.
func isNarrowInt(decl string) bool {
	oid := declaredOID(decl)
	return oid == oidInt2 || oid == oidInt4
}

// isIntOID reports whether oid is one of PostgreSQL's integer types.
func isIntOID(oid uint32) bool { return oid == oidInt2 || oid == oidInt4 || oid == oidInt8 }

// intFits reports whether n fits integer type oid.
func intFits(n int64, oid uint32) bool {
	switch oid {
	case oidInt2:
		return n >= math.MinInt16 && n <= math.MaxInt16
	case oidInt4:
		return n >= math.MinInt32 && n <= math.MaxInt32
	}
	return true
}

// valueOID is the type of a column known only by a value of it.
func valueOID(v any) uint32 {
	switch v.(type) {
	case int64:
		return oidInt8
	case float64:
		return oidFloat8
	case []byte:
		return oidBytea
	}
	return oidText
}

// columnTypes decides the type of each result column: its declared type,
// else the first non-NULL value among rows, else text. An int2 or int4
// column holding a value of rows that does not fit is announced wider
// (SQLite keeps 64 bits whatever the declaration), so no value is ever
// cut. fixed reports that declared types alone decided, so every run of
// the statement has these types.
func columnTypes(names, decl []string, rows [][]any, sql string) (cols []column, fixed bool) {
	cols = make([]column, len(names))
	fixed = true
	for i, n := range names {
		cols[i].name = columnName(n, sql)
		if i < len(decl) {
			cols[i].oid = declaredOID(decl[i])
		}
		if oid := cols[i].oid; oid == oidInt2 || oid == oidInt4 {
			for _, r := range rows {
				if x, ok := r[i].(int64); ok && !intFits(x, cols[i].oid) {
					cols[i].oid, fixed = oidInt8, false
					if intFits(x, oidInt4) && oid == oidInt2 {
						cols[i].oid = oidInt4
					}
				}
			}
		}
		if cols[i].oid != 0 {
			continue
		}
		fixed = false
		cols[i].oid = expressionOID(n)
		for _, r := range rows {
			if r[i] != nil {
				cols[i].oid = valueOID(r[i])
				break
			}
		}
	}
	return cols, fixed
}

// expressionOID is the type of an expression column before any value says
// otherwise: counts and lengths are integers, averages floats.
func expressionOID(sqliteName string) uint32 {
	name := strings.ToLower(sqliteName)
	switch {
	case strings.HasPrefix(name, "count("), strings.HasPrefix(name, "length("), strings.HasPrefix(name, "changes("):
		return oidInt8
	case strings.HasPrefix(name, "avg("), strings.HasPrefix(name, "total("):
		return oidFloat8
	}
	return oidText
}

// appendText appends v in PostgreSQL's text format for type oid. Values
// whose storage class does not match the column's type (SQLite allows it)
// are written in their own text form.
func appendText(b []byte, v any, oid uint32) []byte {
	switch x := v.(type) {
	case int64:
		switch oid {
		case oidBool:
			if x != 0 {
				return append(b, 't')
			}
			return append(b, 'f')
		case oidFloat8:
			return appendFloat(b, float64(x))
		}
		return strconv.AppendInt(b, x, 10)
	case float64:
		if isIntOID(oid) && x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return strconv.AppendInt(b, int64(x), 10)
		}
		return appendFloat(b, x)
	case string:
		if oid == oidBytea {
			return appendHexBytea(b, []byte(x))
		}
		return append(b, x...)
	case []byte:
		if oid == oidText && utf8.Valid(x) {
			return append(b, x...)
		}
		return appendHexBytea(b, x)
	}
	return b
}

func appendHexBytea(b, x []byte) []byte {
	b = append(b, '\\', 'x')
	return hex.AppendEncode(b, x)
}

// appendFloat writes a float8 as PostgreSQL 12+ does: the shortest text
// that reads back exactly.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendBinary appends v in PostgreSQL's binary format for type oid.
func appendBinary(b []byte, v any, oid uint32) ([]byte, error) {
	switch oid {
	case oidInt8:
		n, err := toInt(v)
		if err != nil {
			return b, err
		}
		return binary.BigEndian.AppendUint64(b, uint64(n)), nil
	case oidInt4, oidInt2:
		n, err := toInt(v)
		if err != nil {
			return b, err
		}
		if !intFits(n, oid) {
			return b, &outOfRange{n, oid}
		}
		if oid == oidInt2 {
			return binary.BigEndian.AppendUint16(b, uint16(n)), nil
		}
		return binary.BigEndian.AppendUint32(b, uint32(n)), nil
	case oidFloat8:
		f, err := toFloat(v)
		if err != nil {
			return b, err
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(f)), nil
	case oidBool:
		n, err := toInt(v)
		if err != nil {
			return b, err
		}
		if n != 0 {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	}
	switch x := v.(type) {
	case string:
		return append(b, x...), nil
	case []byte:
		return append(b, x...), nil
	}
	// text or bytea holding a number: its text form.
	return appendText(b, v, oidText), nil
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), nil
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("value %v in an integer column cannot be sent as binary int8", v)
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f, nil
		}
	}
	return 0, fmt.Errorf("value %v in a float column cannot be sent as binary float8", v)
}

// decodeParam turns a Bind parameter into a value SQLite binds: int64,
// float64, string, []byte or nil.
func decodeParam(raw []byte, format int16, oid uint32) (any, error) {
	if raw == nil {
		return nil, nil
	}
	if format == 1 {
		return decodeBinaryParam(raw, oid)
	}
	if oid == oidInt2 || oid == oidInt4 || oid == oidInt8 || oid == oidOID {
		// The text is only parsed: converted where it does not escape, it
		// is not copied to the heap.
		n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid input syntax for type integer: %q", raw)
		}
		return n, nil
	}
	s := string(raw)
	switch oid {
	case oidFloat4, oidFloat8:
		f, err := parseFloat(s)
		if err != nil {
			return nil, fmt.Errorf("invalid input syntax for type double precision: %q", s)
		}
		return f, nil
	case oidNumeric:
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return n, nil
		}
		f, err := parseFloat(s)
		if err != nil {
			return nil, fmt.Errorf("invalid input syntax for type numeric: %q", s)
		}
		return f, nil
	case oidBool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "t", "true", "y", "yes", "on", "1":
			return int64(1), nil
		case "f", "false", "n", "no", "off", "0":
			return int64(0), nil
		}
		return nil, fmt.Errorf("invalid input syntax for type boolean: %q", s)
	case oidBytea:
		return decodeByteaText(s)
	}
	return s, nil
}

func parseFloat(s string) (float64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "nan":
		return math.NaN(), nil
	case "infinity", "inf":
		return math.Inf(1), nil
	case "-infinity", "-inf":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(strings.TrimSpace(s), 64)
}

// decodeByteaText reads bytea's text input: \x hex, or the escape format.
func decodeByteaText(s string) ([]byte, error) {
	if strings.HasPrefix(s, `\x`) {
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, fmt.Errorf("invalid hexadecimal data for type bytea")
		}
		return b, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s):
			n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
			if err != nil {
				return nil, fmt.Errorf("invalid input syntax for type bytea")
			}
			out = append(out, byte(n))
			i += 3
		default:
			return nil, fmt.Errorf("invalid input syntax for type bytea")
		}
	}
	return out, nil
}

func decodeBinaryParam(raw []byte, oid uint32) (any, error) {
	switch oid {
	case oidInt2, oidInt4, oidInt8, oidOID:
		switch len(raw) {
		case 2:
			return int64(int16(binary.BigEndian.Uint16(raw))), nil
		case 4:
			return int64(int32(binary.BigEndian.Uint32(raw))), nil
		case 8:
			return int64(binary.BigEndian.Uint64(raw)), nil
		}
		return nil, fmt.Errorf("binary integer parameter of %d bytes", len(raw))
	case oidFloat4:
		if len(raw) != 4 {
			return nil, fmt.Errorf("binary float4 parameter of %d bytes", len(raw))
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(raw))), nil
	case oidFloat8:
		if len(raw) != 8 {
			return nil, fmt.Errorf("binary float8 parameter of %d bytes", len(raw))
		}
		return math.Float64frombits(binary.BigEndian.Uint64(raw)), nil
	case oidBool:
		if len(raw) != 1 {
			return nil, fmt.Errorf("binary bool parameter of %d bytes", len(raw))
		}
		return int64(raw[0]), nil
	case oidText, oidVarchar, oidBPChar, oidName, oidUnknown:
		return string(raw), nil
	case oidUUID:
		if len(raw) != 16 {
			return nil, fmt.Errorf("binary uuid parameter of %d bytes", len(raw))
		}
		h := hex.EncodeToString(raw)
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
	case oidBytea:
		return append([]byte{}, raw...), nil
	}
	return nil, fmt.Errorf("binary parameters of type %d are not supported; send it as text", oid)
}

// columnName is the name PostgreSQL gives a result column where SQLite
// names it by its expression's text: a function call is named after the
// function, a cast after its type, anything else "?column?". Aliases and
// plain column references keep SQLite's name.
func columnName(name, sql string) string {
	if name == "" || isIdentifier(name) || !strings.Contains(sql, name) || strings.Contains(sql, `"`+name+`"`) {
		return name
	}
	toks := lex(name)
	var sig []token
	for _, t := range toks {
		if t.significant() {
			sig = append(sig, t)
		}
	}
	if len(sig) >= 3 && sig[0].kind == tkWord && sig[1].text == "(" && sig[len(sig)-1].text == ")" {
		if strings.EqualFold(sig[0].text, "CAST") && len(sig) >= 6 && sig[len(sig)-3].is("AS") {
			return castTypeName(sig[len(sig)-2].text)
		}
		fn := strings.ToLower(sig[0].text)
		if typ, ok := strings.CutPrefix(fn, regPrefix); ok {
			return "reg" + typ // x::regclass
		}
		return fn
	}
	return "?column?"
}

// castTypeName is the column name PostgreSQL gives "x::type".
func castTypeName(sqliteType string) string {
	switch strings.ToUpper(sqliteType) {
	case "INTEGER":
		return "int8"
	case "REAL":
		return "float8"
	case "NUMERIC":
		return "numeric"
	case "BLOB":
		return "bytea"
	}
	return "text"
}

func isIdentifier(s string) bool {
	if !isWordStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return true
}

// outOfRange is a value too wide for the integer type its column was
// announced with (a Describe, before any value was seen).
type outOfRange struct {
	n   int64
	oid uint32
}

func (e *outOfRange) Error() string {
	name := "integer"
	if e.oid == oidInt2 {
		name = "smallint"
	}
	return fmt.Sprintf("value %d is out of range for type %s (SQLite stores it; declare the column BIGINT, or read it in text format)", e.n, name)
}
