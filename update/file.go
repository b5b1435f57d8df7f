package update

import (
	"fmt"
	"io"
	"os"

	"github.com/otakit/otakit/internal/atomicfile"
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

// writeAtomic calls fill with a temporary file beside path and renames it
// to path only if fill succeeds.
func writeAtomic(path string, fill func(*os.File) error) error {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f.File); err != nil {
		return err
	}
	return f.Commit()
}
