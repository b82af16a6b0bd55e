package api

import (
	"testing"

	"hasvc/internal/tenant"
)

// FuzzParseStatements feeds arbitrary bodies to the statement parser: it
// returns statements or an EINVALID error naming what is wrong, and never
// panics.
func FuzzParseStatements(f *testing.F) {
	for _, s := range []string{
		`{"sql": "SELECT 1"}`, `[{"sql": "A", "params": [1, 1.5, "x", null, true, {"blob": "AAE="}]}]`,
		`{"sql": ":a", "params": {":a": 1, "@b": {"text_base64": "/w=="}}}`, `{"sql": "\u0000"}`,
		`{"sql": "SELECT 1\u0000; DROP TABLE pv"}`, `[]`, `[{}]`, `{"sql": 1}`, `{"sql": "?", "params": [9223372036854775808]}`,
		`{"sql": "?", "params": [[1]]}`, `[{"sql": "A"}] x`, "\xff\xfe", `{"sql": "?", "params": {"a": 1, ":a": 2}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		stmts, err := parseStatements(body)
		if err != nil {
			if code := tenant.ErrorCode(err); code != tenant.EINVALID {
				t.Fatalf("error %v has code %s, want EINVALID", err, code)
			}
			return
		}
		if len(stmts) == 0 {
			t.Fatal("no statements and no error")
		}
	})
}
