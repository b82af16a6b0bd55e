package broker

import (
	"errors"
	"fmt"
	"hasvc/internal/fsutil"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Flusher is group commit for `--fsync always` on a node without a
// cluster. JetStream's own "sync always" fsyncs every stored message, so
// a group of N requests costs N fsyncs even when it goes to the stream as
// one atomic batch. Instead the server runs with its interval policy,
// which on a stream with one replica still writes every message to its
// block file before acknowledging it, and the writer of a database calls
// Stream once a whole group is acknowledged: one fdatasync covers every
// message of the group, and the request is answered only after it.
//
// A cluster does not use it: there a message is acknowledged once a
// quorum of nodes stored it in their Raft logs, which only the server can
// make durable on each node (with sync always, one fsync per appended
// batch of entries).
//
// Writes of hasvc's own that are acknowledged to users and are rare
// (the registry, snapshots, new databases) flush their streams the same
// way (a KV bucket and an object store are streams too).
type Flusher struct {
	store  string // <store>/<account>/streams/<stream>
	global string // the global account's name: account "" below

	mu     sync.Mutex
	files  map[string]*streamFiles
	failed error // the first failed fsync, if any
}

func newFlusher(store, global string) *Flusher {
	return &Flusher{store: store, global: global, files: map[string]*streamFiles{}}
}

// streamFiles tracks what of one stream's files is known to be on disk.
// JetStream appends messages to its newest block file (msgs/<n>.blk) and
// seals the older ones, so a flush syncs the block it last synced (it may
// have grown) and every newer one.
type streamFiles struct {
	mu     sync.Mutex
	dir    string
	synced int      // index of the newest block synced; 0: none yet
	last   *os.File // that block, kept open for the next flush
	dirs   bool     // the stream's directories and metadata are on disk
	// err is sticky: after a failed fsync the kernel may have dropped the
	// dirty pages, so nothing written before it can be trusted to reach
	// the disk by a later fsync.
	err error
}

// Stream makes every message the stream named name of account ("": the
// global account) acknowledged so far durable. Concurrent calls for one
// stream run one after another, each covering every write acknowledged
// before it began.
func (f *Flusher) Stream(account, name string) error {
	if account == "" {
		account = f.global
	}
	dir := filepath.Join(f.store, account, "streams", name)
	f.mu.Lock()
	s := f.files[dir]
	if s == nil {
		s = &streamFiles{dir: dir}
		f.files[dir] = s
	}
	f.mu.Unlock()
	return f.note(s.flush())
}

// note remembers the first failed fsync, for Err.
func (f *Flusher) note(err error) error {
	if err != nil {
		f.mu.Lock()
		if f.failed == nil {
			f.failed = err
		}
		f.mu.Unlock()
	}
	return err
}

// Err returns the first fsync that failed since the node started, or nil.
// After one, writes to that stream keep failing (see streamFiles.err):
// the disk needs an operator.
func (f *Flusher) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// Release closes what Stream keeps open for the stream name of account
// and drops what is known of its files, when its database closes or is
// deleted (a stream made later under the same name is synced from its
// first block).
func (f *Flusher) Release(account, name string) {
	if account == "" {
		account = f.global
	}
	dir := filepath.Join(f.store, account, "streams", name)
	f.mu.Lock()
	s := f.files[dir]
	delete(f.files, dir)
	f.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		if s.last != nil {
			s.last.Close()
			s.last = nil
		}
		s.mu.Unlock()
	}
}

func (s *streamFiles) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if err := s.flushLocked(); err != nil {
		s.err = err
		return err
	}
	return nil
}

func (s *streamFiles) flushLocked() error {
	if s.last != nil {
		// The common case: the group went to the block synced last
		// time, still the newest (JetStream numbers a new block one
		// past the newest) and still there.
		var st unix.Stat_t
		if err := unix.Fstat(int(s.last.Fd()), &st); err == nil && st.Nlink > 0 {
			next := filepath.Join(s.dir, "msgs", strconv.Itoa(s.synced+1)+".blk")
			if _, err := os.Stat(next); errors.Is(err, fs.ErrNotExist) {
				if err := unix.Fdatasync(int(s.last.Fd())); err != nil {
					return fmt.Errorf("fsync %s: %w", s.last.Name(), err)
				}
				return nil
			}
		}
	}
	return s.flushAll()
}

// flushAll syncs every block from the one synced last, and the directories
// that name new ones.
func (s *streamFiles) flushAll() error {
	if s.last != nil {
		s.last.Close()
		s.last = nil
	}
	msgs := filepath.Join(s.dir, "msgs")
	blocks, err := blockIndexes(msgs)
	if err != nil {
		return err
	}
	if len(blocks) == 0 {
		return nil
	}
	if blocks[len(blocks)-1] < s.synced {
		// The stream was purged down to new blocks, or deleted and
		// created again: start over.
		s.synced, s.dirs = 0, false
	}
	created := false
	for _, n := range blocks {
		if n < s.synced {
			continue
		}
		if err := fsutil.Sync(filepath.Join(msgs, strconv.Itoa(n)+".blk"), true); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing: nothing to keep
			}
			return err
		}
		created = created || n > s.synced
		s.synced = n
	}
	if !s.dirs {
		// Once per stream (and after a restart): its metadata and every
		// directory on the way to its blocks, up to the store.
		streams := filepath.Dir(s.dir)
		account := filepath.Dir(streams)
		for _, p := range []string{
			filepath.Join(s.dir, "meta.inf"), filepath.Join(s.dir, "meta.sum"),
			msgs, s.dir, streams, account, filepath.Dir(account),
		} {
			if err := fsutil.Sync(p, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		s.dirs = true
	} else if created {
		// A new block's name must survive as well as its contents.
		if err := fsutil.Sync(msgs, false); err != nil {
			return err
		}
	}
	if s.synced > 0 {
		if f, err := os.Open(filepath.Join(msgs, strconv.Itoa(s.synced)+".blk")); err == nil {
			s.last = f
		}
	}
	return nil
}

// blockIndexes lists the indexes of the message blocks in dir, ascending.
func blockIndexes(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var blocks []int
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".blk")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(n); err == nil {
			blocks = append(blocks, i)
		}
	}
	slices.Sort(blocks) // ReadDir sorts by name: "10.blk" before "9.blk"
	return blocks, nil
}
