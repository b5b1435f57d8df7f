package update

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// PackFile writes the package for the file at input to output. hdr supplies
// type, versions, compression and encryption. The package is written to a
// temporary file beside output and renamed into place only when complete, so
// output is never left half-written.
func PackFile(output, input string, hdr Header, key []byte) (*Header, error) {
	in, err := os.Open(input)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var h Header
	err = writeAtomic(output, func(f *os.File) error {
		w, err := NewWriter(f, hdr, key)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, in); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		h = w.Header()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// UnpackFile decrypts and decompresses the package at input into output,
// checking both digests. output appears only if every check passed.
func UnpackFile(output, input string, key []byte) (*Header, error) {
	in, err := os.Open(input)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	r, err := NewReader(in, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", input, err)
	}
	defer r.Close()
	err = writeAtomic(output, func(f *os.File) error {
		if _, err := io.Copy(f, r); err != nil {
			return fmt.Errorf("%s: %w", input, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r.Header(), nil
}

// writeAtomic calls fill with a temporary file in path's directory and
// renames it to path if fill and the sync succeed; otherwise it removes it.
func writeAtomic(path string, fill func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
