// Package atomicfile writes files so that a crash at any moment leaves
// either the old content or the new one, never a mix or an empty file.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to a temporary file beside path, with mode, syncs it
// and renames it over path. On error the temporary file is removed and
// path is untouched.
func Write(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, true)
}

// WriteVolatile is Write without the sync: readers never see a partial
// file and a killed process leaves the old content or the new one, but a
// power loss may leave neither. It is for files that mean nothing after a
// reboot (a pid file), where a sync would only slow the start down.
func WriteVolatile(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, false)
}

func write(path string, data []byte, mode os.FileMode, sync bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
