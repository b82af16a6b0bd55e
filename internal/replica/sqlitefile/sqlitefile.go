// Package sqlitefile is the local file `hasvc replica` keeps in sync,
// written with hasvc's own SQLite (package sqlite).
package sqlitefile

import (
	"fmt"
	"os"

	"hasvc/internal/change"
	"hasvc/internal/replica"
	"hasvc/internal/sqlite"
)

// File is a replica's local SQLite file. It opens the file on first use
// (in WAL mode, so readers never block it) and keeps it open until Close.
type File struct {
	Path string
	c    *sqlite.Conn
}

func (f *File) conn() (*sqlite.Conn, error) {
	if f.c != nil {
		return f.c, nil
	}
	if st, err := os.Stat(f.Path); err == nil && !st.Mode().IsRegular() {
		return nil, replica.BadTargetError{Err: fmt.Errorf("%s is not a file", f.Path)}
	}
	c, err := sqlite.Open(f.Path, sqlite.Options{})
	if err == nil {
		err = c.Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
		if err != nil {
			c.Close()
		}
	}
	if err != nil {
		return nil, replica.BadTargetError{Err: fmt.Errorf("%s: %w", f.Path, err)}
	}
	f.c = c
	return c, nil
}

// Applied implements replica.Target.
func (f *File) Applied() (uint64, bool, error) {
	c, err := f.conn()
	if err != nil {
		return 0, false, err
	}
	tables, err := c.QueryInt64("SELECT count(*) FROM sqlite_schema")
	if err != nil {
		return 0, false, replica.BadTargetError{Err: fmt.Errorf("%s: %w", f.Path, err)}
	}
	if tables == 0 {
		return 0, false, nil
	}
	seq, err := c.QueryInt64("SELECT seq FROM " + replica.StateTable)
	if err != nil {
		return 0, false, replica.BadTargetError{Err: fmt.Errorf("%s is not a replica of a hasvc database (%w); remove it, or choose another file, to start one", f.Path, err)}
	}
	return uint64(seq), true, nil
}

// Restore implements replica.Target: it records seq in the downloaded file
// and copies it over the local one with SQLite's backup API, in one
// transaction, so a reader sees the old database or the new one.
func (f *File) Restore(path string, seq uint64) error {
	src, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		return err
	}
	defer src.Close()
	err = src.Exec("CREATE TABLE " + replica.StateTable + " (seq INTEGER NOT NULL)")
	if err == nil {
		err = src.Exec("INSERT INTO "+replica.StateTable+" (seq) VALUES (?)", int64(seq))
	}
	if err != nil {
		return err
	}
	c, err := f.conn()
	if err != nil {
		return err
	}
	err = c.CopyFrom(src)
	c.SchemaChanged()
	return err
}

// Apply implements replica.Target.
func (f *File) Apply(seq uint64, msg *change.Message) error {
	c, err := f.conn()
	if err != nil {
		return err
	}
	if err := c.ApplyMode(true); err != nil {
		return err
	}
	defer c.ApplyMode(false)
	if err := c.Exec("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	err = c.ApplyMessage(msg, false)
	if err == nil {
		err = c.Exec("UPDATE "+replica.StateTable+" SET seq = ?", int64(seq))
	}
	if err == nil {
		err = c.Exec("COMMIT")
	}
	if err != nil {
		c.Exec("ROLLBACK")
	}
	return err
}

// Close closes the file.
func (f *File) Close() error {
	if f.c == nil {
		return nil
	}
	err := f.c.Close()
	f.c = nil
	return err
}
