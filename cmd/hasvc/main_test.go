package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/auth"
	"hasvc/internal/broker"
)

// TestMain lets the test binary run as the hasvc command, so process tests
// (kill -9, restart) start real nodes without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("HASVC_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"hasvc"}, strings.Fields(os.Getenv("HASVC_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	code := m.Run()
	stopPostgres()
	os.Exit(code)
}

// node is a hasvc node started in-process on free ports.
type node struct {
	t     testing.TB
	m     *Main
	url   string
	admin string
}

func startNode(t testing.TB, dir string, edit func(*Config)) *node {
	t.Helper()
	return startNodeClock(t, dir, edit, nil)
}

// testClock is a node's clock that a test moves forward: time.Now plus an
// offset.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// startNodeClock starts a node whose tokens are checked against clock (if
// not nil).
func startNodeClock(t testing.TB, dir string, edit func(*Config), clock *testClock) *node {
	t.Helper()
	m := NewMain()
	if clock != nil {
		m.Now = clock.Now
	}
	m.Stdout = io.Discard
	m.Config.Name = "n1"
	m.Config.Host = "127.0.0.1"
	m.Config.Port = 0
	m.Config.NATSPort = -1
	m.Config.PGPort = -1
	m.Config.DataDir = dir
	m.Config.LogLevel = "warn"
	if edit != nil {
		edit(&m.Config)
	}
	if err := m.Config.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n := &node{t: t, m: m, url: "http://" + m.HTTPAddr()}
	if m.Config.JWTSecret != "" {
		n.admin = clusterToken(t, "*", "admin")
	} else {
		b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
		if err != nil {
			t.Fatal(err)
		}
		n.admin = strings.TrimSpace(string(b))
	}
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) stop() {
	if n.m != nil {
		if err := n.m.Close(); err != nil {
			n.t.Errorf("close: %v", err)
		}
		n.m = nil
	}
}

// token issues a token with the node's key.
func (n *node) token(perm auth.Perm, ttl time.Duration, dbs ...string) string {
	n.t.Helper()
	return n.tokenAt(time.Now(), perm, ttl, dbs...)
}

// tokenAt mints a token with the node's key as if issued at issued: a
// token issued an hour ago for a minute has expired, without a sleep.
func (n *node) tokenAt(issued time.Time, perm auth.Perm, ttl time.Duration, dbs ...string) string {
	n.t.Helper()
	keys, _, err := auth.LoadKeys(n.m.Config.DataDir, "", "", false)
	if err != nil {
		n.t.Fatal(err)
	}
	keys.Now = func() time.Time { return issued }
	tok, err := keys.Issue(auth.Principal{Subject: "test", Databases: dbs, Perm: perm}, ttl)
	if err != nil {
		n.t.Fatal(err)
	}
	return tok
}

