package engine

import (
	"fmt"
	"testing"

	"hasvc/internal/tenant"
)

// TestRegistryView: between two listings the scheduler's view follows the
// registry watch (new databases, changed and deleted ones); a listing
// replaces it, and keeps only the changes recorded after it began.
func TestRegistryView(t *testing.T) {
	var v registryView
	show := func(dbs map[string]*scheduled) string {
		out := fmt.Sprint(len(dbs))
		for _, name := range []string{"a", "b", "c"} {
			if s := dbs[name]; s != nil {
				out += fmt.Sprint(" ", s.cfg.Name, s.cfg.SnapshotInterval)
			}
		}
		return out
	}
	db := func(name string, interval tenant.Duration) *scheduled {
		return &scheduled{cfg: tenant.Config{Name: name, SnapshotInterval: interval}}
	}
	dbs := map[string]*scheduled{"a": db("a", 0), "b": db("b", 0)}
	v.changed(tenant.Config{Name: "c"})
	v.changed(tenant.Config{Name: "a", SnapshotInterval: 1})
	v.deleted("b")
	v.applyAfter(0, dbs)
	if got := show(dbs); got != "2 a1 c0" {
		t.Fatalf("after the watch's changes: %s", got)
	}
	v.applyAfter(0, dbs) // each change is applied once
	if got := show(dbs); got != "2 a1 c0" {
		t.Fatalf("applied again: %s", got)
	}

	// A listing begins: what came before it is in it, what comes after
	// is newer than it.
	v.deleted("c") // the listing holds this already
	mark := v.mark()
	v.changed(tenant.Config{Name: "a", SnapshotInterval: 2})
	listed := map[string]*scheduled{"a": db("a", 1), "b": db("b", 0)}
	v.applyAfter(mark, listed)
	if got := show(listed); got != "2 a2 b0" {
		t.Fatalf("after a listing: %s", got)
	}
	v.applyAfter(0, listed)
	if got := show(listed); got != "2 a2 b0" {
		t.Fatalf("nothing left to apply: %s", got)
	}
}
