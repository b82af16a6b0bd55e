package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/auth"
)

// mintToken runs "hasvc token" with args and returns the token.
func mintToken(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := runToken(args, func(string) string { return "" }, &out, &errOut); code != 0 {
		t.Fatalf("hasvc token %v: exit %d: %s", args, code, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// streamSeq returns the last sequence of database db's stream.
func (n *node) streamSeq(db string) uint64 {
	n.t.Helper()
	var info struct {
		StreamSeq uint64 `json:"stream_seq"`
	}
	if err := json.Unmarshal([]byte(n.ok("GET", "/databases/"+db, "")), &info); err != nil {
		n.t.Fatal(err)
	}
	return info.StreamSeq
}

// TestNATSTenantAccess reads a database's change stream over NATS with a
// tenant's token, and tries what such a token must not do: reach another
// database's stream, put messages into any stream (by publishing, or by
// having JetStream deliver to a stream's subject), see other clients'
// traffic, create consumers, or outlive its revocation.
func TestNATSTenantAccess(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("feed")
	n.createDB("other")
	n.ok("POST", "/db/feed", `{"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}`)
	n.ok("POST", "/db/feed", `{"sql": "INSERT INTO t (v) VALUES ('hello')"}`)
	n.ok("POST", "/db/other", `{"sql": "CREATE TABLE secret (v TEXT)"}`)
	tok := mintToken(t, "--nats", "--db", "feed", "--data-dir", n.m.Config.DataDir)
	if code, body := n.do("PUT", "/db/feed/consumers/app", tok, ""); code != 200 || !strings.Contains(body, `"stream":"HASVC_feed"`) {
		t.Fatalf("create consumer: %d %s", code, body)
	}
	if code, body := n.do("PUT", "/db/other/consumers/app", tok, ""); code != 403 {
		t.Fatalf("consumer on another database: %d %s", code, body)
	}

	disconnected := make(chan struct{}, 4)
	nc, err := nats.Connect(n.m.NATSURL(), nats.Token(tok), nats.MaxReconnects(0),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Everything the tenant's account carries: nothing of other clients'.
	var seen []string
	spy, err := nc.Subscribe(">", func(m *nats.Msg) { seen = append(seen, m.Subject+" "+string(m.Data)) })
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, "HASVC_feed", "app")
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, string(m.Data()))
		if err := m.Ack(); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if len(got) != 2 || !strings.Contains(got[1], `"hello"`) {
		t.Fatalf("fetched %q", got)
	}

	feedSeq, otherSeq := n.streamSeq("feed"), n.streamSeq("other")
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := js.Consumer(short, "HASVC_other", "app"); err == nil {
		t.Fatal("the token reached another database's stream")
	}
	if _, err := js.CreateOrUpdateConsumer(short, "HASVC_feed", jetstream.ConsumerConfig{Durable: "mine"}); err == nil {
		t.Fatal("the token created a consumer over NATS")
	}
	// Forgeries: a publish on the databases' subjects, and fetches whose
	// replies JetStream would deliver there.
	nc.Publish("hasvc.db.feed", []byte(`{"changes":[{"operation":"SQL","sql":"DROP TABLE t"}]}`))
	nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.HASVC_feed.app", "hasvc.db.other", []byte(`{"batch":5}`))
	nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.HASVC_feed.app", "hasvc.db.feed", []byte(`{"batch":5}`))
	nc.Flush()
	n.ok("POST", "/db/other", `{"sql": "INSERT INTO secret VALUES ('other tenant''s data')"}`)
	time.Sleep(time.Second)
	if f, o := n.streamSeq("feed"), n.streamSeq("other"); f != feedSeq || o != otherSeq+1 {
		t.Fatalf("streams went from %d, %d to %d, %d: a tenant put messages in", feedSeq, otherSeq, f, o)
	}
	spy.Unsubscribe()
	for _, s := range seen {
		if strings.Contains(s, "other tenant") || strings.Contains(s, "secret") {
			t.Fatalf("the tenant saw another database's traffic: %s", s)
		}
	}

	// Tokens that are not a NATS token, and the node credential's user
	// with a wrong password.
	for name, opt := range map[string]nats.Option{
		"every database": nats.Token(n.token(auth.PermRead, time.Hour, "*")),
		"two databases":  nats.Token(n.token(auth.PermRead, time.Hour, "feed", "other")),
		"expired":        nats.Token(n.tokenAt(time.Now().Add(-time.Hour), auth.PermRead, time.Minute, "feed")),
		"wrong password": nats.UserInfo("hasvc", "guess"),
	} {
		if c, err := nats.Connect(n.m.NATSURL(), opt, nats.MaxReconnects(0)); err == nil {
			c.Close()
			t.Errorf("%s: connected", name)
		}
	}

	// Revoked, the connection closes within a second or two.
	if code, body := n.do("POST", "/tokens/revoke", tok, `{"token": "`+tok+`"}`); code != 403 {
		t.Fatalf("a read token revoked: %d %s", code, body)
	}
	n.ok("POST", "/tokens/revoke", `{"token": "`+tok+`"}`)
	select {
	case <-disconnected:
	case <-time.After(3 * time.Second):
		t.Fatal("the revoked token's NATS connection is still open")
	}
	if c, err := nats.Connect(n.m.NATSURL(), nats.Token(tok), nats.MaxReconnects(0)); err == nil {
		c.Close()
		t.Fatal("a revoked token connected")
	}
	if code, body := n.do("DELETE", "/db/feed/consumers/app", n.admin, ""); code != 204 {
		t.Fatalf("delete consumer: %d %s", code, body)
	}
}

// TestRevocation revokes tokens and checks that HTTP refuses them at once
// and that open PostgreSQL sessions end, idle ones within a second.
func TestRevocation(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("rv")
	n.ok("POST", "/db/rv", `{"sql": "CREATE TABLE t (x)"}`)
	tok := n.token(auth.PermWrite, time.Hour, "rv")
	other := n.token(auth.PermWrite, time.Hour, "rv")
	if code, _ := n.do("POST", "/db/rv", tok, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatal("token refused before revocation")
	}
	ctx := context.Background()
	busy := n.pgConnect("rv", tok)
	idleConn := n.pgConnect("rv", tok)

	var out struct {
		Revoked string `json:"revoked"`
	}
	json.Unmarshal([]byte(n.ok("POST", "/tokens/revoke", `{"token": "`+tok+`"}`)), &out)
	if out.Revoked == "" {
		t.Fatal("no id in the answer")
	}
	status, body := n.do("POST", "/db/rv", tok, `{"sql": "SELECT 1"}`)
	wantError(t, status, body, 401, "EUNAUTHORIZED")
	if !strings.Contains(body, "revoked") {
		t.Fatalf("refusal does not say why: %s", body)
	}
	if code, _ := n.do("POST", "/db/rv", other, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatal("another token of the same database was refused")
	}
	_, err := busy.Exec(ctx, "INSERT INTO t VALUES (1)")
	if err == nil {
		t.Fatal("a revoked token's session wrote")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code != "28P01" {
		t.Fatalf("SQLSTATE %s, want 28P01", pgErr.Code)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !idleConn.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := idleConn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the idle session of a revoked token still runs statements")
	}
	// Revoking again, or by id, is fine; garbage is not.
	n.ok("POST", "/tokens/revoke", `{"id": "`+out.Revoked+`"}`)
	status, body = n.do("POST", "/tokens/revoke", n.admin, `{"token": "not a token"}`)
	wantError(t, status, body, 400, "EINVALID")
	status, body = n.do("POST", "/tokens/revoke", n.admin, `{}`)
	wantError(t, status, body, 400, "EINVALID")
}

// TestRevocationAcrossRestart: the deny list is the cluster's, kept in
// JetStream, so a restarted node still refuses a revoked token.
func TestRevocationAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.createDB("rr")
	tok := n.token(auth.PermRead, time.Hour, "rr")
	n.ok("POST", "/tokens/revoke", `{"token": "`+tok+`"}`)
	n.stop()
	n = startNode(t, dir, nil)
	status, body := n.do("POST", "/db/rr", tok, `{"sql": "SELECT 1"}`)
	wantError(t, status, body, 401, "EUNAUTHORIZED")
}

// TestKeyRotation introduces an EdDSA key next to an HS256 one, issues
// with it, and retires the old key, reloading the node's keys file
// without a restart.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys")
	oldLine, _, err := auth.NewKeyLine("old", "HS256")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(keysFile, []byte(oldLine+"\n"), 0o600)
	n := startNode(t, filepath.Join(dir, "data"), func(c *Config) { c.JWTKeys = keysFile; c.JWTSecret = testJWTSecret })
	n.admin = mintToken(t, "--jwt-keys", keysFile, "--db", "*", "--perm", "admin")
	n.createDB("rot")
	oldTok := mintToken(t, "--jwt-keys", keysFile, "--db", "rot")
	if code, _ := n.do("POST", "/db/rot", oldTok, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatal("old key's token refused")
	}
	// --jwt-secret is ignored when a keys file is given.
	if code, _ := n.do("POST", "/db/rot", clusterToken(t, "rot", "read"), `{"sql": "SELECT 1"}`); code != 401 {
		t.Fatal("a token of --jwt-secret was accepted next to --jwt-keys")
	}

	var out bytes.Buffer
	if code := runKeygen([]string{"--kid", "new", "--alg", "EdDSA"}, &out, os.Stderr); code != 0 {
		t.Fatal("keygen failed")
	}
	var newLine, publicLine string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "new EdDSA ") {
			newLine = l
		}
		if strings.HasPrefix(l, "# new EdDSA-public ") {
			publicLine = strings.TrimPrefix(l, "# ")
		}
	}
	if newLine == "" || publicLine == "" {
		t.Fatalf("keygen printed %q", out.String())
	}
	// The node verifies only (public key); the issuing host signs.
	os.WriteFile(keysFile, []byte(publicLine+"\n"+oldLine+"\n"), 0o600)
	if err := n.m.keys.Reload(); err != nil {
		t.Fatal(err)
	}
	issuing := filepath.Join(dir, "issuing-keys")
	os.WriteFile(issuing, []byte(newLine+"\n"), 0o600)
	newTok := mintToken(t, "--jwt-keys", issuing, "--db", "rot")
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		if code, body := n.do("POST", "/db/rot", tok, `{"sql": "SELECT 1"}`); code != 200 {
			t.Fatalf("%s key's token during the rotation: %d %s", name, code, body)
		}
	}
	session := n.pgConnect("rot", oldTok)
	os.WriteFile(keysFile, []byte(publicLine+"\n"), 0o600)
	if err := n.m.keys.Reload(); err != nil {
		t.Fatal(err)
	}
	// An open PostgreSQL session of the retired key ends at its next
	// statement.
	_, err = session.Exec(context.Background(), "SELECT 1")
	wantState(t, err, "28P01")
	status, body := n.do("POST", "/db/rot", oldTok, `{"sql": "SELECT 1"}`)
	wantError(t, status, body, 401, "EUNAUTHORIZED")
	if code, _ := n.do("POST", "/db/rot", newTok, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatal("new key's token refused after the old key left")
	}
	// A bad keys file is refused and the keys in force stay.
	os.WriteFile(keysFile, []byte("broken line\n"), 0o600)
	if err := n.m.keys.Reload(); err == nil {
		t.Fatal("a broken keys file was loaded")
	}
	if code, _ := n.do("POST", "/db/rot", newTok, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatal("a failed reload dropped the keys")
	}
}

