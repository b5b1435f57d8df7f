// Package blob stores fleet artifacts in a local content-addressed
// directory. A blob is written to a temporary file under DIR/tmp, fsynced,
// then renamed to DIR/sha256/ab/abcdef… and the directory fsynced, so a
// reader either sees the whole blob or nothing — never a half upload, even
// after kill -9 or power loss.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/otakit/otakit/fleet"
)

// Dir is a blob store rooted at a local directory. It implements
// fleet.BlobStore and is safe for concurrent use.
type Dir struct {
	root string
}

var _ fleet.BlobStore = (*Dir)(nil)

// Open opens (creating if needed) the store at root and removes temporary
// files left by uploads that were interrupted.
func Open(root string) (*Dir, error) {
	for _, sub := range []string{"tmp", "sha256"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o755); err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
	}
	tmps, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	for _, e := range tmps {
		os.Remove(filepath.Join(root, "tmp", e.Name()))
	}
	return &Dir{root: root}, nil
}

// Path returns where the blob with hex digest sum lives (whether or not it
// exists). It returns "" for a malformed digest.
func (d *Dir) Path(sum string) string {
	if !validSum(sum) {
		return ""
	}
	return filepath.Join(d.root, "sha256", sum[:2], sum)
}

func validSum(sum string) bool {
	if len(sum) != 64 {
		return false
	}
	for _, c := range sum {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Put streams r into the store. See fleet.BlobStore.
func (d *Dir) Put(ctx context.Context, r io.Reader, limit int64) (string, int64, bool, error) {
	f, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "up-*")
	if err != nil {
		return "", 0, false, fmt.Errorf("blob: %w", err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	src := r
	if limit > 0 {
		src = io.LimitReader(r, limit+1)
	}
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, src})
	if err != nil {
		return "", 0, false, fmt.Errorf("blob: writing: %w", err)
	}
	if limit > 0 && n > limit {
		return "", 0, false, fmt.Errorf("%w: blob larger than %d bytes", fleet.ErrInvalid, limit)
	}
	if err := f.Sync(); err != nil {
		return "", 0, false, fmt.Errorf("blob: fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, false, fmt.Errorf("blob: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	final := d.Path(sum)
	if _, err := os.Stat(final); err == nil {
		return sum, n, false, nil // identical content already stored
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", 0, false, fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", 0, false, fmt.Errorf("blob: %w", err)
	}
	done = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return "", 0, false, err
	}
	return sum, n, true, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob: fsync dir: %w", err)
	}
	return nil
}

// Open returns the blob with hex digest sum.
func (d *Dir) Open(sum string) (fleet.Blob, error) {
	p := d.Path(sum)
	if p == "" {
		return nil, fmt.Errorf("%w: blob %q", fleet.ErrNotFound, sum)
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s", fleet.ErrNotFound, sum)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &file{File: f, size: st.Size(), mod: st.ModTime()}, nil
}

// Delete removes the blob with hex digest sum.
func (d *Dir) Delete(sum string) error {
	p := d.Path(sum)
	if p == "" {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// file is an open blob. It embeds *os.File so that io.Copy to a TCP
// connection can use sendfile.
type file struct {
	*os.File
	size int64
	mod  time.Time
}

// OSFile returns the underlying file, so servers can use sendfile.
func (f *file) OSFile() *os.File { return f.File }

func (f *file) Size() int64        { return f.size }
func (f *file) ModTime() time.Time { return f.mod }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Sweep removes blobs for which keep reports false: the artifacts of
// uploads that were cut after a blob was stored but before its release was
// committed. Run it when no upload is in progress (at start-up).
func (d *Dir) Sweep(keep func(sum string) (bool, error)) (removed int, err error) {
	top := filepath.Join(d.root, "sha256")
	dirs, err := os.ReadDir(top)
	if err != nil {
		return 0, fmt.Errorf("blob: %w", err)
	}
	for _, sub := range dirs {
		ents, err := os.ReadDir(filepath.Join(top, sub.Name()))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !validSum(e.Name()) {
				continue
			}
			ok, err := keep(e.Name())
			if err != nil {
				return removed, err
			}
			if !ok {
				if err := d.Delete(e.Name()); err != nil {
					return removed, err
				}
				removed++
			}
		}
	}
	return removed, nil
}
