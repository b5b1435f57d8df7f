package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/fleet"
)

func TestPutOpenDelete(t *testing.T) {
	ctx := context.Background()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("firmware"), 10000)
	h := sha256.Sum256(data)
	want := hex.EncodeToString(h[:])
	sum, n, created, err := d.Put(ctx, bytes.NewReader(data), 0)
	if err != nil || sum != want || n != int64(len(data)) || !created {
		t.Fatalf("Put = %s %d %v %v", sum, n, created, err)
	}
	if _, _, created, _ := d.Put(ctx, bytes.NewReader(data), 0); created {
		t.Fatal("identical content stored twice")
	}
	b, err := d.Open(sum)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b)
	b.Close()
	if !bytes.Equal(got, data) || b.Size() != int64(len(data)) {
		t.Fatal("content differs")
	}
	for _, bad := range []string{"", "../etc/passwd", strings.Repeat("g", 64), strings.ToUpper(want)} {
		if _, err := d.Open(bad); !errors.Is(err, fleet.ErrNotFound) {
			t.Errorf("Open(%q): %v", bad, err)
		}
	}
	if err := d.Delete(sum); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(sum); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatal("deleted blob still there")
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestFailedOrOversizedPutLeavesNothing(t *testing.T) {
	root := t.TempDir()
	d, _ := Open(root)
	if _, _, _, err := d.Put(context.Background(), &failingReader{n: 100000}, 0); err == nil {
		t.Fatal("broken stream accepted")
	}
	if _, _, _, err := d.Put(context.Background(), bytes.NewReader(make([]byte, 1001)), 1000); !errors.Is(err, fleet.ErrInvalid) {
		t.Fatalf("oversized: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, _, err := d.Put(ctx, bytes.NewReader(make([]byte, 10)), 0); err == nil {
		t.Fatal("canceled put accepted")
	}
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

func TestOpenRemovesStaleTemporaries(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "tmp", "up-123")
	os.WriteFile(stale, []byte("half an upload"), 0o644)
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("stale temporary survived a restart")
	}
}

func TestSweepRemovesUnreferencedBlobs(t *testing.T) {
	d, _ := Open(t.TempDir())
	ctx := context.Background()
	keep, _, _, _ := d.Put(ctx, strings.NewReader("released"), 0)
	orphan, _, _, _ := d.Put(ctx, strings.NewReader("upload cut before commit"), 0)
	n, err := d.Sweep(func(sum string) (bool, error) { return sum == keep, nil })
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	if _, err := d.Open(keep); err != nil {
		t.Fatal("kept blob removed")
	}
	if _, err := d.Open(orphan); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatal("orphan survived")
	}
}
