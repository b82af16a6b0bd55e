package engine

import (
	"context"
	"fmt"
	"os"
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

// Left to its default, the open set makes room for the files the rest of
// the node holds, as counted, not as assumed: 800 more files open
// elsewhere leave room for 100 fewer databases.
func TestOpenBudgetCountsFiles(t *testing.T) {
	if filesOpen() < 0 {
		t.Skip("the system does not list a process's open files")
	}
	n := newTestNode(t, t.TempDir())
	e := n.eng
	e.MaxOpen, e.autoMaxOpen = 1<<20, true
	e.StreamCount = func() int { t.Fatal("streams counted though files can be"); return 0 }
	budget := func() int {
		e.openBudgetAt.Store(0)
		e.refreshOpenBudget()
		return int(e.openBudget.Load())
	}
	before := budget()
	if before < 150 {
		t.Skipf("an open-file limit of %d leaves room for only %d databases", openFileLimit(), before)
	}
	var files []*os.File
	for range 800 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	after := budget()
	for _, f := range files {
		f.Close()
	}
	if d := before - after; d < 90 || d > 110 {
		t.Fatalf("budget %d with 800 more files open, %d before: want about 100 fewer", after, before)
	}
	if again := budget(); again < before-10 {
		t.Fatalf("budget %d once the files closed, %d before", again, before)
	}
}
