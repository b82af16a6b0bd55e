package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hasvc/internal/tenant"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestCreateDeleteLeavesNothing creates and deletes 100 databases and
// checks that no file, stream or bucket is left.
func TestCreateDeleteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	for i := range 100 {
		name := fmt.Sprintf("db-%03d", i)
		n.createDB(name)
		n.ok("POST", "/db/"+name, `[{"sql":"CREATE TABLE t (x)"},{"sql":"INSERT INTO t VALUES (1)"}]`)
	}
	status, body := n.do("POST", "/databases", n.admin, `{"name":"db-000"}`)
	wantError(t, status, body, 409, "ECONFLICT")
	for i := range 100 {
		n.ok("DELETE", fmt.Sprintf("/databases/db-%03d", i), "")
	}
	status, body = n.do("DELETE", "/databases/db-000", n.admin, "")
	wantError(t, status, body, 404, "ENOTFOUND")
	status, body = n.do("POST", "/db/db-000", n.admin, `{"sql":"SELECT 1"}`)
	wantError(t, status, body, 404, "ENOTFOUND")
	if got := n.ok("GET", "/databases", ""); got != `{"databases":[]}` {
		t.Fatalf("list after deleting all: %s", got)
	}
	files, _ := os.ReadDir(filepath.Join(dir, "db"))
	if len(files) != 0 {
		t.Fatalf("%d files left in db/, first %s", len(files), files[0].Name())
	}
	// Nothing is left in any account but the node's own buckets.
	var streams []string
	for i := -1; i < tenant.Accounts; i++ {
		account := ""
		if i >= 0 {
			account = tenant.AccountName(i)
		}
		js, err := jetstream.New(natsConnAccount(t, n, account))
		if err != nil {
			t.Fatal(err)
		}
		for s := range js.StreamNames(context.Background()).Name() {
			streams = append(streams, s)
		}
	}
	sort.Strings(streams)
	if strings.Join(streams, ",") != "KV_hasvc_databases,KV_hasvc_node_slots,KV_hasvc_nodes,KV_hasvc_revoked" {
		t.Fatalf("streams left: %v", streams)
	}
}

// TestBackupOpensInSQLiteShell downloads a backup as curl -O -J would and
// reads it with the sqlite3 shell.
func TestBackupOpensInSQLiteShell(t *testing.T) {
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatal("the sqlite3 shell is needed (Debian package sqlite3)")
	}
	n := startNode(t, t.TempDir(), nil)
	n.createDB("shop")
	n.ok("POST", "/db/shop", `[{"sql":"CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)"},
		{"sql":"INSERT INTO items (name, price) VALUES ('pen', 1.5), ('ink', 12.25)"}]`)
	req, _ := http.NewRequest("GET", n.url+"/db/shop/backup", nil)
	req.Header.Set("Authorization", "Bearer "+n.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, want := resp.Header.Get("Content-Disposition"), `attachment; filename="shop-1.db"`; got != want {
		t.Fatalf("Content-Disposition = %q, want %q", got, want)
	}
	data, _ := io.ReadAll(resp.Body)
	path := filepath.Join(t.TempDir(), "shop-1.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sqlite3, path, "PRAGMA integrity_check; SELECT name, price FROM items ORDER BY id;").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v %s", err, out)
	}
	if got, want := string(out), "ok\npen|1.5\nink|12.25\n"; got != want {
		t.Fatalf("sqlite3 printed %q, want %q", got, want)
	}
}

// TestImportFileAndMemoryMode starts a node in memory mode with a file to
// import, as the ancestor's "ha -m mydatabase.db", then restarts it: the
// database comes back from the stream alone.
func TestImportFileAndMemoryMode(t *testing.T) {
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatal("the sqlite3 shell is needed (Debian package sqlite3)")
	}
	src := filepath.Join(t.TempDir(), "mydatabase.db")
	script := `CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, pic BLOB);
		INSERT INTO users (name, pic) VALUES ('ann', x'00ff'), ('bob', NULL);
		CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
		INSERT INTO kv VALUES ('a', 1.5), ('b', 'two');
		CREATE INDEX users_name ON users (name);
		CREATE VIEW names AS SELECT name FROM users;`
	if out, err := exec.Command(sqlite3, src, script).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, out)
	}
	dir := t.TempDir()
	edit := func(c *Config) { c.Memory = true; c.Import = src }
	n := startNode(t, dir, edit)
	query := `[{"sql":"SELECT id, name, pic FROM users ORDER BY id"},{"sql":"SELECT k, v FROM kv ORDER BY k"},{"sql":"SELECT * FROM names ORDER BY name"},{"sql":"SELECT count(*) FROM sqlite_schema WHERE name = 'users_name'"}]`
	want := `{"results":[{"columns":["id","name","pic"],"rows":[[1,"ann",{"blob":"AP8="}],[2,"bob",null]]},{"columns":["k","v"],"rows":[["a",1.5],["b","two"]]},{"columns":["name"],"rows":[["ann"],["bob"]]},{"columns":["count(*)"],"rows":[[1]]}]}`
	if got := n.ok("POST", "/db/mydatabase", query); got != want {
		t.Fatalf("imported:\n got  %s\n want %s", got, want)
	}
	n.ok("POST", "/db/mydatabase", `{"sql":"INSERT INTO users (name) VALUES ('cy')"}`)
	if files, _ := os.ReadDir(filepath.Join(dir, "db")); len(files) != 0 {
		t.Fatalf("memory mode wrote %d files to db/", len(files))
	}
	n.stop()

	// Same arguments again: the database exists, so it is not imported a
	// second time, and the in-memory copy is rebuilt from the stream.
	n = startNode(t, dir, edit)
	got := n.ok("POST", "/db/mydatabase", `{"sql":"SELECT group_concat(name) FROM users"}`)
	if want := `{"results":[{"columns":["group_concat(name)"],"rows":[["ann,bob,cy"]]}]}`; got != want {
		t.Fatalf("after restart: %s", got)
	}
}

