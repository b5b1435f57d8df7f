package ihex

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/internal/testutil"
)

// The imgtool vectors read back and re-write byte for byte.
func TestVectorsRoundTrip(t *testing.T) {
	dir := filepath.Join(testutil.SharedTestdata(t), "imgtool")
	for _, tc := range []struct {
		path       string
		base       uint32
		size       int
		segments   int
		binaryPath string
	}{
		{"inputs/app-at-0x8020000.hex", 0x08020000, 0x4fdb, 1, "inputs/app.bin"},
		{"outputs/ecdsa-p256-hex.hex", 0x0801fe00, 0, 1, ""},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, tc.path))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Read(bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Segments) != tc.segments || f.MinAddr() != tc.base {
				t.Fatalf("%d segments from 0x%08x, want %d from 0x%08x", len(f.Segments), f.MinAddr(), tc.segments, tc.base)
			}
			if tc.size != 0 && len(f.Segments[0].Data) != tc.size {
				t.Errorf("size %#x, want %#x", len(f.Segments[0].Data), tc.size)
			}
			var got bytes.Buffer
			if err := Write(&got, f); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("re-written file differs from %s", tc.path)
			}
		})
	}
	// The signed hex holds the same image as the signed binary, at the
	// header address (0x08020000 - 0x200).
	f, err := Read(mustOpen(t, filepath.Join(dir, "outputs/ecdsa-p256-hex.hex")))
	if err != nil {
		t.Fatal(err)
	}
	_, flat, err := f.Flatten(0xff)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(flat[:4], []byte{0x3d, 0xb8, 0xf3, 0x96}) {
		t.Errorf("signed hex does not start with the MCUboot magic: %x", flat[:4])
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestWriteLayout(t *testing.T) {
	data := make([]byte, 40)
	for i := range data {
		data[i] = byte(i)
	}
	f := &File{
		Segments: []Segment{
			{Addr: 0x0001FFF8, Data: data[:20]}, // crosses 64 KiB
			{Addr: 0x00020100, Data: data[:3]},  // after a gap
		},
		Start: &Start{Linear: true, EIP: 0x08000131},
	}
	var b bytes.Buffer
	if err := Write(&b, f); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		":0400000508000131BD",
		":020000040001F9",
		":08FFF8000001020304050607E5",
		":020000040002F8",
		":0C00000008090A0B0C0D0E0F1011121352",
		":03010000000102F9",
		":00000001FF",
		"",
	}, "\n")
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	// Small files below 64 KiB get no extended address record.
	b.Reset()
	Write(&b, &File{Segments: []Segment{{Addr: 0x100, Data: []byte{1, 2}}}, Start: &Start{CS: 0x1234, IP: 0x5678}})
	small := ":0400000312345678E5\n:020100000102FA\n:00000001FF\n"
	if b.String() != small {
		t.Errorf("got\n%s\nwant\n%s", b.String(), small)
	}
	g, err := Read(strings.NewReader(small))
	if err != nil || g.Start == nil || g.Start.CS != 0x1234 || g.Start.IP != 0x5678 {
		t.Errorf("read back: %+v %v", g, err)
	}
}

func TestReadSegmentAddressing(t *testing.T) {
	in := ":020000021000EC\n:03000000010203F7\r\n\n:0200000400FFFB\n:02FFFF00AABB9B\n:00000001FF\n"
	f, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Segments) != 2 || f.Segments[0].Addr != 0x10000 || f.Segments[1].Addr != 0xFFFFFF {
		t.Fatalf("segments %+v", f.Segments)
	}
	base, flat, err := f.Flatten(0xee)
	if err != nil || base != 0x10000 || len(flat) != 0xFFFFFF+2-0x10000 || flat[3] != 0xee {
		t.Errorf("flatten: base %#x len %#x err %v", base, len(flat), err)
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"checksum", ":03000000010203F6\n:00000001FF\n", ErrChecksum},
		{"short", ":0300000001020\n:00000001FF\n", ErrLength},
		{"length field", ":0400000001020309\n:00000001FF\n", ErrLength},
		{"too short", ":0000\n", ErrLength},
		{"bad char", ":03000000010G0309\n:00000001FF\n", ErrSyntax},
		{"no colon", "0300000001020309\n:00000001FF\n", ErrSyntax},
		{"type", ":00000006FB\n", ErrChecksum},
		{"unknown type", ":00000006FA\n:00000001FF\n", ErrRecordType},
		{"overlap", ":03000000010203F7\n:0100010005F9\n:00000001FF\n", ErrOverlap},
		{"no eof", ":03000000010203F7\n", ErrNoEOF},
		{"after eof", ":00000001FF\n:03000000010203F7\n", ErrAfterEOF},
		{"eof with data", ":0100000100FE\n", ErrLength},
		{"ela length", ":03000004000100F8\n:00000001FF\n", ErrLength},
		{"start twice", ":0400000508000131BD\n:0400000508000132BC\n:00000001FF\n", ErrStart},
		{"beyond 4GiB", ":02000004FFFFFC\n:04FFFE0001020304F5\n:00000001FF\n", ErrRange},
		{"long line", ":" + strings.Repeat("00", 600) + "\n", ErrLength},
	} {
		_, err := Read(strings.NewReader(tc.in))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	_, err := Read(strings.NewReader(":03000000010203F7\n:03000000010203F6\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error does not name the line: %v", err)
	}
}

func TestWriteOverlap(t *testing.T) {
	f := &File{Segments: []Segment{{Addr: 0, Data: []byte{1, 2}}, {Addr: 1, Data: []byte{3}}}}
	if err := Write(new(bytes.Buffer), f); !errors.Is(err, ErrOverlap) {
		t.Errorf("err = %v", err)
	}
}

func FuzzReader(f *testing.F) {
	dir := filepath.Join(testutil.SharedTestdata(f), "imgtool")
	for _, p := range []string{"inputs/app-at-0x8020000.hex"} {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:2000])
		f.Add(data[len(data)-500:])
	}
	f.Add([]byte(":020000021000EC\n:03000000010203F7\r\n:0200000400FFFB\n:02FFFF00AABB9B\n:0400000312345678E5\n:00000001FF\n"))
	f.Add([]byte(":0400000508000131BD\n:020000040001F9\n:08FFF8000001020304050607E5\n:00000001FF\n"))
	f.Add([]byte(":03000000010203F7\n:0100010005F9\n:00000001FF\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := Write(&out, file); err != nil {
			t.Fatalf("cannot write what was read: %v", err)
		}
		again, err := Read(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("cannot read what was written: %v\n%s", err, out.Bytes())
		}
		var out2 bytes.Buffer
		Write(&out2, again)
		if !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatal("write is not stable")
		}
	})
}
