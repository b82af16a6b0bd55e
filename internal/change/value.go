package change

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Values cross JSON (HTTP results, parameters, change messages) in one
// encoding that keeps SQLite's storage class:
//
//	INTEGER  a JSON integer, exact over all of int64:   42
//	REAL     a JSON number that always has a fraction
//	         or an exponent:                             1.0, 0.1, 1e+300
//	TEXT     a JSON string:                              "text"
//	         or, if it is not valid UTF-8 (which a JSON
//	         string cannot carry exactly), an object
//	         with the base64 of its bytes:               {"text_base64": "/w=="}
//	BLOB     an object with the base64 of the bytes:    {"blob": "AAEC"}
//	NULL     null
//
// Infinite reals (SQLite has no NaN) are written 1e999 and -1e999.

// AppendValue appends the JSON encoding of v (int64, float64, string,
// []byte or nil) to buf.
func AppendValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case float64:
		switch {
		case math.IsInf(x, 1):
			return append(buf, "1e999"...)
		case math.IsInf(x, -1):
			return append(buf, "-1e999"...)
		case math.IsNaN(x):
			return append(buf, "null"...)
		}
		start := len(buf)
		buf = strconv.AppendFloat(buf, x, 'g', -1, 64)
		if bytes.IndexAny(buf[start:], ".e") < 0 {
			buf = append(buf, ".0"...)
		}
		return buf
	case string:
		if !utf8.ValidString(x) {
			buf = append(buf, `{"text_base64":"`...)
			buf = base64.StdEncoding.AppendEncode(buf, []byte(x))
			return append(buf, `"}`...)
		}
		return AppendString(buf, x)
	case []byte:
		buf = append(buf, `{"blob":"`...)
		buf = base64.StdEncoding.AppendEncode(buf, x)
		return append(buf, `"}`...)
	case bool:
		if x {
			return append(buf, '1')
		}
		return append(buf, '0')
	}
	panic(fmt.Sprintf("change: value of type %T", v))
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 bytes become
// U+FFFD, as encoding/json does.
func AppendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '"', '\\':
				buf = append(buf, '\\', b)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// ValueFromJSON converts a value decoded by encoding/json with UseNumber
// into the value it stands for. Booleans become 1 and 0, as SQLite stores
// them.
func ValueFromJSON(v any) (any, error) {
	switch x := v.(type) {
	case nil, string:
		return x, nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case json.Number:
		return numberValue(string(x))
	case map[string]any:
		if len(x) == 1 {
			if b, ok := x["blob"].(string); ok {
				data, err := base64.StdEncoding.DecodeString(b)
				if err != nil {
					return nil, fmt.Errorf("blob: %w", err)
				}
				return data, nil
			}
			if t, ok := x["text_base64"].(string); ok {
				data, err := base64.StdEncoding.DecodeString(t)
				if err != nil {
					return nil, fmt.Errorf("text_base64: %w", err)
				}
				return string(data), nil
			}
		}
		return nil, errors.New(`an object value must be {"blob": "<base64>"} or {"text_base64": "<base64>"}`)
	}
	return nil, fmt.Errorf("unsupported value %v (arrays are not values)", v)
}

// numberValue parses a JSON number: an integer if it has neither fraction
// nor exponent, a real otherwise.
func numberValue(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		return nil, fmt.Errorf("integer %s out of the 64-bit range", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, err
	}
	return f, nil
}

// Values is a row image in a change message.
type Values []any

// MarshalJSON encodes the values in the storage-class-keeping encoding.
func (vs Values) MarshalJSON() ([]byte, error) {
	return vs.appendJSON(make([]byte, 0, 16*len(vs)+2)), nil
}

func (vs Values) appendJSON(buf []byte) []byte {
	buf = append(buf, '[')
	for i, v := range vs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendValue(buf, v)
	}
	return append(buf, ']')
}

// UnmarshalJSON decodes values written by MarshalJSON.
func (vs *Values) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	out := make(Values, len(raw))
	for i, r := range raw {
		v, err := ValueFromJSON(r)
		if err != nil {
			return fmt.Errorf("value %d: %w", i, err)
		}
		out[i] = v
	}
	*vs = out
	return nil
}

// ValueSize returns about how many bytes v takes in memory, for limits on
// results and messages.
func ValueSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 8
	case []byte:
		return len(x) + 8
	}
	return 8
}