// try sends a request and returns the status and body. It does not fail
// the test, so goroutines other than the test's may call it.
func (n *node) try(method, path, token, body string) (int, string, error) {
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// do sends a request and returns the status and body; the test's own
// goroutine only (it fails the test on a transport error).
func (n *node) do(method, path, token, body string) (int, string) {
	n.t.Helper()
	status, out, err := n.try(method, path, token, body)
	if err != nil {
		n.t.Fatal(err)
	}
	return status, out
}

// ok sends a request that must succeed and returns the body.
func (n *node) ok(method, path, body string) string {
	n.t.Helper()
	status, out := n.do(method, path, n.admin, body)
	if status/100 != 2 {
		n.t.Fatalf("%s %s %s: %d %s", method, path, body, status, out)
	}
	return strings.TrimSuffix(out, "\n")
}

func (n *node) createDB(name string) {
	n.t.Helper()
	n.ok("POST", "/databases", fmt.Sprintf(`{"name":%q}`, name))
}

// wantError checks a JSON error response.
func wantError(t *testing.T, status int, body string, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if status != wantStatus || e.Error.Code != wantCode || e.Error.Message == "" {
		t.Fatalf("got %d %s, want %d with code %s", status, body, wantStatus, wantCode)
	}
}

// TestAncestorExamples runs the ancestor README's examples and checks the
// exact response shapes.
func TestAncestorExamples(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("mydb")
	tests := []struct {
		name, body, want string
	}{
		{"create table", `[{"sql": "CREATE TABLE users(ID INTEGER PRIMARY KEY, name TEXT)"}]`,
			`{"results":[{"columns":["rows_affected","last_insert_id"],"rows":[[0,0]]}],"sequence":1}`},
		{"named params", `[{"sql": "INSERT INTO users(name) VALUES(:name)", "params": {"name": "HA user"}}]`,
			`{"results":[{"columns":["rows_affected","last_insert_id"],"rows":[[1,1]]}],"sequence":2}`},
		{"one transaction", `[{"sql": "INSERT INTO users(name) VALUES(?)", "params": ["new HA user"]},
			{"sql": "DELETE FROM users WHERE name = ?", "params": ["new HA user"]},
			{"sql": "SELECT ID, name FROM users"}]`,
			`{"results":[{"columns":["rows_affected","last_insert_id"],"rows":[[1,2]]},{"columns":["rows_affected","last_insert_id"],"rows":[[1,2]]},{"columns":["ID","name"],"rows":[[1,"HA user"]]}],"sequence":3}`},
		{"single object read", `{"sql": "SELECT name FROM users WHERE ID = $id", "params": {"$id": 1}}`,
			`{"results":[{"columns":["name"],"rows":[["HA user"]]}]}`},
		{"returning", `{"sql": "INSERT INTO users(name) VALUES('r') RETURNING ID"}`,
			`{"results":[{"columns":["ID"],"rows":[[2]]}],"sequence":4}`},
	}
	for _, tt := range tests {
		if got := n.ok("POST", "/db/mydb", tt.body); got != tt.want {
			t.Fatalf("%s:\n got  %s\n want %s", tt.name, got, tt.want)
		}
	}
}

// TestValueRoundTrip stores values at the edges of each storage class and
// reads them back with the class kept.
func TestValueRoundTrip(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("types")
	n.ok("POST", "/db/types", `{"sql": "CREATE TABLE v (id INTEGER PRIMARY KEY, x, d DATETIME, b BOOLEAN)"}`)
	values := []string{
		`-9223372036854775808`, `9223372036854775807`, `0`, `0.1`, `1.0`, `-2.5e-300`, `1e+300`,
		`""`, `"héllo wörld ✓ 日本"`, `"quote \" backslash \\ newline \n tab \t nul-free"`,
		`{"blob":"AAECA/8="}`, `{"blob":""}`, `null`,
	}
	for i, v := range values {
		n.ok("POST", "/db/types", fmt.Sprintf(`{"sql": "INSERT INTO v (id, x, d, b) VALUES (?, ?, '2024-01-02 03:04:05', 1)", "params": [%d, %s]}`, i, v))
	}
	got := n.ok("POST", "/db/types", `{"sql": "SELECT x, typeof(x), d, b FROM v ORDER BY id"}`)
	types := []string{"integer", "integer", "integer", "real", "real", "real", "real", "text", "text", "text", "blob", "blob", "null"}
	var rows []string
	for i, v := range values {
		rows = append(rows, fmt.Sprintf(`[%s,"%s","2024-01-02 03:04:05",1]`, v, types[i]))
	}
	want := `{"results":[{"columns":["x","typeof(x)","d","b"],"rows":[` + strings.Join(rows, ",") + `]}]}`
	if got != want {
		t.Fatalf("round trip:\n got  %s\n want %s", got, want)
	}
}

// TestFailedBatchCommitsNothing checks that one failing statement undoes the
// whole request and publishes nothing.
func TestFailedBatchCommitsNothing(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("app")
	n.ok("POST", "/db/app", `{"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"}`)
	status, body := n.do("POST", "/db/app", n.admin, `[
		{"sql": "INSERT INTO t (v) VALUES ('a')"},
		{"sql": "CREATE TABLE u (x)"},
		{"sql": "INSERT INTO t (v) VALUES (NULL)"}]`)
	wantError(t, status, body, 400, "EINVALID")
	if !strings.Contains(body, `"statement":2`) {
		t.Fatalf("error does not name statement 2: %s", body)
	}
	got := n.ok("POST", "/db/app", `{"sql": "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM sqlite_schema WHERE name = 'u')"}`)
	if want := `{"results":[{"columns":["(SELECT count(*) FROM t)","(SELECT count(*) FROM sqlite_schema WHERE name = 'u')"],"rows":[[0,0]]}]}`; got != want {
		t.Fatalf("after failed batch: %s", got)
	}
	var info struct {
		StreamSeq uint64 `json:"stream_seq"`
	}
	json.Unmarshal([]byte(n.ok("GET", "/databases/app", "")), &info)
	if info.StreamSeq != 1 {
		t.Fatalf("stream_seq = %d, want 1 (only the CREATE TABLE)", info.StreamSeq)
	}
}

// natsConn connects to a node's embedded NATS server with its credential,
// as a CDC consumer would.
func natsConn(t *testing.T, n *node) *nats.Conn {
	t.Helper()
	return natsConnAccount(t, n, "")
}

// natsConnAccount connects to n's NATS server with the node credential,
// in account, one of the databases' accounts ("": the global account).
func natsConnAccount(t *testing.T, n *node, account string) *nats.Conn {
	t.Helper()
	pass := []byte(n.m.Config.NATSPass) // a cluster's, given
	if len(pass) == 0 {
		var err error
		if pass, err = os.ReadFile(filepath.Join(n.m.Config.DataDir, "nats.password")); err != nil {
			t.Fatal(err)
		}
	}
	user := "hasvc"
	if account != "" {
		user = broker.AccountUser(user, account)
	}
	nc, err := nats.Connect(n.m.NATSURL(), nats.UserInfo(user, strings.TrimSpace(string(pass))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// dbJS returns JetStream in the account of database db's stream and
// bucket, with the node credential.
func dbJS(t *testing.T, n *node, db string) jetstream.JetStream {
	t.Helper()
	account, err := n.m.engine.NATSAccount(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(natsConnAccount(t, n, account))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestChangeStream reads the database's stream with a NATS consumer and
// checks one message per committed write, in the documented format, and
// none for rolled-back or read-only requests.
func TestChangeStream(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("cdc")
	n.ok("POST", "/db/cdc", `{"sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"}`)
	n.ok("POST", "/db/cdc", `{"sql": "INSERT INTO users (name) VALUES ('a'), ('b')"}`)
	n.do("POST", "/db/cdc", n.admin, `[{"sql": "INSERT INTO users (name) VALUES ('lost')"}, {"sql": "SELECT * FROM nope"}]`)
	n.ok("POST", "/db/cdc", `{"sql": "SELECT * FROM users"}`)
	n.ok("POST", "/db/cdc", `{"sql": "UPDATE users SET name = 'B' WHERE id = 2"}`)
	n.ok("POST", "/db/cdc", `{"sql": "DELETE FROM users WHERE id = 1"}`)
	n.ok("POST", "/db/cdc", `{"sql": "UPDATE users SET name = 'none' WHERE id = 99"}`)

	// Without node names and timestamps, which vary.
	want := []string{
		`[{"database":"main","operation":"SQL","sql":"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"}]`,
		`[{"database":"main","table":"users","columns":["id","name"],"operation":"INSERT","new_rowid":1,"new_values":[1,"a"]},{"database":"main","table":"users","columns":["id","name"],"operation":"INSERT","new_rowid":2,"new_values":[2,"b"]}]`,
		`[{"database":"main","table":"users","columns":["id","name"],"operation":"UPDATE","old_rowid":2,"new_rowid":2,"old_values":[2,"b"],"new_values":[2,"B"]}]`,
		`[{"database":"main","table":"users","columns":["id","name"],"operation":"DELETE","old_rowid":1,"old_values":[1,"a"]}]`,
	}
	js := dbJS(t, n, "cdc")
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, "HASVC_cdc", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"hasvc.db.cdc"}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		var msg struct {
			Node      string          `json:"node"`
			Changes   json.RawMessage `json:"changes"`
			Timestamp int64           `json:"timestamp_ns"`
		}
		if err := json.Unmarshal(m.Data(), &msg); err != nil {
			t.Fatal(err)
		}
		if msg.Node != "n1" || msg.Timestamp < time.Now().Add(-time.Minute).UnixNano() {
			t.Fatalf("message header: %s", m.Data())
		}
		meta, _ := m.Metadata()
		if meta.Sequence.Stream != uint64(len(got)+1) {
			t.Fatalf("sequence %d, want %d", meta.Sequence.Stream, len(got)+1)
		}
		got = append(got, string(msg.Changes))
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d:\n got  %s\n want %s", i+1, got[i], want[i])
		}
	}
}

// TestTokens checks authentication and scopes.
func TestTokens(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("app")
	n.createDB("other")
	n.ok("POST", "/db/app", `{"sql": "CREATE TABLE t (x)"}`)
	read := n.token(auth.PermRead, time.Hour, "app")
	write := n.token(auth.PermWrite, time.Hour, "app")
	expired := n.tokenAt(time.Now().Add(-time.Hour), auth.PermAdmin, time.Minute, "*")
	insert := `{"sql": "INSERT INTO t VALUES (1)"}`
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "POST", "/db/app", "", insert, 401, "EUNAUTHORIZED"},
		{"garbage token", "POST", "/db/app", "not-a-jwt", insert, 401, "EUNAUTHORIZED"},
		{"expired", "POST", "/db/app", expired, insert, 401, "EUNAUTHORIZED"},
		{"wrong database", "POST", "/db/other", write, insert, 403, "EFORBIDDEN"},
		{"read token writing", "POST", "/db/app", read, insert, 403, "EFORBIDDEN"},
		{"write token creating", "POST", "/databases", write, `{"name":"app2"}`, 403, "EFORBIDDEN"},
		{"write token deleting", "DELETE", "/databases/app", write, "", 403, "EFORBIDDEN"},
		{"unknown database", "POST", "/db/nope", n.admin, insert, 404, "ENOTFOUND"},
		{"invalid name", "POST", "/db/Bad.Name", n.admin, insert, 400, "EINVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := n.do(tt.method, tt.path, tt.token, tt.body)
			wantError(t, status, body, tt.status, tt.code)
		})
	}
	if status, body := n.do("POST", "/db/app", read, `{"sql": "SELECT count(*) FROM t"}`); status != 200 {
		t.Fatalf("read token reading: %d %s", status, body)
	}
	if status, body := n.do("POST", "/db/app", write, insert); status != 200 {
		t.Fatalf("write token writing: %d %s", status, body)
	}
	if status, body := n.do("GET", "/healthz", "", ""); status != 200 {
		t.Fatalf("healthz without token: %d %s", status, body)
	}
	// A token lists only the databases it covers.
	_, body := n.do("GET", "/databases", read, "")
	if !strings.Contains(body, `"app"`) || strings.Contains(body, `"other"`) {
		t.Fatalf("list with app-only token: %s", body)
	}
}

