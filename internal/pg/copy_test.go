package pg

import "testing"

func TestParseCopy(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want copySpec
		err  string
	}{
		{`COPY t FROM STDIN`, copySpec{table: "t", from: true, delim: '\t', null: `\N`, quote: '"'}, ""},
		{`copy public."T" (a, "B") from stdin with csv header delimiter as ';' null as 'NA'`,
			copySpec{table: `"T"`, columns: []string{"a", `"B"`}, from: true, csv: true, header: true, delim: ';', null: "NA", quote: '"', escape: '"'}, ""},
		{`COPY t TO STDOUT (FORMAT csv, HEADER false, QUOTE '''', ESCAPE '\')`,
			copySpec{table: "t", csv: true, delim: ',', quote: '\'', escape: '\\'}, ""},
		{`COPY (SELECT a, (b) FROM t) TO STDOUT`, copySpec{query: "SELECT a, (b) FROM t", delim: '\t', null: `\N`, quote: '"'}, ""},
		{`COPY t FROM STDIN BINARY`, copySpec{}, "0A000"},
		{`COPY t FROM STDIN (QUOTE '"')`, copySpec{}, "0A000"},
		{`COPY t FROM '/tmp/x'`, copySpec{}, "42501"},
		{`COPY (SELECT 1) FROM STDIN`, copySpec{}, "42601"},
		{`COPY t FROM STDIN (DELIMITER ',,')`, copySpec{}, "0A000"},
	} {
		got, err := parseCopy(c.sql)
		if c.err != "" {
			if sqlstate(err) != c.err {
				t.Errorf("%s: error %v, want %s", c.sql, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if got.table != c.want.table || got.query != c.want.query || got.from != c.want.from || got.csv != c.want.csv ||
			got.header != c.want.header || got.delim != c.want.delim || got.null != c.want.null || got.quote != c.want.quote ||
			got.escape != c.want.escape || len(got.columns) != len(c.want.columns) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.sql, *got, c.want)
		}
	}
}

// FuzzCopyRecord: the COPY record reader never panics, and a record it
// takes is never empty nor past the input.
func FuzzCopyRecord(f *testing.F) {
	for _, s := range []string{"1\ta\n", "a,\"b\n\"\"c\",\n", "\\.\n", "\"unterminated", "\\x4\\777\\\n", ""} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, buf []byte, csv bool) {
		spec, _ := parseCopy("COPY t FROM STDIN")
		if csv {
			spec, _ = parseCopy("COPY t FROM STDIN (FORMAT csv)")
		}
		for _, final := range []bool{false, true} {
			rest := buf
			for len(rest) > 0 {
				_, n, err := spec.nextRecord(rest, final)
				if err != nil || n == 0 {
					break
				}
				if n > len(rest) {
					t.Fatalf("took %d of %d bytes", n, len(rest))
				}
				rest = rest[n:]
			}
		}
	})
}