// TestTokenBoundToCreation deletes a database and creates it again: tokens
// naming the old one no longer open the new one, on HTTP and PostgreSQL;
// tokens for every database ("*") still do.
func TestTokenBoundToCreation(t *testing.T) {
	clock := &testClock{}
	n := startNodeClock(t, t.TempDir(), nil, clock)
	n.createDB("again")
	n.ok("POST", "/db/again", `{"sql": "CREATE TABLE t (x)"}`)
	old := n.tokenAt(clock.Now(), auth.PermRead, 24*time.Hour, "again")
	every := n.tokenAt(clock.Now(), auth.PermRead, 24*time.Hour, "*")
	if code, _ := n.do("POST", "/db/again", old, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatal("token refused before the re-creation")
	}
	n.ok("DELETE", "/databases/again", "")
	clock.Advance(2 * time.Second)
	n.createDB("again")
	status, body := n.do("POST", "/db/again", old, `{"sql": "SELECT 1"}`)
	wantError(t, status, body, 401, "EUNAUTHORIZED")
	if !strings.Contains(body, "issued before") {
		t.Fatalf("refusal does not say why: %s", body)
	}
	_, err := pgx.Connect(context.Background(), n.pgDSN("again", old))
	wantState(t, err, "28P01")
	if code, _ := n.do("POST", "/db/again", every, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatal("a token for every database was refused")
	}
	fresh := n.tokenAt(clock.Now(), auth.PermRead, time.Hour, "again")
	if code, _ := n.do("POST", "/db/again", fresh, `{"sql": "SELECT 1"}`); code != 200 {
		t.Fatal("a token issued after the re-creation was refused")
	}
}

