package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/adler32"
)

// VCDIFF (RFC 3284). The writer emits one window per MiB of target, each
// using the whole source as its source segment, with the default code
// table and no secondary compression. The reader understands what xdelta3
// writes with -S none: its application header and its VCD_ADLER32 window
// checksum.

// VCDIFFMagic starts a VCDIFF file (0xD6 0xC3 0xC4 and version 0).
const VCDIFFMagic = "\xd6\xc3\xc4\x00"

const (
	vcdSource  = 0x01
	vcdTarget  = 0x02
	vcdAdler32 = 0x04 // xdelta3 extension

	vcdDecompress = 0x01
	vcdCodetable  = 0x02
	vcdAppHeader  = 0x04 // xdelta3 extension

	vcNoop, vcAdd, vcRun, vcCopy = 0, 1, 2, 3
	vcdWindow                    = 1 << 20
)

type vcInst struct{ typ, size, mode byte }

// vcDefaultTable is the RFC 3284 default code table (section 5.6).
var vcDefaultTable = func() (t [256][2]vcInst) {
	i := 0
	t[i][0] = vcInst{vcRun, 0, 0}
	i++
	for s := 0; s <= 17; s++ {
		t[i][0] = vcInst{vcAdd, byte(s), 0}
		i++
	}
	for m := 0; m <= 8; m++ {
		t[i][0] = vcInst{vcCopy, 0, byte(m)}
		i++
		for s := 4; s <= 18; s++ {
			t[i][0] = vcInst{vcCopy, byte(s), byte(m)}
			i++
		}
	}
	for m := 0; m <= 5; m++ {
		for a := 1; a <= 4; a++ {
			for c := 4; c <= 6; c++ {
				t[i] = [2]vcInst{{vcAdd, byte(a), 0}, {vcCopy, byte(c), byte(m)}}
				i++
			}
		}
	}
	for m := 6; m <= 8; m++ {
		for a := 1; a <= 4; a++ {
			t[i] = [2]vcInst{{vcAdd, byte(a), 0}, {vcCopy, 4, byte(m)}}
			i++
		}
	}
	for m := 0; m <= 8; m++ {
		t[i] = [2]vcInst{{vcCopy, 4, byte(m)}, {vcAdd, 1, 0}}
		i++
	}
	return
}()

func appendVCInt(b []byte, v uint64) []byte {
	var tmp [10]byte
	i := len(tmp) - 1
	tmp[i] = byte(v & 0x7f)
	for v >>= 7; v > 0; v >>= 7 {
		i--
		tmp[i] = byte(v&0x7f) | 0x80
	}
	return append(b, tmp[i:]...)
}

// CreateVCDIFF returns an RFC 3284 VCDIFF delta from old to new that
// xdelta3 -d -s OLD decodes. Adds with small differences become copies of
// the matching stretches and adds of the changed bytes.
func CreateVCDIFF(old, new []byte) []byte {
	ops := diffOps(old, new, defaultTuning)
	out := []byte(VCDIFFMagic)
	out = append(out, 0) // Hdr_Indicator: nothing
	type seg struct {
		copy bool
		src  int
		n    int
	}
	// Flatten into copies and adds of target bytes.
	var segs []seg
	t := 0
	for _, o := range ops {
		switch o.kind {
		case opCopy:
			segs = append(segs, seg{true, o.src, o.n})
		case opInsert:
			segs = append(segs, seg{false, 0, o.n})
		case opAdd:
			for i := 0; i < o.n; {
				j := i
				for j < o.n && old[o.src+j] == new[t+j] {
					j++
				}
				if j-i >= 4 {
					segs = append(segs, seg{true, o.src + i, j - i})
				} else if j > i {
					segs = append(segs, seg{false, 0, j - i})
				}
				k := j
				for k < o.n && old[o.src+k] != new[t+k] {
					k++
				}
				if k > j {
					segs = append(segs, seg{false, 0, k - j})
				}
				i = k
			}
		}
		t += o.n
	}
	// Emit windows of at most vcdWindow target bytes.
	t, si, done := 0, 0, 0
	for t < len(new) {
		wstart, end := t, min(t+vcdWindow, len(new))
		var data, inst, addr []byte
		for t < end {
			s := segs[si]
			n := min(s.n-done, end-t)
			if s.copy {
				inst = append(inst, byte(19)) // COPY, size follows, mode VCD_SELF
				inst = appendVCInt(inst, uint64(n))
				addr = appendVCInt(addr, uint64(s.src+done))
			} else {
				inst = append(inst, 1) // ADD, size follows
				inst = appendVCInt(inst, uint64(n))
				data = append(data, new[t:t+n]...)
			}
			t += n
			done += n
			if done == s.n {
				si++
				done = 0
			}
		}
		var enc []byte
		enc = appendVCInt(enc, uint64(end-wstart))
		enc = append(enc, 0) // Delta_Indicator
		enc = appendVCInt(enc, uint64(len(data)))
		enc = appendVCInt(enc, uint64(len(inst)))
		enc = appendVCInt(enc, uint64(len(addr)))
		enc = append(enc, data...)
		enc = append(enc, inst...)
		enc = append(enc, addr...)
		if len(old) > 0 {
			out = append(out, vcdSource)
			out = appendVCInt(out, uint64(len(old)))
			out = appendVCInt(out, 0)
		} else {
			out = append(out, 0)
		}
		out = appendVCInt(out, uint64(len(enc)))
		out = append(out, enc...)
	}
	return out
}

