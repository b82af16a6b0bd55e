package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"hasvc/internal/tenant"
)

// Backup writes a consistent copy of the database, as a SQLite file, to
// w. The copy is one read transaction's view (VACUUM INTO), so it is
// consistent while writes go on, and its _hasvc_state table holds the
// stream sequence it reflects. It returns that sequence.
func (d *DB) Backup(ctx context.Context, w io.Writer) (uint64, error) {
	dir := os.TempDir()
	if !d.eng.Memory {
		dir = filepath.Join(d.eng.DataDir, "tmp")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, err
		}
	}
	f, err := os.CreateTemp(dir, d.name+"-backup-*.db")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	f.Close()
	os.Remove(tmp) // VACUUM INTO wants to create the file itself
	defer os.Remove(tmp)

	c, err := openConn(d.eng.dsn(d.name), false)
	if err != nil {
		return 0, err
	}
	stop := c.watch(ctx)
	err = c.exec("VACUUM INTO ?", tmp)
	stop()
	c.close()
	if err != nil {
		return 0, tenant.Wrap(tenant.EINTERNAL, err, "backup failed")
	}
	cp, err := openConn("file:"+tmp+"?mode=ro", true)
	if err != nil {
		return 0, err
	}
	seq, err := cp.queryInt64("SELECT applied_seq FROM _hasvc_state")
	cp.close()
	if err != nil {
		return 0, fmt.Errorf("backup sequence: %w", err)
	}
	f, err = os.Open(tmp)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return 0, err
	}
	return uint64(seq), nil
}

// sizeBytes returns the size of the database's pages.
func (d *DB) sizeBytes(ctx context.Context) (int64, error) {
	r, err := d.reader(ctx)
	if err != nil {
		return 0, err
	}
	defer d.putReader(r)
	var n int64
	err = r.internal(func() error {
		var err error
		n, err = r.queryInt64("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
		return err
	})
	return n, err
}
