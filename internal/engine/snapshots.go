package engine

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/registry"
	"hasvc/internal/tenant"
)

// Snapshots: consistent copies of a database in its own object-store
// bucket (tenant.BucketName), one object per snapshot, named by the
// stream sequence it reflects and gzip-compressed. An object appears in
// the bucket only once all of it is stored (the object store writes its
// metadata last), so a snapshot interrupted halfway leaves nothing a
// reader can see.

// Snapshot describes one snapshot.
type Snapshot struct {
	Sequence   uint64    `json:"sequence"`
	Time       time.Time `json:"time"`
	Size       int64     `json:"size"`       // of the SQLite file
	Compressed int64     `json:"compressed"` // as stored
	SHA256     string    `json:"sha256"`     // of the SQLite file
	Node       string    `json:"node"`       // that took it
	Name       string    `json:"-"`
}

// snapshotPrefix starts every snapshot object's name; the zero-padded
// sequence after it sorts names in sequence order.
const snapshotPrefix = "snapshot-"

func snapshotName(seq uint64) string { return fmt.Sprintf("%s%020d.db.gz", snapshotPrefix, seq) }

// bucket opens the database's snapshot bucket.
func (d *DB) bucket(ctx context.Context) (jetstream.ObjectStore, error) {
	return d.eng.bucket(ctx, d.cfg)
}

// bucket opens database cfg's snapshot bucket; EUNAVAILABLE if it does
// not answer. A database's bucket is made with its first snapshot
// (makeBucket): until then bucket returns nil, which listSnapshots and
// newestSnapshot take as a bucket without snapshots. Most databases never
// snapshot; without a bucket each costs JetStream one stream (and, in a
// cluster, one Raft group) instead of two.
func (e *Engine) bucket(ctx context.Context, cfg tenant.Config) (jetstream.ObjectStore, error) {
	js, err := e.jsOf(cfg)
	if err != nil {
		return nil, err
	}
	b, err := js.ObjectStore(ctx, tenant.BucketName(cfg.Name))
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "snapshot bucket: "+err.Error())
	}
	return b, nil
}

// objectStream names the JetStream stream behind database name's bucket.
func objectStream(name string) string { return "OBJ_" + tenant.BucketName(name) }