// TestNATSConsumerExample runs examples/nats-consumer, as the README
// shows it, twice against a node: the second run goes on after the
// transactions the first acknowledged.
func TestNATSConsumerExample(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "nats-consumer")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/nats-consumer").CombinedOutput(); err != nil {
		t.Fatalf("build the example: %v\n%s", err, out)
	}
	n := startNode(t, t.TempDir(), nil)
	n.createDB("ex")
	n.ok("POST", "/db/ex", `{"sql":"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"}`)
	tok := n.token(auth.PermRead, time.Hour, "ex")
	n.ok("PUT", "/db/ex/consumers/app", "")
	for i := range 3 {
		n.ok("POST", "/db/ex", fmt.Sprintf(`{"sql":"INSERT INTO users (name) VALUES ('u%d')"}`, i))
	}
	runExample := func() string {
		t.Helper()
		cmd := exec.Command(bin, "-url", n.m.NATSURL(), "-db", "ex", "-consumer", "app", "-n", "2")
		cmd.Env = append(os.Environ(), "NATS_TOKEN="+tok)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("example: %v\n%s", err, out)
		}
		return string(out)
	}
	node := n.m.Config.Name
	if got := runExample(); got != fmt.Sprintf("1 %[1]s [(schema)]\n2 %[1]s [users]\n", node) {
		t.Fatalf("first run:\n%s", got)
	}
	if got := runExample(); got != fmt.Sprintf("3 %[1]s [users]\n4 %[1]s [users]\n", node) {
		t.Fatalf("second run, after a restart:\n%s", got)
	}
}