// TestConfigPrecedence checks defaults < config file < environment < flags.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hasvc.json")
	os.WriteFile(file, []byte(`{"port": 1111, "name": "from-file", "fsync": "always", "data-dir": "/from/file"}`), 0o600)
	env := map[string]string{"HA_CONFIG": file, "HA_PORT": "2222", "HA_NAME": "from-env"}
	var c Config = DefaultConfig()
	if err := c.Parse([]string{"-n", "from-flag"}, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.Name != "from-flag" || c.Port != 2222 || c.Fsync != "always" || c.DataDir != "/from/file" || c.NATSPort != 4222 {
		t.Fatalf("config = %+v", c)
	}
	var stderr bytes.Buffer
	bad := DefaultConfig()
	err := bad.Parse([]string{"--fsync", "sometimes", "--port", "70000", "--log-format", "xml"}, func(string) string { return "" }, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--fsync") || !strings.Contains(err.Error(), "--port 70000") || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("Validate: %v", err)
	}
}

// TestConfigExample: the example config file in deploy/ is one a node
// takes, numbers and all.
func TestConfigExample(t *testing.T) {
	c := DefaultConfig()
	env := map[string]string{"HA_CONFIG": filepath.Join("..", "..", "deploy", "config.json")}
	if err := c.Parse(nil, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.Name != "db1" || c.MaxDBSize != 1073741824 || c.Fsync != "always" || c.LogFormat != "json" || c.TokenConcurrency != 32 {
		t.Fatalf("config = %+v", c)
	}
}

// TestTokenCommand runs "hasvc token" and uses the token it prints.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.createDB("app")
	n.ok("POST", "/db/app", `{"sql":"CREATE TABLE t (x)"}`)
	var stdout, stderr bytes.Buffer
	if code := runToken([]string{"--db", "app", "--perm", "read", "--ttl", "1h", "--data-dir", dir}, func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("token: exit %d: %s", code, stderr.String())
	}
	tok := strings.TrimSpace(stdout.String())
	if strings.Count(tok, ".") != 2 || strings.Contains(tok, "\n") {
		t.Fatalf("token output %q is not one JWT", stdout.String())
	}
	if status, body := n.do("POST", "/db/app", tok, `{"sql":"SELECT count(*) FROM t"}`); status != 200 {
		t.Fatalf("read with printed token: %d %s", status, body)
	}
	status, body := n.do("POST", "/db/app", tok, `{"sql":"INSERT INTO t VALUES (1)"}`)
	wantError(t, status, body, 403, "EFORBIDDEN")
	if code := runToken([]string{"--db", "app", "--perm", "root", "--data-dir", dir}, func(string) string { return "" }, io.Discard, io.Discard); code == 0 {
		t.Fatal("token with an invalid permission succeeded")
	}
	// Help is asked for: stdout, status 0. A bad flag: stderr, status 2.
	stdout.Reset()
	stderr.Reset()
	if code := runToken([]string{"--help"}, func(string) string { return "" }, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "-db") || stderr.Len() != 0 {
		t.Fatalf("token --help: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := runToken([]string{"--bogus"}, func(string) string { return "" }, &stdout, &stderr); code != 2 || stdout.Len() != 0 || stderr.Len() == 0 {
		t.Fatalf("token --bogus: exit %d, stdout %q", code, stdout.String())
	}
}

// TestListDatabases: the listing has every database once, sorted by name,
// with its newest configuration, and none that was deleted.
func TestListDatabases(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	for _, name := range []string{"c", "a", "b", "d"} {
		n.createDB(name)
	}
	n.ok("DELETE", "/databases/a", "")
	n.ok("PATCH", "/databases/b", `{"max_size": 20000000}`)
	var list struct {
		Databases []struct {
			Name    string `json:"name"`
			MaxSize int64  `json:"max_size"`
		} `json:"databases"`
	}
	if err := json.Unmarshal([]byte(n.ok("GET", "/databases", "")), &list); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range list.Databases {
		got = append(got, fmt.Sprint(d.Name, ":", d.MaxSize == 20000000))
	}
	if strings.Join(got, " ") != "b:true c:false d:false" {
		t.Fatalf("listed %v", got)
	}
}
