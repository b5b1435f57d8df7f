package ihex

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
)

// RecordSize is the number of data bytes per record Write emits, as
// Python intelhex's default.
const RecordSize = 16

// Write writes f as Intel HEX, byte for byte as Python's intelhex
// write_hex_file does (see the package comment). Segments must not
// overlap.
func Write(w io.Writer, f *File) error {
	g := &File{Segments: append([]Segment(nil), f.Segments...), Start: f.Start}
	if err := g.normalize(); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	if st := g.Start; st != nil {
		if st.Linear {
			record(bw, 0, TypeStartLinear, []byte{byte(st.EIP >> 24), byte(st.EIP >> 16), byte(st.EIP >> 8), byte(st.EIP)})
		} else {
			record(bw, 0, TypeStartSegment, []byte{byte(st.CS >> 8), byte(st.CS), byte(st.IP >> 8), byte(st.IP)})
		}
	}
	if n := len(g.Segments); n > 0 {
		last := g.Segments[n-1]
		if last.End() > 1<<32 {
			return fmt.Errorf("%w: segment at 0x%08x", ErrRange, last.Addr)
		}
		needELA := last.End()-1 > 0xFFFF
		high := int64(-1)
		for _, s := range g.Segments {
			for pos := uint64(0); pos < uint64(len(s.Data)); {
				addr := uint64(s.Addr) + pos
				if needELA && int64(addr>>16) != high {
					high = int64(addr >> 16)
					record(bw, 0, TypeExtLinearAddr, []byte{byte(high >> 8), byte(high)})
				}
				n := min(RecordSize, 0x10000-(addr&0xFFFF), uint64(len(s.Data))-pos)
				record(bw, uint16(addr), TypeData, s.Data[pos:pos+n])
				pos += n
			}
		}
	}
	bw.WriteString(":00000001FF\n")
	return bw.Flush()
}

// record writes one record line.
func record(w *bufio.Writer, addr uint16, typ byte, data []byte) {
	rec := make([]byte, 0, 5+len(data))
	rec = append(rec, byte(len(data)), byte(addr>>8), byte(addr), typ)
	rec = append(rec, data...)
	var sum byte
	for _, b := range rec {
		sum += b
	}
	rec = append(rec, -sum)
	line := make([]byte, 1+2*len(rec)+1)
	line[0] = ':'
	hex.Encode(line[1:], rec)
	for i := range line {
		if c := line[i]; c >= 'a' && c <= 'f' {
			line[i] = c - 'a' + 'A'
		}
	}
	line[len(line)-1] = '\n'
	w.Write(line)
}
