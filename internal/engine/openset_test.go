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

// The budget of open databases: the open-file limit less the files the
// rest of the node holds and a margin, at filesPerOpenDB a database, never
// under 16.
func TestOpenBudget(t *testing.T) {
	for _, c := range []struct{ lim, others, want int }{
		{20000, 0, (20000 - 1250) / 8},
		{20000, 800, (20000 - 800 - 1250) / 8},
		{4096, 0, (4096 - 512) / 8},
		{20000, 19000, 16},
	} {
		if got := openBudget(c.lim, c.others); got != c.want {
			t.Errorf("openBudget(%d, %d) = %d, want %d", c.lim, c.others, got, c.want)
		}
	}
}

// Left to its default, the open set makes room for the files the rest of
// the node holds, as counted: the node's files less filesPerOpenDB for
// each open database. Where files cannot be counted, each of the NATS
// server's streams counts as one. And the count is the process's own:
// 800 more files open count 800 more.
func TestOpenBudgetCountsFiles(t *testing.T) {
	n := newTestNode(t, t.TempDir())
	e := n.eng
	lim := openFileLimit()
	e.MaxOpen, e.autoMaxOpen = 1<<20, true
	held, streams := 0, 0
	e.countFiles = func() int { return held }
	e.StreamCount = func() int { return streams }
	budget := func() int {
		e.openBudgetAt.Store(0)
		e.refreshOpenBudget()
		return int(e.openBudget.Load())
	}
	db, release := n.createDB(t, "open")
	defer release()
	mustExec(t, db, "SELECT 1", nil)
	open := len(n.eng.openDBs())
	held, streams = 300+open*filesPerOpenDB, 5000
	if got, want := budget(), openBudget(lim, 300); got != want {
		t.Fatalf("budget %d with %d files held and %d databases open, want %d (300 files the others')", got, held, open, want)
	}
	held = -1 // cannot count
	if got, want := budget(), openBudget(lim, streams); got != want {
		t.Fatalf("budget %d without a file count, want %d (one file a stream)", got, want)
	}

	before := filesOpen()
	var files []*os.File
	for range 800 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	after := filesOpen()
	for _, f := range files {
		f.Close()
	}
	// The node's own goroutines may open or close a file meanwhile.
	if d := after - before; before >= 0 && (d < 760 || d > 840) {
		t.Fatalf("%d files open, %d before opening 800 more", after, before)
	}
	if (before < 0) != (after < 0) {
		t.Fatalf("files counted once and not once: %d, %d", before, after)
	}
}
