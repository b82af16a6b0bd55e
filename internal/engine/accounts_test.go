package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// A node upgraded to databases' accounts keeps the databases it made
// before in its own account, serves them as before, and makes new ones,
// stream and bucket, in the account their name hashes to.
func TestAccountsUpgrade(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n := newTestNode(t, dir)
	old, release := n.createDB(t, "old")
	mustExec(t, old, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", nil)
	mustExec(t, old, "INSERT INTO t (v) VALUES ('before')", nil)
	release()
	n.close()

	n = newTestNodeWith(t, dir, true)
	if cfg, err := n.eng.Registry.Get(ctx, "old"); err != nil || cfg.Account != "" {
		t.Fatalf("old database: account %q, %v", cfg.Account, err)
	}
	_, release = n.createDB(t, "new")
	release()
	old, release, err := n.eng.Acquire(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, old, "INSERT INTO t (v) VALUES ('after')", nil)
	if got := jsonOf(mustExec(t, old, "SELECT v FROM t ORDER BY id", nil).Results[0].Rows); got != `[["before"],["after"]]` {
		t.Fatalf("old database holds %s", got)
	}
	if _, _, err := old.TakeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	release()

	cfg, err := n.eng.Registry.Get(ctx, "new")
	if err != nil || cfg.Account != tenant.AccountOf("new") || !tenant.IsAccount(cfg.Account) {
		t.Fatalf("new database: account %q, %v", cfg.Account, err)
	}
	db, release, err := n.eng.Acquire(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "CREATE TABLE u (id INTEGER PRIMARY KEY)", nil)
	if _, _, err := db.TakeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	release()
	acc, err := n.eng.account(cfg.Account)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{tenant.StreamName("new"), objectStream("new")} {
		if _, err := acc.js.Stream(ctx, s); err != nil {
			t.Errorf("stream %s in %s: %v", s, cfg.Account, err)
		}
		if _, err := n.js.Stream(ctx, s); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream %s in the node's own account: %v", s, err)
		}
	}
	for _, s := range []string{tenant.StreamName("old"), objectStream("old")} {
		if _, err := n.js.Stream(ctx, s); err != nil {
			t.Errorf("stream %s in the node's own account: %v", s, err)
		}
	}

	// Deleting removes each database's stream and bucket where they are.
	for _, name := range []string{"old", "new"} {
		if err := n.eng.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, js := range []jetstream.JetStream{n.js, acc.js} {
		for _, name := range []string{"old", "new"} {
			for _, s := range []string{tenant.StreamName(name), objectStream(name)} {
				if _, err := js.Stream(ctx, s); !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Errorf("stream %s after delete: %v", s, err)
				}
			}
		}
	}
}