// TestMintToken: GET /token says what a token allows; POST /tokens mints
// a token that holds no more than its issuer: databases it covers, a
// permission it has, a life no longer than its own.
func TestMintToken(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("a")
	n.createDB("b")
	if out := n.ok("GET", "/token", ""); !strings.Contains(out, `"databases":["*"]`) || !strings.Contains(out, `"perm":"admin"`) {
		t.Errorf("GET /token: %s", out)
	}
	reader := n.token(auth.PermRead, time.Hour, "a")
	if code, out := n.do("GET", "/token", reader, ""); code != 200 || !strings.Contains(out, `"perm":"read"`) || !strings.Contains(out, `"databases":["a"]`) {
		t.Errorf("GET /token (reader): %d %s", code, out)
	}
	code, out := n.do("POST", "/tokens", reader, `{"databases":["a"]}`)
	wantError(t, code, out, 403, "EFORBIDDEN")

	// An admin of a alone can mint for a, not for b nor for every database.
	adminA := n.token(auth.PermAdmin, time.Hour, "a")
	code, out = n.do("POST", "/tokens", adminA, `{"databases":["a"],"perm":"write","ttl":"30m","subject":"app"}`)
	if code != 201 {
		t.Fatalf("mint: %d %s", code, out)
	}
	var minted struct {
		Token string `json:"token"`
		Info  struct {
			Subject   string    `json:"subject"`
			Perm      string    `json:"perm"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &minted); err != nil {
		t.Fatal(err)
	}
	if minted.Info.Subject != "app" || minted.Info.Perm != "write" || time.Until(minted.Info.ExpiresAt) > 31*time.Minute {
		t.Errorf("minted: %+v", minted.Info)
	}
	if code, out := n.do("POST", "/db/a", minted.Token, `{"sql":"CREATE TABLE t(x)"}`); code != 200 {
		t.Errorf("minted token wrote: %d %s", code, out)
	}
	if code, _ := n.do("POST", "/db/b", minted.Token, `{"sql":"SELECT 1"}`); code != 403 {
		t.Errorf("minted token for a read b: %d", code)
	}
	for _, body := range []string{`{"databases":["b"]}`, `{"databases":["a","b"]}`, `{"databases":["*"]}`} {
		code, out := n.do("POST", "/tokens", adminA, body)
		wantError(t, code, out, 403, "EFORBIDDEN")
	}
	for _, body := range []string{
		`{"databases":["a"],"ttl":"2h"}`, // outlives its issuer
		`{"databases":["a"],"ttl":"-1s"}`,
		`{"databases":[]}`,
		`{"databases":["Bad Name"]}`,
		`{"databases":["a"],"perm":"root"}`,
		`{"databases":["a"],"ttl":"soon"}`,
		`{"databases":["a"],"extra":1}`,
	} {
		code, out := n.do("POST", "/tokens", adminA, body)
		wantError(t, code, out, 400, "EINVALID")
	}
	// The root admin mints for every database.
	if out := n.ok("POST", "/tokens", `{"databases":["*"],"perm":"read","ttl":"1h"}`); !strings.Contains(out, `"databases":["*"]`) {
		t.Errorf("mint *: %s", out)
	}
}

// TestNATSConsumerCluster: in a three-node cluster, a tenant's durable
// consumer made through one node is read with the tenant's NATS token
// through another (examples/nats-consumer), and, once that node stops,
// through a third, going on after the last transaction acknowledged.
func TestNATSConsumerCluster(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "nats-consumer")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/nats-consumer").CombinedOutput(); err != nil {
		t.Fatalf("build the example: %v\n%s", err, out)
	}
	nodes := startCluster(t, 3, nil)
	nodes[0].createDB("ex")
	nodes[0].ok("POST", "/db/ex", `{"sql":"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"}`)
	tok := clusterToken(t, "ex", "read")
	nodes[1].ok("PUT", "/db/ex/consumers/app", "")
	for i := range 5 {
		nodes[i%3].ok("POST", "/db/ex", fmt.Sprintf(`{"sql":"INSERT INTO users (name) VALUES ('u%d')"}`, i))
	}
	runExample := func(n *node) string {
		t.Helper()
		cmd := exec.Command(bin, "-url", n.m.NATSURL(), "-db", "ex", "-consumer", "app", "-n", "2")
		cmd.Env = append(os.Environ(), "NATS_TOKEN="+tok)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("example through %s: %v\n%s", n.m.Config.Name, err, out)
		}
		return string(out)
	}
	// Each line: sequence, the node that wrote it, the tables it touched.
	want := func(got string, lines ...string) {
		t.Helper()
		var seen []string
		for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
			f := strings.Fields(l)
			if len(f) != 3 {
				t.Fatalf("example printed %q", got)
			}
			seen = append(seen, f[0]+" "+f[2])
		}
		if strings.Join(seen, ", ") != strings.Join(lines, ", ") {
			t.Fatalf("example printed\n%s\nwant %q", got, lines)
		}
	}
	want(runExample(nodes[2]), "1 [(schema)]", "2 [users]")
	want(runExample(nodes[2]), "3 [users]", "4 [users]")
	nodes[2].stop()
	want(runExample(nodes[0]), "5 [users]", "6 [users]")
}
