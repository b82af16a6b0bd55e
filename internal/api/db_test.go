package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"hasvc/internal/engine"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

func TestParseStatements(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []sqlite.Statement
	}{
		{"one object", `{"sql": "SELECT 1"}`, []sqlite.Statement{{SQL: "SELECT 1"}}},
		{"array", `[{"sql": "A"}, {"sql": "B", "params": []}]`, []sqlite.Statement{{SQL: "A"}, {SQL: "B", Params: []any{}}}},
		{"positional", `{"sql": "?", "params": [1, 1.5, "x", null, true, {"blob": "AAE="}]}`,
			[]sqlite.Statement{{SQL: "?", Params: []any{int64(1), 1.5, "x", nil, int64(1), []byte{0, 1}}}}},
		{"named prefixes", `{"sql": ":a", "params": {":a": 1, "@b": 2, "$c": 3, "d": 4}}`,
			[]sqlite.Statement{{SQL: ":a", Params: map[string]any{"a": int64(1), "b": int64(2), "c": int64(3), "d": int64(4)}}}},
		{"exact int64", `{"sql": "?", "params": [9223372036854775807]}`, []sqlite.Statement{{SQL: "?", Params: []any{int64(9223372036854775807)}}}},
		{"whitespace around", "\n  {\"sql\": \"X\"}  \n", []sqlite.Statement{{SQL: "X"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatements([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestParseStatementsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		statement        int
	}{
		{"empty", "", "empty body", -1},
		{"empty array", "[]", "no statements", -1},
		{"bad json", `{"sql": `, "the JSON ends early", -1},
		{"syntax", `{"sql": x}`, "malformed JSON at byte", -1},
		{"trailing", `{"sql": "A"} {"sql": "B"}`, "data after the statements", -1},
		{"wrong type", `{"sql": 1}`, `"sql" cannot be a JSON number`, -1},
		{"missing sql", `[{"sql": "A"}, {"params": []}]`, `missing "sql"`, 1},
		{"int overflow", `{"sql": "?", "params": [9223372036854775808]}`, "out of the 64-bit range", 0},
		{"array value", `{"sql": "?", "params": [[1]]}`, "arrays are not values", 0},
		{"bad blob", `{"sql": "?", "params": [{"blob": "!"}]}`, "param 1: blob", 0},
		{"duplicate name", `{"sql": ":a", "params": {":a": 1, "a": 2}}`, "given twice", 0},
		{"params scalar", `{"sql": "?", "params": 5}`, "params must be an array or an object", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseStatements([]byte(tc.body))
			if tenant.ErrorCode(err) != tenant.EINVALID {
				t.Fatalf("code %q (%v), want EINVALID", tenant.ErrorCode(err), err)
			}
			if msg := tenant.ErrorMessage(err); !strings.Contains(msg, tc.want) {
				t.Fatalf("message %q, want it to contain %q", msg, tc.want)
			}
			if got := tenant.ErrorStatement(err); got != tc.statement {
				t.Fatalf("statement %d, want %d", got, tc.statement)
			}
		})
	}
}

func TestExecOptions(t *testing.T) {
	for _, tc := range []struct {
		name, query, header string
		want                engine.ExecOptions
		bad                 bool
	}{
		{"none", "", "", engine.ExecOptions{}, false},
		{"min_seq", "min_seq=42", "", engine.ExecOptions{MinSeq: 42}, false},
		{"header", "", "7", engine.ExecOptions{MinSeq: 7}, false},
		{"query wins", "min_seq=3", "7", engine.ExecOptions{MinSeq: 3}, false},
		{"strong", "consistency=strong&timeout=2s", "", engine.ExecOptions{Strong: true, Wait: 2 * time.Second}, false},
		{"local", "consistency=local", "", engine.ExecOptions{}, false},
		{"bad min_seq", "min_seq=-1", "", engine.ExecOptions{}, true},
		{"bad consistency", "consistency=linear", "", engine.ExecOptions{}, true},
		{"timeout too long", "timeout=2m", "", engine.ExecOptions{}, true},
		{"timeout not positive", "timeout=0s", "", engine.ExecOptions{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/db/x?"+tc.query, nil)
			if tc.header != "" {
				req.Header.Set("X-Hasvc-Min-Seq", tc.header)
			}
			got, err := execOptions(echo.New().NewContext(req, httptest.NewRecorder()))
			if tc.bad {
				if tenant.ErrorCode(err) != tenant.EINVALID {
					t.Fatalf("got %+v, %v; want EINVALID", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestErrorResponses checks the one code-to-status mapping and the body
// every error leaves the API with.
func TestErrorResponses(t *testing.T) {
	s := &Server{Logger: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code, msg  string
		statement  int
		hasStmtKey bool
	}{
		{"invalid at a statement", tenant.AtStatement(tenant.Errorf(tenant.EINVALID, "no such table: x"), 2), 400, "EINVALID", "no such table: x", 2, true},
		{"unauthorized", tenant.Errorf(tenant.EUNAUTHORIZED, "bad token"), 401, "EUNAUTHORIZED", "bad token", 0, false},
		{"forbidden", tenant.Errorf(tenant.EFORBIDDEN, "no"), 403, "EFORBIDDEN", "no", 0, false},
		{"not found", tenant.Errorf(tenant.ENOTFOUND, "gone"), 404, "ENOTFOUND", "gone", 0, false},
		{"conflict", tenant.Errorf(tenant.ECONFLICT, "taken"), 409, "ECONFLICT", "taken", 0, false},
		{"too large", tenant.Errorf(tenant.ETOOLARGE, "big"), 413, "ETOOLARGE", "big", 0, false},
		{"timeout", tenant.Errorf(tenant.ETIMEOUT, "slow"), 504, "ETIMEOUT", "slow", 0, false},
		{"unavailable", tenant.Errorf(tenant.EUNAVAILABLE, "down"), 503, "EUNAVAILABLE", "down", 0, false},
		{"uncoded error hides its text", errors.New("secret detail from a library"), 500, "EINTERNAL", "internal error", 0, false},
		{"body limit", &http.MaxBytesError{Limit: 10}, 413, "ETOOLARGE", "request body over 10 bytes", 0, false},
		{"route not found", echo.ErrNotFound, 404, "ENOTFOUND", "Not Found", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.handleError(tc.err, echo.New().NewContext(httptest.NewRequest("GET", "/", nil), rec))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			var body struct {
				Error struct {
					Code      string `json:"code"`
					Message   string `json:"message"`
					Statement *int   `json:"statement"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.Error.Code != tc.code || body.Error.Message != tc.msg {
				t.Fatalf("body %s, want code %s message %q", rec.Body, tc.code, tc.msg)
			}
			if (body.Error.Statement != nil) != tc.hasStmtKey || (tc.hasStmtKey && *body.Error.Statement != tc.statement) {
				t.Fatalf("body %s, want statement %d (%v)", rec.Body, tc.statement, tc.hasStmtKey)
			}
		})
	}
}

// TestEveryCodeHasAStatus: no code falls through to 500 by omission.
func TestEveryCodeHasAStatus(t *testing.T) {
	for _, code := range []string{tenant.EINVALID, tenant.ENOTFOUND, tenant.ECONFLICT, tenant.EUNAUTHORIZED,
		tenant.EFORBIDDEN, tenant.ETOOLARGE, tenant.EUNAVAILABLE, tenant.ETIMEOUT, tenant.ETOOMANY, tenant.EINTERNAL} {
		if _, ok := statusOf[code]; !ok {
			t.Errorf("%s has no HTTP status", code)
		}
	}
}