// TestSandbox checks that tenants' SQL cannot reach hasvc's tables, other
// files, extensions or connection state.
func TestSandbox(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("app")
	for _, sql := range []string{
		"SELECT * FROM _hasvc_state",
		"UPDATE _hasvc_state SET applied_seq = 0",
		"DELETE FROM _hasvc_migrations",
		"DROP TABLE _hasvc_state",
		"CREATE TABLE _hasvc_mine (x)",
		"ATTACH DATABASE '/tmp/x.db' AS x",
		"SELECT load_extension('/tmp/x.so')",
		"PRAGMA user_version = 7",
		"PRAGMA journal_mode = DELETE",
		"PRAGMA writable_schema = ON",
		"CREATE TEMP TABLE tmp (x)",
		"BEGIN",
		"SAVEPOINT a",
		"VACUUM INTO '/tmp/steal.db'",
		"CREATE VIRTUAL TABLE f USING fts3(x)",
	} {
		status, body := n.do("POST", "/db/app", n.admin, fmt.Sprintf(`{"sql": %q}`, sql))
		if status != 403 && status != 400 {
			t.Fatalf("%s: %d %s, want refused", sql, status, body)
		}
	}
	if _, err := os.Stat("/tmp/steal.db"); err == nil {
		t.Fatal("VACUUM INTO wrote a file")
	}
	got := n.ok("POST", "/db/app", `{"sql": "PRAGMA table_info('sqlite_schema')"}`)
	if !strings.Contains(got, `"type"`) {
		t.Fatalf("schema pragma refused: %s", got)
	}
}