// makeBucket opens database cfg's snapshot bucket, creating it (with the
// database's replicas) if it is not there yet. Nodes creating it at once
// all succeed: JetStream takes an identical configuration again.
func (e *Engine) makeBucket(ctx context.Context, cfg tenant.Config) (jetstream.ObjectStore, error) {
	if b, err := e.bucket(ctx, cfg); b != nil || err != nil {
		return b, err
	}
	js, err := e.jsOf(cfg)
	if err != nil {
		return nil, err
	}
	name := cfg.Name
	b, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      tenant.BucketName(name),
		Description: "hasvc snapshots of database " + name,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "create snapshot bucket: "+err.Error())
	}
	// In a cluster the bucket's stream is created before its replicas
	// have elected a leader; a put before that waits for it until its
	// deadline. Wait here instead, while the caller's time allows.
	for {
		st, err := js.Stream(ctx, objectStream(name))
		if err == nil {
			if c := st.CachedInfo().Cluster; c == nil || c.Leader != "" {
				return b, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, tenant.Wrap(tenant.EUNAVAILABLE, ctx.Err(), "the new snapshot bucket has no leader yet")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Snapshots lists the database's snapshots, newest first.
func (d *DB) Snapshots(ctx context.Context) ([]Snapshot, error) {
	b, err := d.bucket(ctx)
	if err != nil {
		return nil, err
	}
	return listSnapshots(ctx, b)
}

// listSnapshots lists the snapshots in bucket b, newest first.
func listSnapshots(ctx context.Context, b jetstream.ObjectStore) ([]Snapshot, error) {
	if b == nil {
		return []Snapshot{}, nil // no bucket yet: no snapshot yet
	}
	// A listing reads the bucket with a new consumer, which can wait
	// for ever on a bucket whose stream is still electing its leader:
	// each attempt has its own deadline, and all of them one together.
	ctx, cancel := context.WithTimeout(ctx, 6*requestTimeout)
	defer cancel()
	var infos []*jetstream.ObjectInfo
	err := registry.UntilReady(ctx, requestTimeout, func(ctx context.Context) error {
		var err error
		infos, err = b.List(ctx)
		if errors.Is(err, jetstream.ErrNoObjectsFound) {
			infos, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "list snapshots: "+err.Error())
	}
	out := make([]Snapshot, 0, len(infos))
	for _, info := range infos {
		if s, ok := snapshotOf(info); ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Snapshot) int {
		switch {
		case a.Sequence > b.Sequence:
			return -1
		case a.Sequence < b.Sequence:
			return 1
		}
		return 0
	})
	return out, nil
}

// newestSnapshot returns the newest snapshot in bucket b, nil if none.
func newestSnapshot(ctx context.Context, b jetstream.ObjectStore) (*Snapshot, error) {
	list, err := listSnapshots(ctx, b)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	return &list[0], nil
}

// snapshotOf reads a snapshot's description from its object's metadata.
func snapshotOf(info *jetstream.ObjectInfo) (Snapshot, bool) {
	if info.Deleted || !strings.HasPrefix(info.Name, snapshotPrefix) {
		return Snapshot{}, false
	}
	m := info.Metadata
	seq, err1 := strconv.ParseUint(m["sequence"], 10, 64)
	size, err2 := strconv.ParseInt(m["size"], 10, 64)
	t, err3 := time.Parse(time.RFC3339Nano, m["time"])
	if err1 != nil || err2 != nil || err3 != nil {
		return Snapshot{}, false
	}
	return Snapshot{Sequence: seq, Time: t, Size: size, Compressed: int64(info.Size), SHA256: m["sha256"], Node: m["node"], Name: info.Name}, true
}

// TakeSnapshot stores a snapshot of the database as it is now (at its
// applied sequence S), unless the newest snapshot already reflects S, in
// which case it returns that one (taken false). Writes go on meanwhile:
// the copy is one read transaction's view (Backup).
func (d *DB) TakeSnapshot(ctx context.Context) (s Snapshot, taken bool, err error) {
	d.snapMu.Lock() // one at a time per database on this node
	defer d.snapMu.Unlock()
	b, err := d.eng.makeBucket(ctx, d.cfg)
	if err != nil {
		return Snapshot{}, false, err
	}
	if list, err := d.Snapshots(ctx); err == nil && len(list) > 0 && list[0].Sequence == d.Applied() {
		return list[0], false, nil
	}
	f, err := d.Backup(ctx)
	if err != nil {
		return Snapshot{}, false, err
	}
	defer f.Close()
	if f.Queued > 0 {
		// The copy holds writes its sequence does not account for: a
		// copy made from it would have them twice, or out of order.
		return Snapshot{}, false, tenant.Errorf(tenant.EUNAVAILABLE, "this node has %d queued writes of the database that are not in its stream yet; take the snapshot once they are", f.Queued)
	}
	if list, err := d.Snapshots(ctx); err == nil && len(list) > 0 && list[0].Sequence == f.Seq {
		return list[0], false, nil
	}
	s, err = putSnapshot(ctx, b, f.File, f.Seq, f.Size, d.eng.Node, d.name)
	if err != nil {
		return Snapshot{}, false, err
	}
	// Retention purges the stream below a snapshot: the snapshot must be
	// on disk before anyone learns of it.
	if err := d.eng.flush(stored{d.cfg.Account, objectStream(d.name)}); err != nil {
		return Snapshot{}, false, err
	}
	d.log.Info("snapshot stored", "sequence", s.Sequence, "size", s.Size, "compressed", s.Compressed)
	return s, true, nil
}

// putSnapshot stores the SQLite file f (size bytes, at stream sequence
// seq of database db) in bucket b as a snapshot taken by node.
func putSnapshot(ctx context.Context, b jetstream.ObjectStore, f *os.File, seq uint64, size int64, node, db string) (Snapshot, error) {
	// The checksum of the file, then the file compressed into the bucket.
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Snapshot{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Snapshot{}, err
	}
	now := time.Now().UTC()
	s := Snapshot{Sequence: seq, Time: now, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Node: node, Name: snapshotName(seq)}
	meta := jetstream.ObjectMeta{
		Name:        s.Name,
		Description: fmt.Sprintf("database %s at sequence %d", db, s.Sequence),
		Metadata: map[string]string{
			"sequence": strconv.FormatUint(s.Sequence, 10),
			"time":     now.Format(time.RFC3339Nano),
			"size":     strconv.FormatInt(s.Size, 10),
			"sha256":   s.SHA256,
			"node":     s.Node,
		},
	}
	for {
		info, err := putCompressed(ctx, b, meta, f)
		if err == nil {
			s.Compressed = int64(info.Size)
			return s, nil
		}
		// A bucket just made in a cluster has a leader before every node
		// routes its subjects there: a put meanwhile finds no responder
		// and stores nothing. It is tried again while ctx allows.
		if !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
			return Snapshot{}, tenant.Wrap(tenant.EUNAVAILABLE, err, "store snapshot: "+err.Error())
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Snapshot{}, err
		}
	}
}

// putCompressed puts the rest of f, gzipped, into bucket b as meta. It
// returns once nothing reads f any more.
func putCompressed(ctx context.Context, b jetstream.ObjectStore, meta jetstream.ObjectMeta, f *os.File) (*jetstream.ObjectInfo, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		_, err := io.Copy(zw, f)
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	info, err := b.Put(ctx, meta, pr)
	pr.CloseWithError(errors.New("snapshot abandoned")) // ends the goroutine if Put stopped early
	<-done
	return info, err
}

// SnapshotReader is a snapshot's SQLite file, decompressed as it is read.
type SnapshotReader struct {
	io.Reader
	Snapshot
	close func() error
}

// Close releases the snapshot's object.
func (r *SnapshotReader) Close() error { return r.close() }

// OpenSnapshot opens the snapshot at sequence seq, or the newest with seq
// 0. ENOTFOUND if there is none. The reader fails (rather than ending
// early) if what it read does not match the snapshot's checksum.
func (d *DB) OpenSnapshot(ctx context.Context, seq uint64) (*SnapshotReader, error) {
	list, err := d.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(list, func(s Snapshot) bool { return seq == 0 || s.Sequence == seq })
	if i < 0 {
		if seq == 0 {
			return nil, tenant.Errorf(tenant.ENOTFOUND, "database %s has no snapshot yet", d.name)
		}
		return nil, tenant.Errorf(tenant.ENOTFOUND, "database %s has no snapshot at sequence %d", d.name, seq)
	}
	b, err := d.bucket(ctx)
	if err != nil {
		return nil, err
	}
	return openSnapshotObject(ctx, b, &list[i])
}

// openSnapshotObject opens snapshot s in bucket b.
//
// The whole read must end within its context's deadline: without one,
// nats.go gives the read of all the object's chunks 5 s, which a snapshot
// of some tens of MB read from disk can take (downloads failed with
// "nats: timeout"). A context without a deadline gets a minute, and a
// second more for each compressed MB.
func openSnapshotObject(ctx context.Context, b jetstream.ObjectStore, s *Snapshot) (*SnapshotReader, error) {
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, time.Minute+time.Duration(s.Compressed>>20)*time.Second)
	}
	obj, err := b.Get(ctx, s.Name)
	if err != nil {
		cancel()
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "read snapshot: "+err.Error())
	}
	closeAll := func() error {
		err := obj.Close()
		cancel()
		return err
	}
	zr, err := gzip.NewReader(obj)
	if err != nil {
		closeAll()
		return nil, tenant.Wrap(tenant.EINTERNAL, err, "snapshot is not gzip: "+err.Error())
	}
	r := &checkedReader{r: zr, h: sha256.New(), want: s.SHA256, size: s.Size}
	return &SnapshotReader{Reader: r, Snapshot: *s, close: closeAll}, nil
}