type vcReader struct {
	b    []byte
	p    int
	what string
}

func (r *vcReader) int() (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		if r.p >= len(r.b) {
			return 0, formatErr("VCDIFF %s: truncated integer", r.what)
		}
		c := r.b[r.p]
		r.p++
		v = v<<7 | uint64(c&0x7f)
		if v > 1<<40 {
			return 0, formatErr("VCDIFF %s: integer too large", r.what)
		}
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, formatErr("VCDIFF %s: integer too long", r.what)
}

func (r *vcReader) byte() (byte, error) {
	if r.p >= len(r.b) {
		return 0, formatErr("VCDIFF %s: truncated", r.what)
	}
	r.p++
	return r.b[r.p-1], nil
}

func (r *vcReader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.p) {
		return nil, formatErr("VCDIFF %s: %d bytes past the end", r.what, n)
	}
	r.p += int(n)
	return r.b[r.p-int(n) : r.p], nil
}

// ApplyVCDIFF decodes an RFC 3284 VCDIFF delta against old.
func ApplyVCDIFF(old, patch []byte) ([]byte, error) {
	if !bytes.HasPrefix(patch, []byte(VCDIFFMagic)) {
		return nil, fmt.Errorf("%w: not VCDIFF", ErrUnknownFormat)
	}
	r := &vcReader{b: patch, p: 4, what: "header"}
	hdr, err := r.byte()
	if err != nil {
		return nil, err
	}
	if hdr&vcdDecompress != 0 {
		return nil, formatErr("VCDIFF secondary compression is not supported (use xdelta3 -S none)")
	}
	if hdr&vcdCodetable != 0 {
		return nil, formatErr("VCDIFF application-defined code tables are not supported")
	}
	if hdr&^(vcdDecompress|vcdCodetable|vcdAppHeader) != 0 {
		return nil, formatErr("VCDIFF header indicator 0x%02x has unknown bits", hdr)
	}
	if hdr&vcdAppHeader != 0 {
		n, err := r.int()
		if err != nil {
			return nil, err
		}
		if _, err := r.bytes(n); err != nil {
			return nil, err
		}
	}
	var out []byte
	for r.p < len(r.b) {
		r.what = "window"
		win, err := r.byte()
		if err != nil {
			return nil, err
		}
		if win&^(vcdSource|vcdTarget|vcdAdler32) != 0 || win&(vcdSource|vcdTarget) == vcdSource|vcdTarget {
			return nil, formatErr("VCDIFF window indicator 0x%02x invalid", win)
		}
		var segment []byte
		if win&(vcdSource|vcdTarget) != 0 {
			size, err := r.int()
			if err != nil {
				return nil, err
			}
			pos, err := r.int()
			if err != nil {
				return nil, err
			}
			base := old
			if win&vcdTarget != 0 {
				base = out
			}
			if pos > uint64(len(base)) || size > uint64(len(base))-pos {
				return nil, formatErr("VCDIFF source segment %d+%d outside the %d bytes available", pos, size, len(base))
			}
			segment = base[pos : pos+size]
		}
		encLen, err := r.int()
		if err != nil {
			return nil, err
		}
		encb, err := r.bytes(encLen)
		if err != nil {
			return nil, err
		}
		e := &vcReader{b: encb, what: "delta encoding"}
		tlen, err := e.int()
		if err != nil {
			return nil, err
		}
		if tlen > maxInteropTarget || uint64(len(out))+tlen > maxInteropTarget {
			return nil, formatErr("VCDIFF target window of %d bytes too large", tlen)
		}
		ind, err := e.byte()
		if err != nil {
			return nil, err
		}
		if ind != 0 {
			return nil, formatErr("VCDIFF compressed sections (indicator 0x%02x) are not supported", ind)
		}
		var lens [3]uint64
		for i := range lens {
			if lens[i], err = e.int(); err != nil {
				return nil, err
			}
		}
		var sum uint32
		if win&vcdAdler32 != 0 {
			c, err := e.bytes(4)
			if err != nil {
				return nil, err
			}
			sum = binary.BigEndian.Uint32(c)
		}
		data, err := e.bytes(lens[0])
		if err != nil {
			return nil, err
		}
		inst, err := e.bytes(lens[1])
		if err != nil {
			return nil, err
		}
		addr, err := e.bytes(lens[2])
		if err != nil {
			return nil, err
		}
		if e.p != len(encb) {
			return nil, formatErr("VCDIFF window has %d unused bytes", len(encb)-e.p)
		}
		start := len(out)
		out, err = vcWindow(out, segment, tlen, data, inst, addr)
		if err != nil {
			return nil, err
		}
		if win&vcdAdler32 != 0 && adler32.Checksum(out[start:]) != sum {
			return nil, fmt.Errorf("%w: VCDIFF window Adler-32 differs", ErrTargetMismatch)
		}
	}
	return out, nil
}

