// Package atomicfile replaces files so that a reader sees the old content or
// the new, never a mix: the daemon rewrites a live trace's metadata and
// sidecar while babeltrace2 or usertrace view may be reading them.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with b. The new content is written to a hidden
// temporary file in the same directory (hidden, so that CTF readers scanning
// the directory skip it; unique, so that concurrent writers do not collide),
// then renamed over path.
func Write(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
