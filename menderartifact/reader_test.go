package menderartifact

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeArtifact builds a single-file module-image artifact with Debian's
// mender-artifact and returns its bytes.
func writeArtifact(t testing.TB, name string, extra ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("mender-artifact"); err != nil {
		t.Fatal("mender-artifact not installed (scripts/test-deps.sh installs Debian's mender-artifact)")
	}
	dir := t.TempDir()
	payload := bytes.Repeat([]byte("otakit payload "), 500)
	for f, b := range map[string][]byte{"dest_dir": []byte("/tmp/dest\n"), "filename": []byte("app.bin\n"), "app.bin": payload} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "a.mender")
	args := append(extra, "write", "module-image", "-T", "single-file", "-n", name, "-t", "qemux86", "-t", "beagle",
		"-o", out, "-f", "dest_dir", "-f", "filename", "-f", "app.bin")
	cmd := exec.Command("mender-artifact", args...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mender-artifact: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadMenderArtifact(t *testing.T) {
	for _, comp := range []string{"gzip", "none", "lzma"} {
		t.Run(comp, func(t *testing.T) {
			b := writeArtifact(t, "rel-1.2.3", "--compression", comp)
			a, err := Read(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if a.Name != "rel-1.2.3" || a.FormatVersion != 3 || a.Signed {
				t.Errorf("got %+v", a)
			}
			if len(a.DeviceTypes) != 2 || !a.Compatible("qemux86") || !a.Compatible("beagle") || a.Compatible("other") {
				t.Errorf("device types %v", a.DeviceTypes)
			}
			if len(a.Payloads) != 1 || a.Payloads[0].Type != "single-file" || len(a.Payloads[0].Files) != 3 {
				t.Fatalf("payloads %+v", a.Payloads)
			}
			h, err := ReadHeader(bytes.NewReader(b))
			if err != nil || h.Name != a.Name || len(h.Payloads) != 1 {
				t.Fatalf("ReadHeader: %+v, %v", h, err)
			}
		})
	}
}

func TestReadRootfsImage(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "rootfs.ext4")
	os.WriteFile(img, bytes.Repeat([]byte{0x5a}, 64<<10), 0o644)
	out := filepath.Join(dir, "r.mender")
	cmd := exec.Command("mender-artifact", "write", "rootfs-image", "-n", "rootfs-7", "-t", "rpi4", "-f", img, "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mender-artifact: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	a, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "rootfs-7" || a.Payloads[0].Type != "rootfs-image" || a.Payloads[0].Files[0].Size != 64<<10 {
		t.Errorf("got %+v", a)
	}
}

type entry struct {
	name string
	data []byte
}

func untar(t *testing.T, b []byte) []entry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var es []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return es
		}
		if err != nil {
			t.Fatal(err)
		}
		d, _ := io.ReadAll(tr)
		es = append(es, entry{h.Name, d})
	}
}

func retar(es []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o600, Size: int64(len(e.data)), Typeflag: tar.TypeReg})
		tw.Write(e.data)
	}
	tw.Close()
	return buf.Bytes()
}

func TestReadRejects(t *testing.T) {
	good := writeArtifact(t, "rel-1", "--compression", "none")
	es := untar(t, good)
	if len(es) != 4 {
		t.Fatalf("entries %d", len(es))
	}
	mod := func(f func([]entry) []entry) []byte {
		c := make([]entry, len(es))
		for i, e := range es {
			c[i] = entry{e.name, append([]byte(nil), e.data...)}
		}
		return retar(f(c))
	}
	flipInData := func(es []entry) []entry {
		d := es[3].data
		i := bytes.Index(d, []byte("otakit payload"))
		d[i] ^= 1
		return es
	}
	cases := []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrFormat, "ends before"},
		{"not tar", []byte("hello"), ErrFormat, ""},
		{"truncated", good[:len(good)/2], ErrFormat, ""},
		{"manifest first", mod(func(e []entry) []entry { e[0], e[1] = e[1], e[0]; return e }), ErrOrder, "want \"version\""},
		{"header before manifest", mod(func(e []entry) []entry { e[1], e[2] = e[2], e[1]; return e }), ErrOrder, ""},
		{"no data", mod(func(e []entry) []entry { return e[:3] }), ErrFormat, "declares 1 payloads"},
		{"payload corrupted", mod(flipInData), ErrChecksum, "data/0000/app.bin"},
		{"version 2", mod(func(e []entry) []entry { e[0].data = []byte(`{"format":"mender","version":2}`); return e }), ErrVersion, ""},
		{"version tampered", mod(func(e []entry) []entry { e[0].data = []byte(`{"format":"mender","version":3} `); return e }), ErrChecksum, "version"},
		{"bad manifest line", mod(func(e []entry) []entry { e[1].data = []byte("zz  version\n"); return e }), ErrFormat, "manifest line 1"},
		{"manifest lists missing", mod(func(e []entry) []entry {
			e[1].data = append(e[1].data, []byte(strings.Repeat("a", 64)+"  data/0000/extra\n")...)
			return e
		}), ErrChecksum, "data/0000/extra"},
		{"unexpected file", mod(func(e []entry) []entry { return append(e, entry{"evil", []byte("x")}) }), ErrOrder, "evil"},
		{"data out of order", mod(func(e []entry) []entry { e[3].name = "data/0001.tar"; return e }), ErrOrder, "data/0000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.b))
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, c.want, c.msg)
			}
		})
	}
}

// FuzzRead's seeds are in testdata/fuzz/FuzzRead: artifacts written by
// Debian's mender-artifact 3.9 (gzip and no compression; lzma artifacts
// carry a 64 MiB dictionary, which makes each run slow, so TestReadMenderArtifact
// covers them instead).
func FuzzRead(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b))
		if err == nil && (a.Name == "" || len(a.DeviceTypes) == 0) {
			t.Fatalf("accepted artifact without name or device types: %+v", a)
		}
		ReadHeader(bytes.NewReader(b))
	})
}

func TestCheckXZ(t *testing.T) {
	stream := func(prop byte) []byte {
		b := []byte("\xfd7zXZ\x00\x00\x01\x00\x00\x00\x00")              // stream header (CRC unchecked here)
		b = append(b, 0x02, 0x00, 0x21, 0x01, prop, 0, 0, 0, 0, 0, 0, 0) // block header: LZMA2, dict prop
		return append(b, make([]byte, 64)...)
	}
	for _, c := range []struct {
		prop byte
		ok   bool
	}{{22, true}, {28, true}, {29, false}, {40, false}} { // 22: 8 MiB, 28: 64 MiB, 29: 96 MiB, 40: 4 GiB
		_, _, err := decompress(bytes.NewReader(stream(c.prop)), ".xz")
		if (err == nil) != c.ok && !(c.ok && err != nil && !strings.Contains(err.Error(), "dictionary")) {
			t.Errorf("dict prop %d: err %v, want ok=%v", c.prop, err, c.ok)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "dictionary larger than 64 MiB")) {
			t.Errorf("dict prop %d: err %v", c.prop, err)
		}
	}
	if _, _, err := decompress(bytes.NewReader([]byte("nope")), ".xz"); err == nil {
		t.Error("accepted a non-xz stream")
	}
}
