// Package store holds keelson's in-memory indexes and the small files that make
// state survive a restart.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data so that a crash at any moment — even of the
// machine — leaves either the old content or the new, never a torn file: write a
// temporary file in the same directory, fsync it, rename it over path, fsync the
// directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, true)
}

// WriteFileReplace replaces path with data so that a crash of keelson at any moment
// leaves the old content or the new (write a temporary file, rename it over path),
// without fsync: for files under the state dir, which a machine crash (a reboot)
// clears anyway, and which are written on every container start and exit.
func WriteFileReplace(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, false)
}

func writeFile(path string, data []byte, perm os.FileMode, durable bool) (retErr error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if retErr != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SaveJSON writes v as JSON to path (creating its directory) with WriteFileReplace:
// the status files of sandboxes and containers.
func SaveJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFileReplace(path, b, 0o600)
}

// NewID returns a random 64-hex-digit ID, the form of sandbox and container IDs.
func NewID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
