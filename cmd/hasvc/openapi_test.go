package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"hasvc/internal/auth"
)

// TestOpenAPIResponses sends a request to every route of a real node, good
// ones and bad ones, and checks each request and answer against
// /openapi.json: the route, its parameters and body, the status (which
// must be documented) and the answer's body against its schema.
func TestOpenAPIResponses(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	resp, err := http.Get(n.url + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: n.url}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"application/vnd.sqlite3", "application/sql", "text/event-stream", "text/html", "text/javascript", "text/css", "text/plain"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx := context.Background()
	seen := map[string]bool{}

	// call sends one request, checks it and its answer against the
	// document, and returns the status and body.
	call := func(method, path, token, ctype, body string) (int, []byte) {
		t.Helper()
		newReq := func() *http.Request {
			req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			return req
		}
		vreq := newReq()
		route, params, err := router.FindRoute(vreq)
		if err != nil {
			t.Fatalf("%s %s: not in openapi.json: %v", method, path, err)
		}
		seen[method+" "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		resp, err := client.Do(newReq())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []byte
		opts := &openapi3filter.Options{IncludeResponseStatus: true}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			opts.ExcludeResponseBody = true // an endless stream
		} else if out, err = io.ReadAll(resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode < 400 {
			// A request the node took must be one the document allows.
			if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
				t.Errorf("%s %s: the node took a request openapi.json does not allow: %v", method, path, err)
			}
		}
		err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{RequestValidationInput: in,
			Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(out)), Options: opts})
		if err != nil {
			t.Errorf("%s %s: answer %d %.300s does not match openapi.json: %v", method, path, resp.StatusCode, out, err)
		}
		return resp.StatusCode, out
	}
	want := func(status int) func(int, []byte) {
		return func(got int, body []byte) {
			t.Helper()
			if got != status {
				t.Errorf("status %d, want %d: %.300s", got, status, body)
			}
		}
	}
	admin := n.admin
	reader := n.token(auth.PermRead, time.Hour, "shop")

	want(302)(call("GET", "/", "", "", ""))
	want(302)(call("GET", "/ui", "", "", ""))
	want(200)(call("GET", "/ui/console.js", "", "", ""))
	want(404)(call("GET", "/ui/nope.js", "", "", ""))
	want(200)(call("GET", "/openapi.json", "", "", ""))
	want(200)(call("GET", "/healthz", "", "", ""))
	want(200)(call("GET", "/readyz", "", "", ""))
	want(200)(call("GET", "/metrics", admin, "", ""))
	want(403)(call("GET", "/metrics", reader, "", ""))
	want(200)(call("GET", "/cluster", admin, "", ""))

	want(201)(call("POST", "/databases", admin, "application/json", `{"name": "shop", "snapshot_interval": "1h", "retention": {"snapshots": 2}}`))
	want(409)(call("POST", "/databases", admin, "application/json", `{"name": "shop"}`))
	want(400)(call("POST", "/databases", admin, "application/json", `{"name": "Bad Name"}`))
	want(401)(call("POST", "/databases", "", "application/json", `{"name": "nobody"}`))
	want(200)(call("GET", "/databases", admin, "", ""))
	want(200)(call("GET", "/databases/shop", admin, "", ""))
	want(404)(call("GET", "/databases/nope", admin, "", ""))
	want(200)(call("PATCH", "/databases/shop", admin, "application/json", `{"max_statement_time": "10s"}`))

	want(200)(call("POST", "/db/shop", admin, "application/json", `[{"sql": "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB)"},
		{"sql": "INSERT INTO items(name, price, data) VALUES (:name, :price, :data)", "params": {"name": "pen", "price": 1.5, "data": {"blob": "AP8="}}},
		{"sql": "INSERT INTO items(name) VALUES (?)", "params": [null]}]`))
	_, body := call("POST", "/db/shop", reader, "application/json", `{"sql": "SELECT * FROM items ORDER BY id"}`)
	if !strings.Contains(string(body), `[1,"pen",1.5,{"blob":"AP8="}]`) {
		t.Errorf("select: %s", body)
	}
	want(400)(call("POST", "/db/shop", admin, "application/json", `[{"sql": "SELECT 1"}, {"sql": "SELECT * FROM nope"}]`))
	want(403)(call("POST", "/db/shop", reader, "application/json", `{"sql": "DELETE FROM items"}`))
	want(404)(call("POST", "/db/nope", admin, "application/json", `{"sql": "SELECT 1"}`))
	want(200)(call("POST", "/db/shop?min_seq=1&timeout=2s", reader, "application/json", `{"sql": "SELECT count(*) FROM items"}`))
	want(504)(call("POST", "/db/shop?min_seq=99&timeout=100ms", reader, "application/json", `{"sql": "SELECT 1"}`))

	_, file := call("GET", "/db/shop/backup", reader, "", "")
	want(200)(call("GET", "/db/shop/backup?format=sql", reader, "", ""))
	want(201)(call("POST", "/databases?name=copy", admin, "application/vnd.sqlite3", string(file)))
	want(400)(call("POST", "/databases?name=junk", admin, "application/vnd.sqlite3", "not a database"))

	_, body = call("POST", "/db/shop/snapshot", admin, "", "")
	var snap struct{ Sequence uint64 }
	if err := json.Unmarshal(body, &snap); err != nil || snap.Sequence == 0 {
		t.Fatalf("snapshot: %s", body)
	}
	want(200)(call("POST", "/db/shop/snapshot", admin, "", ""))
	want(403)(call("POST", "/db/shop/snapshot", reader, "", ""))
	want(200)(call("GET", "/db/shop/snapshots", reader, "", ""))
	want(200)(call("GET", "/db/shop/snapshot", reader, "", ""))
	want(200)(call("GET", fmt.Sprintf("/db/shop/snapshots/%d", snap.Sequence), reader, "", ""))
	want(404)(call("GET", "/db/shop/snapshots/999", reader, "", ""))
	want(200)(call("GET", "/db/shop/history?limit=5", reader, "", ""))
	want(200)(call("GET", "/db/shop/conflicts?limit=5", reader, "", ""))
	want(400)(call("GET", "/db/shop/conflicts?limit=0", reader, "", ""))
	want(400)(call("GET", "/db/shop/changes?from=soon", reader, "", ""))
	want(200)(call("GET", "/db/shop/changes?from=0&format=rows", reader, "", ""))
	want(200)(call("PUT", "/db/shop/consumers/app", reader, "application/json", `{"from_seq": 1}`))
	want(204)(call("DELETE", "/db/shop/consumers/app", reader, "", ""))

	want(200)(call("GET", "/token", reader, "", ""))
	_, body = call("POST", "/tokens", admin, "application/json", `{"databases": ["shop"], "perm": "write", "ttl": "1h", "subject": "app"}`)
	var minted struct{ Token string }
	if err := json.Unmarshal(body, &minted); err != nil || minted.Token == "" {
		t.Fatalf("mint: %s", body)
	}
	want(403)(call("POST", "/tokens", reader, "application/json", `{"databases": ["shop"]}`))
	want(200)(call("POST", "/tokens/revoke", admin, "application/json", `{"token": "`+minted.Token+`"}`))
	want(200)(call("POST", "/databases/shop/repair", admin, "", ""))
	want(204)(call("DELETE", "/databases/copy", admin, "", ""))
	want(404)(call("DELETE", "/databases/copy", admin, "", ""))

	// Every documented route was tried.
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !seen[method+" "+path] {
				t.Errorf("%s %s is documented but not tried here", method, path)
			}
		}
	}
}
