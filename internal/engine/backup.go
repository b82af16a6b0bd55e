package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// BackupFile is a consistent copy of a database as a SQLite file, open
// for reading. Close removes it.
type BackupFile struct {
	*os.File
	Seq  uint64 // the stream sequence the copy reflects
	Size int64
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
	stop := c.Watch(ctx)
	err = c.Exec("VACUUM INTO ?", tmp)
	stop()
	c.Close()
	if err != nil {
		return fail(tenant.Wrap(tenant.EINTERNAL, err, "backup failed"))
	}
	cp, err := sqlite.Open("file:"+tmp+"?mode=ro", sqlite.Options{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	seq, err := cp.QueryInt64("SELECT applied_seq FROM _hasvc_state")
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
	return &BackupFile{File: f, Seq: uint64(seq), Size: st.Size()}, nil
}

// sizeBytes returns the size of the database's pages.
func (d *DB) sizeBytes(ctx context.Context) (int64, error) {
	r, release, err := d.reader(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	var n int64
	err = r.Internal(func() error {
		var err error
		n, err = r.QueryInt64("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
		return err
	})
	return n, err
}
