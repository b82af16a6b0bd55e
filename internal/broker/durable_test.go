package broker

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestFlusherFollowsBlocks walks a stream's block files as JetStream makes
// them (a new block numbered one past the newest; a purge or a stream
// made again under the same name starting lower) and checks that each
// flush syncs from the right block on.
func TestFlusherFollowsBlocks(t *testing.T) {
	store := t.TempDir()
	f := newFlusher(store, "$G")
	msgs := filepath.Join(store, "$G", "streams", "HASVC_x", "msgs")
	if err := f.Stream("", "HASVC_x"); err != nil {
		t.Fatalf("a stream without files yet: %v", err)
	}
	if err := os.MkdirAll(msgs, 0o700); err != nil {
		t.Fatal(err)
	}
	block := func(n string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(msgs, n+".blk"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	synced := func(want int) {
		t.Helper()
		if err := f.Stream("", "HASVC_x"); err != nil {
			t.Fatal(err)
		}
		s := f.files[filepath.Join(store, "$G", "streams", "HASVC_x")]
		if s.synced != want || s.last == nil || filepath.Base(s.last.Name()) != strconv.Itoa(want)+".blk" {
			t.Fatalf("synced block %d (open %v), want %d", s.synced, s.last, want)
		}
	}
	block("1")
	synced(1)
	synced(1) // the fast path: same block
	block("2")
	synced(2)
	for _, n := range []string{"3", "4", "5", "6", "7", "8", "9", "10"} {
		block(n)
	}
	synced(10) // "10.blk" sorts before "9.blk" by name
	for _, n := range []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"} {
		os.Remove(filepath.Join(msgs, n+".blk"))
	}
	block("1") // the stream deleted and made again
	synced(1)
	f.Release("", "HASVC_x")
	if _, ok := f.files[filepath.Join(store, "$G", "streams", "HASVC_x")]; ok {
		t.Fatal("Release kept the stream's state")
	}
	synced(1)
	if err := f.Err(); err != nil {
		t.Fatalf("Err after successful flushes: %v", err)
	}

	// A stream of one of the databases' accounts lives under that
	// account's directory.
	other := filepath.Join(store, "HASVC_DBS_03", "streams", "HASVC_x", "msgs")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "1.blk"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Stream("HASVC_DBS_03", "HASVC_x"); err != nil {
		t.Fatal(err)
	}
	if s := f.files[filepath.Dir(other)]; s == nil || s.synced != 1 {
		t.Fatalf("the account's stream: %+v", s)
	}
}