// checkedReader passes a snapshot's bytes through and fails at their end
// if their length or checksum is not the recorded one.
type checkedReader struct {
	r io.Reader
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	want string
	size int64
	n    int64
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == io.EOF && (c.n != c.size || hex.EncodeToString(c.h.Sum(nil)) != c.want) {
		return n, fmt.Errorf("snapshot damaged: %d bytes read of %d, or checksum mismatch", c.n, c.size)
	}
	return n, err
}

// TakeSnapshot takes a snapshot of database name (DB.TakeSnapshot), then
// applies the database's retention.
func (e *Engine) TakeSnapshot(ctx context.Context, name string) (Snapshot, bool, error) {
	db, release, err := e.Acquire(ctx, name)
	if err != nil {
		return Snapshot{}, false, err
	}
	defer release()
	s, taken, err := db.TakeSnapshot(ctx)
	if err == nil && taken {
		cfg, rerr := e.Registry.Get(ctx, name)
		if rerr == nil {
			_, rerr = e.applyRetention(ctx, cfg)
		}
		if rerr != nil {
			e.Logger.Warn("retention", "db", name, "err", rerr)
		}
	}
	return s, taken, err
}

// Snapshots lists database name's snapshots, newest first. It reads the
// bucket only: the database's copy need not be open.
func (e *Engine) Snapshots(ctx context.Context, name string) ([]Snapshot, error) {
	cfg, err := e.Registry.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	b, err := e.bucket(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return listSnapshots(ctx, b)
}

// SnapshotFile writes one of database name's snapshots (seq 0: the
// newest) to a file for its tenant to download: checked against its
// checksum, and without hasvc's own tables, as backups are.
func (e *Engine) SnapshotFile(ctx context.Context, name string, seq uint64) (*BackupFile, error) {
	db, release, err := e.Acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	defer release()
	r, err := db.OpenSnapshot(ctx, seq)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	dir := os.TempDir()
	if !e.Memory {
		dir = filepath.Join(e.DataDir, "tmp")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	f, err := os.CreateTemp(dir, name+"-snapshot-*.db")
	if err != nil {
		return nil, err
	}
	b := &BackupFile{File: f, Seq: r.Sequence}
	if _, err := io.Copy(f, r); err != nil {
		b.Close()
		return nil, tenant.Wrap(tenant.EINTERNAL, err, "read snapshot: "+err.Error())
	}
	if err := b.stripHasvc(); err != nil {
		b.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}
