// Package atomicfile replaces files so that a reader, or the file system
// after a crash, sees either the old contents or the complete new ones,
// never a partial write.
package atomicfile

import (
	"os"
	"path/filepath"
)

// File is a temporary file beside its destination. Write to it, then Commit
// to rename it into place, or Abort to remove it. Abort after Commit does
// nothing, so `defer f.Abort()` is safe.
type File struct {
	*os.File
	path string
	perm os.FileMode
	done bool
}

// Create starts a replacement for path; the new file gets mode perm.
func Create(path string, perm os.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path, perm: perm}, nil
}

// Commit syncs the data, renames the file to its destination and syncs the
// directory so that the rename itself survives a power cut.
func (f *File) Commit() error {
	if f.done {
		return os.ErrClosed
	}
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), f.perm)
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	f.done = true
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort removes the temporary file, leaving the destination untouched.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// WriteFile replaces path with data, like os.WriteFile but atomically.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
