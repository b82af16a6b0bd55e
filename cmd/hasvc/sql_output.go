package main

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The output modes of hasvc sql, as the sqlite3 shell names them.

func (sh *shell) setMode(m string) error {
	switch m {
	case "table", "csv", "json", "line":
		sh.mode = m
		return nil
	}
	return fmt.Errorf("unknown mode %q: want table, csv, json or line", m)
}

// print writes one result in the shell's mode. A result without columns
// prints nothing.
func (sh *shell) print(r result) {
	if len(r.Columns) == 0 {
		return
	}
	switch sh.mode {
	case "csv":
		w := csv.NewWriter(sh.out)
		_ = w.Write(r.Columns)
		for _, row := range r.Rows {
			rec := make([]string, len(row))
			for i, v := range row {
				rec[i] = text(v, "")
			}
			_ = w.Write(rec)
		}
		w.Flush()
	case "json":
		// One object per row, keys in column order, values as the API
		// gives them (blobs as {"blob": base64}).
		var b strings.Builder
		b.WriteString("[")
		for i, row := range r.Rows {
			if i > 0 {
				b.WriteString(",\n")
			}
			b.WriteString("{")
			for j, v := range row {
				if j > 0 {
					b.WriteString(",")
				}
				k, _ := json.Marshal(r.Columns[j])
				val, _ := json.Marshal(v)
				b.Write(k)
				b.WriteString(":")
				b.Write(val)
			}
			b.WriteString("}")
		}
		b.WriteString("]\n")
		fmt.Fprint(sh.out, b.String())
	case "line":
		width := 0
		for _, c := range r.Columns {
			width = max(width, utf8.RuneCountInString(c))
		}
		for i, row := range r.Rows {
			if i > 0 {
				fmt.Fprintln(sh.out)
			}
			for j, v := range row {
				fmt.Fprintf(sh.out, "%*s = %s\n", width, r.Columns[j], text(v, "NULL"))
			}
		}
	default:
		sh.table(r)
	}
}

// table draws a result as a box of columns, numbers to the right.
func (sh *shell) table(r result) {
	if len(r.Rows) == 0 {
		return
	}
	cells := make([][]string, len(r.Rows))
	width := make([]int, len(r.Columns))
	for i, c := range r.Columns {
		width[i] = utf8.RuneCountInString(c)
	}
	for i, row := range r.Rows {
		cells[i] = make([]string, len(row))
		for j, v := range row {
			s := strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(text(v, "NULL"))
			cells[i][j] = s
			width[j] = max(width[j], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	rule := func() {
		for _, w := range width {
			b.WriteString("+" + strings.Repeat("-", w+2))
		}
		b.WriteString("+\n")
	}
	line := func(vals []string, right func(int) bool) {
		for j, v := range vals {
			pad := strings.Repeat(" ", width[j]-utf8.RuneCountInString(v))
			if right(j) {
				b.WriteString("| " + pad + v + " ")
			} else {
				b.WriteString("| " + v + pad + " ")
			}
		}
		b.WriteString("|\n")
	}
	rule()
	line(r.Columns, func(int) bool { return false })
	rule()
	for i, row := range cells {
		line(row, func(j int) bool { _, num := r.Rows[i][j].(json.Number); return num })
	}
	rule()
	fmt.Fprint(sh.out, b.String())
}

// text shows a value as text: numbers as the API wrote them, blobs as
// X'hex', NULL as null.
func text(v any, null string) string {
	switch v := v.(type) {
	case nil:
		return null
	case string:
		return v
	case json.Number:
		return v.String()
	case map[string]any:
		if b, ok := v["blob"].(string); ok {
			raw, err := base64.StdEncoding.DecodeString(b)
			if err == nil {
				return "X'" + strings.ToUpper(hex.EncodeToString(raw)) + "'"
			}
		}
		if t, ok := v["text_base64"].(string); ok {
			if raw, err := base64.StdEncoding.DecodeString(t); err == nil {
				return strings.ToValidUTF8(string(raw), "\uFFFD")
			}
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}
