package engine

import (
	"context"
	"fmt"
	"testing"

	"hasvc/internal/tenant"
)

// With MaxOpen databases open, opening another closes those used least
// recently and nobody uses; with all of them in use it is refused, and
// a closed database opens again with its data.
func TestMaxOpen(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	n.eng.MaxOpen = 4
	ctx := context.Background()
	for i := range 6 {
		db, release := n.createDB(t, fmt.Sprintf("db%d", i))
		mustExec(t, db, "CREATE TABLE t (v)", nil)
		mustExec(t, db, "INSERT INTO t VALUES (?)", []any{int64(i)})
		release()
	}
	open := func() []string {
		var names []string
		for _, db := range n.eng.openDBs() {
			names = append(names, db.name)
		}
		return names
	}
	// Each open past the fourth took the least recently used out of the
	// open set at once (and closed it in the background).
	if got := open(); len(got) > 4 {
		t.Fatalf("%d databases open, over MaxOpen 4: %v", len(got), got)
	}
	// The least recently used went first: db5, the newest, is open.
	if got := open(); !contains(got, "db5") || contains(got, "db0") {
		t.Fatalf("open: %v", got)
	}
	// All four in use: a fifth is refused.
	var releases []func()
	for _, name := range open() {
		_, release, err := n.eng.Acquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	if _, _, err := n.eng.Acquire(ctx, "db0"); tenant.ErrorCode(err) != tenant.EUNAVAILABLE {
		t.Fatalf("a fifth database with four in use: %v", err)
	}
	for _, r := range releases {
		r()
	}
	db, release, err := n.eng.Acquire(ctx, "db0")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if got := jsonOf(mustExec(t, db, "SELECT v FROM t", nil).Results[0].Rows); got != "[[0]]" {
		t.Fatalf("db0 reopened holds %s", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
