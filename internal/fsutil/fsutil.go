// Package fsutil writes the small files a node keeps beside its data
// (signing key, NATS credential, admin token) so that they survive a power
// loss whole or not at all.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFile writes data to path durably: into a temporary file in the same
// directory, fsynced, renamed over path, and the directory fsynced, so
// that after a power loss path holds either its old contents or data,
// never an empty or partial file.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The directory holds the new name; its parent, the directory's own
	// (a node's data directory is made just before its first files).
	for _, p := range []string{dir, filepath.Dir(dir)} {
		if err := Sync(p, false); err != nil {
			return err
		}
	}
	return nil
}

// Sync fsyncs the file or directory at path; with dataOnly, an
// fdatasync (the file's data, and its size, not its times).
func Sync(path string, dataOnly bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if dataOnly {
		err = unix.Fdatasync(int(f.Fd()))
	} else {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
