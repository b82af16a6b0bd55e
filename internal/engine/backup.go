package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// BackupFile is a consistent copy of a database as a SQLite file, open
// for reading. Close removes it.
type BackupFile struct {
	*os.File
	Seq  uint64 // the stream sequence the copy reflects
	Size int64
	// Queued counts eventual-mode writes of this node in the copy that
	// are not in the stream yet (outbox.go), beyond Seq.
	Queued int64
}

// Close closes and removes the file.
func (b *BackupFile) Close() error {
	err := b.File.Close()
	os.Remove(b.Name())
	return err
}

// Backup makes a consistent copy of the database. The copy is one read
// transaction's view (VACUUM INTO), so it is consistent while writes go
// on, and its _hasvc_state table holds the stream sequence it reflects.
func (d *DB) Backup(ctx context.Context) (*BackupFile, error) {
	dir := os.TempDir()
	if !d.eng.Memory {
		dir = filepath.Join(d.eng.DataDir, "tmp")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	f, err := os.CreateTemp(dir, d.name+"-backup-*.db")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	f.Close()
	os.Remove(tmp) // VACUUM INTO wants to create the file itself
	fail := func(err error) (*BackupFile, error) {
		os.Remove(tmp)
		return nil, err
	}

	c, err := sqlite.Open(d.eng.dsn(d.name), sqlite.Options{})
	if err != nil {
		return fail(err)
	}
	c.Watch(ctx)
	err = c.Exec("VACUUM INTO ?", tmp)
	c.Close()
	if err != nil {
		return fail(tenant.Wrap(tenant.EINTERNAL, err, "backup failed"))
	}
	cp, err := sqlite.Open("file:"+tmp+"?mode=ro", sqlite.Options{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	seq, err := cp.QueryInt64("SELECT applied_seq FROM _hasvc_state")
	var queued int64
	if err == nil {
		queued, err = cp.QueryInt64("SELECT count(*) FROM _hasvc_outbox")
	}
	cp.Close()
	if err != nil {
		return fail(fmt.Errorf("backup sequence: %w", err))
	}
	f, err = os.Open(tmp)
	if err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(err)
	}
	return &BackupFile{File: f, Seq: uint64(seq), Size: st.Size(), Queued: queued}, nil
}

// sizeBytes returns the size of the database's pages.
func (d *DB) sizeBytes(ctx context.Context) (int64, error) {
	r, h, err := d.reader(ctx, time.Time{})
	if err != nil {
		return 0, err
	}
	defer d.putBack(r, h)
	var n int64
	err = r.Internal(func() error {
		var err error
		n, err = r.QueryInt64("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
		return err
	})
	return n, err
}

// stripHasvc drops hasvc's own tables (_hasvc_*) from the copy, which a
// tenant downloads: the sequence it reflects is in Seq (and the file's
// name), and an upload of it (CreateFromFile) takes only tenants' tables.
// An eventual-mode database keeps _hasvc_versions, its rows' versions: a
// replica started from the copy needs them to resolve later messages as
// the nodes do (package apply).
func (b *BackupFile) stripHasvc() error {
	path := b.Name()
	c, err := sqlite.Open("file:"+path, sqlite.Options{})
	if err != nil {
		return err
	}
	err = c.Internal(func() error {
		var tables []string
		if err := c.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE '\_hasvc%' ESCAPE '\' AND name <> '_hasvc_versions'`, nil, func(s *sqlite.Stmt) error {
			name, _ := s.Column(0).(string)
			tables = append(tables, name)
			return nil
		}); err != nil {
			return err
		}
		for _, t := range tables {
			if err := c.Exec("DROP TABLE " + sqlite.QuoteIdent(t)); err != nil {
				return err
			}
		}
		// One file, nothing beside it: the copy is read in rollback mode.
		return c.Exec("PRAGMA journal_mode = DELETE")
	})
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("strip the copy: %w", err)
	}
	st, err := b.File.Stat()
	if err != nil {
		return err
	}
	b.Size = st.Size()
	return nil
}
