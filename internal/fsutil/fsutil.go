// Package fsutil writes the small files a node keeps beside its data
// (signing key, NATS credential, admin token) so that they survive a power
// loss whole or not at all.
package fsutil

import (
	"os"
	"path/filepath"
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
		if err := syncDir(p); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