func vcWindow(out, seg []byte, tlen uint64, data, inst, addr []byte) ([]byte, error) {
	d := &vcReader{b: data, what: "data"}
	in := &vcReader{b: inst, what: "instructions"}
	ad := &vcReader{b: addr, what: "addresses"}
	var near [4]uint64
	var same [3 * 256]uint64
	next := 0
	start := len(out)
	S := uint64(len(seg))
	for in.p < len(in.b) {
		code, _ := in.byte()
		for _, ins := range vcDefaultTable[code] {
			if ins.typ == vcNoop {
				continue
			}
			size := uint64(ins.size)
			if size == 0 {
				var err error
				if size, err = in.int(); err != nil {
					return nil, err
				}
			}
			here := uint64(len(out) - start)
			if size > tlen-here {
				return nil, formatErr("VCDIFF instruction of %d bytes overruns the %d-byte window", size, tlen)
			}
			switch ins.typ {
			case vcAdd:
				b, err := d.bytes(size)
				if err != nil {
					return nil, err
				}
				out = append(out, b...)
			case vcRun:
				b, err := d.byte()
				if err != nil {
					return nil, err
				}
				for i := uint64(0); i < size; i++ {
					out = append(out, b)
				}
			case vcCopy:
				here += S
				var a uint64
				var err error
				switch m := ins.mode; {
				case m == 0:
					a, err = ad.int()
				case m == 1:
					var v uint64
					v, err = ad.int()
					if v > here {
						return nil, formatErr("VCDIFF HERE address before the start")
					}
					a = here - v
				case m <= 5:
					var v uint64
					v, err = ad.int()
					a = near[m-2] + v
				default:
					var b byte
					b, err = ad.byte()
					a = same[int(m-6)*256+int(b)]
				}
				if err != nil {
					return nil, err
				}
				if a >= here {
					return nil, formatErr("VCDIFF copy address %d not before the current position %d", a, here)
				}
				near[next] = a
				next = (next + 1) % 4
				same[a%(3*256)] = a
				if a < S && size <= S-a {
					out = append(out, seg[a:a+size]...)
					break
				}
				for i := uint64(0); i < size; i++ {
					p := a + i
					if p < S {
						out = append(out, seg[p])
					} else {
						out = append(out, out[start+int(p-S)])
					}
				}
			}
		}
	}
	if uint64(len(out)-start) != tlen {
		return nil, formatErr("VCDIFF window decoded %d of %d bytes", len(out)-start, tlen)
	}
	if d.p != len(d.b) || ad.p != len(ad.b) {
		return nil, formatErr("VCDIFF window has unused data or addresses")
	}
	return out, nil
}
