package delta

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"fmt"
	"io"
)

// Magics of the bsdiff formats.
const (
	BSDIFF40Magic = "BSDIFF40"         // Colin Percival's bsdiff 4.x (Debian's bsdiff)
	BSDIFF43Magic = "ENDSLEY/BSDIFF43" // Matthew Endsley's single-stream variant
)

// maxInteropTarget caps the target size of interop patches, which are
// applied in memory: a few bytes of VCDIFF RUN or bsdiff control can
// otherwise demand gigabytes.
const maxInteropTarget = MaxBlockSize

func putOfft(b []byte, x int64) {
	neg := x < 0
	if neg {
		x = -x
	}
	binary.LittleEndian.PutUint64(b, uint64(x))
	if neg {
		b[7] |= 0x80
	}
}

// offt decodes bsdiff's sign-magnitude 64-bit integer.
func offt(b []byte) int64 {
	v := int64(binary.LittleEndian.Uint64(b) &^ (1 << 63))
	if b[7]&0x80 != 0 {
		v = -v
	}
	return v
}

type bsTriple struct{ add, extra, seek int64 }

// bsdiffTriples turns instructions into bsdiff's (add, extra, seek) triples
// plus the diff and extra byte streams.
func bsdiffTriples(old, new []byte, ops []op) (ts []bsTriple, diff, extra []byte) {
	oldPos, t := 0, 0
	for i := 0; i < len(ops); {
		var tr bsTriple
		if ops[i].kind != opInsert {
			o := ops[i]
			tr.seek = int64(o.src - oldPos) // folded into the previous triple below
			if len(ts) > 0 {
				ts[len(ts)-1].seek = tr.seek
			} else if tr.seek != 0 {
				ts = append(ts, bsTriple{seek: tr.seek})
			}
			tr.seek = 0
			tr.add = int64(o.n)
			for k := 0; k < o.n; k++ {
				diff = append(diff, new[t+k]-old[o.src+k])
			}
			oldPos = o.src + o.n
			t += o.n
			i++
		}
		if i < len(ops) && ops[i].kind == opInsert {
			tr.extra = int64(ops[i].n)
			extra = append(extra, new[t:t+ops[i].n]...)
			t += ops[i].n
			i++
		}
		ts = append(ts, tr)
	}
	return ts, diff, extra
}

// CreateBSDIFF40 returns a BSDIFF40 patch (bzip2 sections) from old to new,
// which Debian's bspatch applies.
func CreateBSDIFF40(old, new []byte) []byte {
	ts, diff, extra := bsdiffTriples(old, new, diffOps(old, new, defaultTuning))
	ctrl := make([]byte, 24*len(ts))
	for i, tr := range ts {
		putOfft(ctrl[24*i:], tr.add)
		putOfft(ctrl[24*i+8:], tr.extra)
		putOfft(ctrl[24*i+16:], tr.seek)
	}
	cz, dz, ez := bzip2Compress(ctrl), bzip2Compress(diff), bzip2Compress(extra)
	out := make([]byte, 32, 32+len(cz)+len(dz)+len(ez))
	copy(out, BSDIFF40Magic)
	putOfft(out[8:], int64(len(cz)))
	putOfft(out[16:], int64(len(dz)))
	putOfft(out[24:], int64(len(new)))
	out = append(out, cz...)
	out = append(out, dz...)
	return append(out, ez...)
}

// ApplyBSDIFF applies a BSDIFF40 or ENDSLEY/BSDIFF43 patch to old. bsdiff
// patches carry no hash of their images, so a wrong source goes unnoticed
// unless the caller checks the result.
func ApplyBSDIFF(old, patch []byte) ([]byte, error) {
	var ctrl, diff, extra io.Reader
	var newSize int64
	switch {
	case bytes.HasPrefix(patch, []byte(BSDIFF40Magic)):
		if len(patch) < 32 {
			return nil, formatErr("BSDIFF40 header truncated")
		}
		cl, dl := offt(patch[8:]), offt(patch[16:])
		newSize = offt(patch[24:])
		rest := int64(len(patch) - 32)
		if cl < 0 || dl < 0 || cl > rest || dl > rest-cl {
			return nil, formatErr("BSDIFF40 section lengths %d, %d exceed the %d bytes present", cl, dl, rest)
		}
		ctrl = bzip2.NewReader(bytes.NewReader(patch[32 : 32+cl]))
		diff = bzip2.NewReader(bytes.NewReader(patch[32+cl : 32+cl+dl]))
		extra = bzip2.NewReader(bytes.NewReader(patch[32+cl+dl:]))
	case bytes.HasPrefix(patch, []byte(BSDIFF43Magic)):
		if len(patch) < 24 {
			return nil, formatErr("BSDIFF43 header truncated")
		}
		newSize = int64(binary.LittleEndian.Uint64(patch[16:]))
		r := bzip2.NewReader(bytes.NewReader(patch[24:]))
		ctrl, diff, extra = r, r, r
	default:
		return nil, fmt.Errorf("%w: not a bsdiff patch", ErrUnknownFormat)
	}
	if newSize < 0 || newSize > maxInteropTarget {
		return nil, formatErr("bsdiff target size %d out of range", newSize)
	}
	// Grow the output as data arrives rather than trusting the declared size.
	out := make([]byte, 0, min(newSize, 16<<20))
	var oldPos int64
	var c [24]byte
	for int64(len(out)) < newSize {
		if _, err := io.ReadFull(ctrl, c[:]); err != nil {
			return nil, formatErr("bsdiff control: %v", err)
		}
		add, ext, seek := offt(c[:]), offt(c[8:]), offt(c[16:])
		left := newSize - int64(len(out))
		if add < 0 || ext < 0 || add > left || ext > left-add {
			return nil, formatErr("bsdiff control (%d, %d) runs past the target size %d", add, ext, newSize)
		}
		n := len(out)
		if err := readN(diff, &out, add); err != nil {
			return nil, formatErr("bsdiff diff: %v", err)
		}
		for i := int64(0); i < add; i++ {
			if p := oldPos + i; p >= 0 && p < int64(len(old)) {
				out[n+int(i)] += old[p]
			}
		}
		if err := readN(extra, &out, ext); err != nil {
			return nil, formatErr("bsdiff extra: %v", err)
		}
		oldPos += add + seek
		if oldPos < -maxInteropTarget || oldPos > maxInteropTarget {
			return nil, formatErr("bsdiff seek to %d out of range", oldPos)
		}
	}
	return out, nil
}

// readN appends n bytes from r to *out, growing it in steps so a lying
// header cannot make it allocate much more than the data present.
func readN(r io.Reader, out *[]byte, n int64) error {
	for n > 0 {
		step := min(n, 1<<20)
		o := len(*out)
		*out = append(*out, make([]byte, step)...)
		if _, err := io.ReadFull(r, (*out)[o:]); err != nil {
			return err
		}
		n -= step
	}
	return nil
}