// TestAdvertisedHTTP: GET /cluster lists an address others can reach,
// never a wildcard listen address.
func TestAdvertisedHTTP(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	if got := advertisedHTTP("", tcp("127.0.0.1:8080"), false); got != "http://127.0.0.1:8080" {
		t.Errorf("loopback: %s", got)
	}
	if got := advertisedHTTP("db1.example:8443", tcp("[::]:8080"), true); got != "https://db1.example:8443" {
		t.Errorf("advertise without scheme: %s", got)
	}
	if got := advertisedHTTP("http://lb/", tcp("[::]:8080"), true); got != "http://lb/" {
		t.Errorf("advertise URL: %s", got)
	}
	got := advertisedHTTP("", tcp("[::]:8080"), false)
	u, err := url.Parse(got)
	if err != nil || u.Port() != "8080" || net.ParseIP(u.Hostname()) == nil || net.ParseIP(u.Hostname()).IsUnspecified() {
		t.Errorf("wildcard listen address advertised as %s", got)
	}
}

// TestSchemaShowsTenantTablesOnly reads the schema table over HTTP (a
// write request, which runs on the writer, and a read, which runs on a
// reader) and over pgwire: hasvc's own tables are never listed.
func TestSchemaShowsTenantTablesOnly(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("app")
	n.ok("POST", "/db/app", `{"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"}`)
	const want = `{"columns":["type","name"],"rows":[["index","sqlite_autoindex_t_1"],["table","t"]]}`
	for _, body := range []string{
		`{"sql": "SELECT type, name FROM sqlite_master ORDER BY name"}`,
		`[{"sql": "INSERT INTO t (v) VALUES ('a')"}, {"sql": "SELECT type, name FROM sqlite_schema ORDER BY name"}]`,
	} {
		got := n.ok("POST", "/db/app", body)
		if !strings.Contains(got, want) || strings.Contains(got, "_hasvc") {
			t.Errorf("%s:\n got  %s\n want %s", body, got, want)
		}
	}
	if psql, err := exec.LookPath("psql"); err == nil {
		out, err := n.runClient("app", psql, "-X", "-A", "-t", "-c", "SELECT group_concat(name, ',') FROM sqlite_master")
		if err != nil || strings.TrimSpace(out) != "t,sqlite_autoindex_t_1" {
			t.Errorf("psql: %q %v", out, err)
		}
	}
}
