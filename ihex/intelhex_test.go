package ihex

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// intelhexScript re-writes each N.hex as N.out with intelhex.
const intelhexScript = `
import sys
from intelhex import IntelHex
for src in sys.argv[1:]:
    IntelHex(src).write_hex_file(src[:-4] + ".out")
`

// pythonIntelHex re-writes hex files with Debian's python3-intelhex (the
// library imgtool writes .hex files with) and returns its outputs.
func pythonIntelHex(t *testing.T, ins [][]byte) [][]byte {
	t.Helper()
	const py = "/usr/bin/python3" // Debian's, which sees python3-intelhex
	if _, err := os.Stat("/usr/share/python3-intelhex"); err != nil {
		t.Fatal("python3-intelhex is needed (apt-get install python3-intelhex; make deps)")
	}
	dir := t.TempDir()
	args := []string{"-c", intelhexScript}
	for i, in := range ins {
		src := filepath.Join(dir, fmt.Sprintf("%d.hex", i))
		if err := os.WriteFile(src, in, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, src)
	}
	if out, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		t.Fatalf("python intelhex: %v\n%s", err, out)
	}
	outs := make([][]byte, len(ins))
	for i := range ins {
		var err error
		if outs[i], err = os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.out", i))); err != nil {
			t.Fatal(err)
		}
	}
	return outs
}

// For inputs of every shape (gaps, 64 KiB crossings, segment addressing,
// records out of order, start addresses, CR LF), reading and writing with
// ihex gives the bytes intelhex gives.
func TestMatchesPythonIntelHex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs [][]byte
	// Random layouts written by our writer.
	for i := 0; i < 12; i++ {
		f := &File{}
		addr := uint64(rng.IntN(3)) * 0x8000_0000 / 2
		for n := 1 + rng.IntN(5); n > 0; n-- {
			addr += uint64(rng.IntN(0x30000))
			data := make([]byte, 1+rng.IntN(300))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			f.Segments = append(f.Segments, Segment{Addr: uint32(addr), Data: data})
			addr += uint64(len(data))
		}
		switch i % 3 {
		case 1:
			f.Start = &Start{Linear: true, EIP: rng.Uint32()}
		case 2:
			f.Start = &Start{CS: uint16(rng.Uint32()), IP: uint16(rng.Uint32())}
		}
		var b bytes.Buffer
		if err := Write(&b, f); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b.Bytes())
	}
	// Hand-made inputs other tools write.
	inputs = append(inputs,
		[]byte(":020000021000EC\r\n:03000000010203F7\r\n:0200000400FFFB\r\n:02FFFF00AABB9B\r\n:00000001FF\r\n"),
		[]byte(":0100100005EA\n:03000000010203F7\n:0400000312345678E5\n:00000001FF\n"),
		[]byte(":10FFF800000102030405060708090A0B0C0D0E0F81\n:00000001FF\n"),
	)
	wants := pythonIntelHex(t, inputs)
	for i, in := range inputs {
		f, err := Read(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("input %d: %v\n%s", i, err, in)
		}
		var ours bytes.Buffer
		if err := Write(&ours, f); err != nil {
			t.Fatal(err)
		}
		want := wants[i]
		if !bytes.Equal(ours.Bytes(), want) {
			t.Errorf("input %d differs from intelhex:\n%s\nintelhex:\n%s", i, firstLines(ours.String()), firstLines(string(want)))
		}
	}
}

func firstLines(s string) string {
	l := strings.SplitN(s, "\n", 12)
	return strings.Join(l[:min(len(l), 11)], "\n")
}
