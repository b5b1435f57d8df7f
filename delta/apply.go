package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/otakit/otakit/codec"
)

// Errors returned when reading or applying patches.
var (
	ErrFormat         = errors.New("delta: malformed patch")
	ErrSourceMismatch = errors.New("delta: source does not match the patch")
	ErrTargetMismatch = errors.New("delta: result does not match the patch's target hash")
	ErrUnknownFormat  = errors.New("delta: unknown patch format")
)

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// Patch is a parsed native patch: header, block table and block bodies.
type Patch struct {
	Header Header
	Blocks []Block
	data   []byte // the block bodies, back to back
	starts []int  // offset of each block body in data
}

// MaxBlockSize is the largest block (restart interval) the Go applier
// accepts: it holds one block's target bytes in memory.
const MaxBlockSize = 256 << 20

// maxDecodedPerTarget bounds a block's decoded size per target byte: one
// instruction per byte at worst costs a 5-byte head, 5-byte offset and 1
// data byte.
const maxDecodedPerTarget = 11

// Parse checks and decodes a native patch's header and block table. It does
// not decompress anything; sizes are checked against the patch length before
// anything is allocated.
func Parse(patch []byte) (*Patch, error) {
	if len(patch) < 4 || string(patch[:4]) != Magic {
		return nil, formatErr("bad magic (not a native otakit patch)")
	}
	if len(patch) < fixedHeaderLen+2 {
		return nil, formatErr("truncated header (%d bytes)", len(patch))
	}
	h, err := parseFixed(patch)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	p := fixedHeaderLen
	n := int(patch[p])
	p++
	if len(patch) < p+n+1 {
		return nil, formatErr("truncated source version")
	}
	h.SourceVersion = string(patch[p : p+n])
	p += n
	n = int(patch[p])
	p++
	if len(patch) < p+n {
		return nil, formatErr("truncated target version")
	}
	h.TargetVersion = string(patch[p : p+n])
	p += n
	nblocks := (h.TargetSize + int64(h.BlockSize) - 1) / int64(h.BlockSize)
	if int64(len(patch)-p) < nblocks*tableEntryLen {
		return nil, formatErr("block table of %d entries runs past the end (target size %d)", nblocks, h.TargetSize)
	}
	pt := &Patch{Header: h, Blocks: make([]Block, nblocks), starts: make([]int, nblocks)}
	for i := range pt.Blocks {
		e := patch[p+i*tableEntryLen:]
		pt.Blocks[i] = Block{PackedSize: le.Uint32(e), SourcePos: le.Uint32(e[4:]), CRC32: le.Uint32(e[8:])}
	}
	p += int(nblocks) * tableEntryLen
	pt.data = patch[p:]
	off := int64(0)
	for i, b := range pt.Blocks {
		pt.starts[i] = int(off)
		off += int64(b.PackedSize)
		if off > int64(len(pt.data)) {
			return nil, formatErr("block %d runs past the end of the patch", i)
		}
		if int64(b.SourcePos) > h.SourceSize {
			return nil, formatErr("block %d starts at source offset %d past the source size %d", i, b.SourcePos, h.SourceSize)
		}
	}
	if off != int64(len(pt.data)) {
		return nil, formatErr("%d trailing bytes after the last block", int64(len(pt.data))-off)
	}
	return pt, nil
}

// parseFixed checks and decodes the fixed part of a header (magic already
// checked, b at least fixedHeaderLen bytes).
func parseFixed(b []byte) (Header, error) {
	if b[4] != Version {
		return Header{}, formatErr("unsupported version %d", b[4])
	}
	le := binary.LittleEndian
	h := Header{
		Layout:     Layout(b[5]),
		Codec:      codec.ID(b[6]),
		SourceSize: int64(le.Uint32(b[8:])),
		TargetSize: int64(le.Uint32(b[12:])),
		BlockSize:  int(le.Uint32(b[80:])),
		ApplierRAM: le.Uint32(b[84:]),
	}
	if h.Layout > LayoutModel {
		return h, formatErr("unknown layout %d", b[5])
	}
	if b[7] != 0 {
		return h, formatErr("reserved flags 0x%02x set", b[7])
	}
	if _, err := codec.ByID(h.Codec); err != nil {
		return h, formatErr("%v", err)
	}
	copy(h.SourceSHA256[:], b[16:48])
	copy(h.TargetSHA256[:], b[48:80])
	if h.BlockSize <= 0 || h.BlockSize > MaxBlockSize {
		return h, formatErr("block size %d out of range 1..%d", h.BlockSize, MaxBlockSize)
	}
	return h, nil
}

// CheckSource reports whether old is the source the patch was made for.
func (pt *Patch) CheckSource(old []byte) error {
	if int64(len(old)) != pt.Header.SourceSize {
		return fmt.Errorf("%w: size %d, patch expects %d", ErrSourceMismatch, len(old), pt.Header.SourceSize)
	}
	if sha256.Sum256(old) != pt.Header.SourceSHA256 {
		return fmt.Errorf("%w: SHA-256 differs", ErrSourceMismatch)
	}
	return nil
}

// ResumePoint returns the index of the first block that partial, the target
// bytes written by an interrupted apply, does not hold intact (by each
// block's CRC-32). ApplyFrom(old, ResumePoint(partial), ...) then continues
// without redoing verified blocks.
func (pt *Patch) ResumePoint(partial []byte) int {
	bs := pt.Header.BlockSize
	for i, b := range pt.Blocks {
		start := int64(i) * int64(bs)
		end := min(start+int64(bs), pt.Header.TargetSize)
		if end > int64(len(partial)) || crc32.ChecksumIEEE(partial[start:end]) != b.CRC32 {
			return i
		}
	}
	return len(pt.Blocks)
}

// Apply checks old against the patch, writes the target to w and checks the
// target's SHA-256. On a mismatch w has received bytes that must be
// discarded; use a temporary file (as the ota command does).
func (pt *Patch) Apply(old []byte, w io.Writer) error {
	if err := pt.CheckSource(old); err != nil {
		return err
	}
	hw := sha256.New()
	if err := pt.ApplyFrom(old, 0, io.MultiWriter(w, hw)); err != nil {
		return err
	}
	if !bytes.Equal(hw.Sum(nil), pt.Header.TargetSHA256[:]) {
		return ErrTargetMismatch
	}
	return nil
}

// ApplyFrom writes the target bytes from block first onwards to w, checking
// each block's CRC-32. It does not check hashes of the whole images.
func (pt *Patch) ApplyFrom(old []byte, first int, w io.Writer) error {
	if int64(len(old)) != pt.Header.SourceSize {
		return fmt.Errorf("%w: size %d, patch expects %d", ErrSourceMismatch, len(old), pt.Header.SourceSize)
	}
	if first < 0 || first > len(pt.Blocks) {
		return fmt.Errorf("delta: resume block %d out of range 0..%d", first, len(pt.Blocks))
	}
	c, err := codec.ByID(pt.Header.Codec)
	if err != nil {
		return err
	}
	bs := pt.Header.BlockSize
	// Grow the block buffer as bytes are produced rather than trusting the
	// declared sizes up front.
	out := make([]byte, 0, min(int64(bs), pt.Header.TargetSize, 1<<20))
	var dm *modelDecoder // layout 2: reused from block to block
	for i := first; i < len(pt.Blocks); i++ {
		tlen := int(min(int64(bs), pt.Header.TargetSize-int64(i)*int64(bs)))
		body := pt.data[pt.starts[i] : pt.starts[i]+int(pt.Blocks[i].PackedSize)]
		if pt.Header.Layout == LayoutModel {
			n, k := binary.Uvarint(body)
			if k <= 0 || n > uint64(len(body)-k) {
				return fmt.Errorf("block %d: %w", i, formatErr("bad section length"))
			}
			dm = newModelDecoder(body[k+int(n):], tlen, int64(pt.Blocks[i].SourcePos)-int64(i)*int64(bs), pt.Header.Codec == codec.None, dm)
			body = body[k : k+int(n)]
		}
		plain, err := decodeBlock(c, body, maxDecodedPerTarget*tlen+32)
		if err != nil {
			return fmt.Errorf("block %d: %w", i, err)
		}
		out, err = runBlock(out[:0], sliceSource(old), plain, int(pt.Blocks[i].SourcePos), i*bs, tlen, pt.Header.Layout, dm)
		if err != nil {
			return fmt.Errorf("block %d: %w", i, err)
		}
		if crc32.ChecksumIEEE(out) != pt.Blocks[i].CRC32 {
			return fmt.Errorf("%w: block %d CRC-32 differs", ErrTargetMismatch, i)
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

func decodeBlock(c codec.Codec, body []byte, limit int) ([]byte, error) {
	if c.ID() == codec.None {
		if len(body) > limit {
			return nil, formatErr("block holds %d bytes, more than its target can use", len(body))
		}
		return body, nil
	}
	return decodeStream(c, bytes.NewReader(body), limit, nil)
}

// decodeStream decompresses one block body from r into buf (reused, grown
// only as bytes arrive), refusing more than limit bytes.
func decodeStream(c codec.Codec, r io.Reader, limit int, buf []byte) ([]byte, error) {
	if c.ID() != codec.None {
		cr, err := c.NewReader(r)
		if err != nil {
			return nil, formatErr("codec: %v", err)
		}
		defer cr.Close()
		r = cr
	}
	plain, err := readLimited(r, limit, buf)
	if err != nil {
		if c.ID() == codec.None {
			return nil, err
		}
		return nil, formatErr("codec: %v", err)
	}
	return plain, nil
}

// readLimited reads r to its end into buf[:0], growing buf as bytes arrive
// so a hostile declared size costs nothing until the bytes exist.
func readLimited(r io.Reader, limit int, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, formatErr("block decodes to more than %d bytes", limit)
			}
			nb := make([]byte, len(buf), min(max(2*cap(buf), 4096), limit+1))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, formatErr("block decodes to more than %d bytes", limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// source gives runBlock the source image's bytes. at returns between 1 and
// n bytes starting at off; callers check the range against size first.
type source interface {
	size() int64
	at(off int64, n int) ([]byte, error)
}

// sliceSource is a source held in memory: at never copies.
type sliceSource []byte

func (s sliceSource) size() int64 { return int64(len(s)) }

func (s sliceSource) at(off int64, n int) ([]byte, error) { return s[off : off+int64(n)], nil }

// srcWindow is the bytes of source a readerSource buffers.
const srcWindow = 64 << 10

// readerSource reads the source through an io.ReaderAt with one buffered
// window, so forward copies cost one ReadAt per window.
type readerSource struct {
	r   io.ReaderAt
	n   int64
	buf []byte
	off int64 // source offset of buf[0]
}

func (s *readerSource) size() int64 { return s.n }

func (s *readerSource) at(off int64, n int) ([]byte, error) {
	if off < s.off || off >= s.off+int64(len(s.buf)) {
		if s.buf == nil {
			s.buf = make([]byte, srcWindow)
		}
		// Read what this copy needs (at least 4 KiB, for the next ones):
		// firmware diffs jump around, and refilling a whole window for a
		// short copy costs more than it saves.
		m := int(min(int64(max(min(n, srcWindow), 4096)), s.n-off))
		k, err := s.r.ReadAt(s.buf[:m], off)
		if k < m {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			s.buf = s.buf[:0]
			return nil, fmt.Errorf("delta: reading source at offset %d: %w", off, err)
		}
		s.buf, s.off = s.buf[:m], off
	}
	p := int(off - s.off)
	return s.buf[p:min(len(s.buf), p+n)], nil
}

// readSpan reads source bytes [lo, hi) into buf.
func readSpan(old source, lo, hi int64, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for lo < hi {
		b, err := old.at(lo, int(hi-lo))
		if err != nil {
			return nil, err
		}
		buf = append(buf, b...)
		lo += int64(len(b))
	}
	return buf, nil
}

// instrReader reads instructions from a control stream.
type instrReader struct {
	b []byte
	p int
}

func (r *instrReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.p:])
	if n <= 0 {
		return 0, formatErr("truncated or overlong varint at byte %d", r.p)
	}
	r.p += n
	return v, nil
}

func (r *instrReader) varint() (int64, error) {
	v, n := binary.Varint(r.b[r.p:])
	if n <= 0 {
		return 0, formatErr("truncated or overlong varint at byte %d", r.p)
	}
	r.p += n
	return v, nil
}

// runBlock executes one block's instructions, appending tlen target bytes
// to out; tbase is the target offset of the block's first byte.
func runBlock(out []byte, old source, plain []byte, sp, tbase, tlen int, layout Layout, dm *modelDecoder) ([]byte, error) {
	ctrl := &instrReader{b: plain}
	var diff, lit *instrReader
	if layout == LayoutSplit {
		cl, err := ctrl.uvarint()
		if err != nil {
			return nil, err
		}
		dl, err := ctrl.uvarint()
		if err != nil {
			return nil, err
		}
		rest := uint64(len(plain) - ctrl.p)
		if cl > rest || dl > rest-cl {
			return nil, formatErr("section lengths %d+%d exceed the block's %d bytes", cl, dl, rest)
		}
		s := ctrl.p
		ctrl = &instrReader{b: plain[s : s+int(cl)]}
		diff = &instrReader{b: plain[s+int(cl) : s+int(cl+dl)]}
		lit = &instrReader{b: plain[s+int(cl+dl):]}
	} else if layout == LayoutModel {
		// Instructions and differences come from the model stream.
		ctrl, diff, lit = &instrReader{}, &instrReader{}, ctrl
	} else {
		diff, lit = ctrl, ctrl
	}
	// An in-memory source is sliced directly: an interface call per
	// instruction costs the []byte path a fifth of its speed.
	sb, inMemory := old.(sliceSource)
	srcSize := old.size()
	var span []byte // layout 2: an add's source bytes, when old is not in memory
	start := len(out)
	for len(out)-start < tlen {
		var kind opKind
		var n64 uint64
		var np int64 // copies and adds: the source offset
		var err error
		if dm != nil {
			t := int64(tbase + len(out) - start)
			k, n, align, derr := dm.decodeOp()
			if derr != nil {
				return nil, derr
			}
			if dm.overrun() {
				return nil, formatErr("modelled instructions run past the end of the block")
			}
			kind, n64, np = k, uint64(n), t+align
		} else {
			if ctrl.p >= len(ctrl.b) {
				return nil, formatErr("instructions end after %d of %d target bytes", len(out)-start, tlen)
			}
			v, verr := ctrl.uvarint()
			if verr != nil {
				return nil, verr
			}
			kind, n64 = opKind(v&3), v>>2
		}
		if n64 == 0 || n64 > uint64(tlen-(len(out)-start)) {
			return nil, formatErr("instruction length %d invalid with %d target bytes left", n64, tlen-(len(out)-start))
		}
		n := int(n64)
		switch kind {
		case opCopy, opAdd:
			if dm == nil {
				d, err := ctrl.varint()
				if err != nil {
					return nil, err
				}
				np = int64(sp) + d
			}
			if np < 0 || np+int64(n) > srcSize {
				return nil, formatErr("source range %d+%d outside the source's %d bytes", np, n, srcSize)
			}
			if kind == opAdd && dm == nil && len(diff.b)-diff.p < n {
				return nil, formatErr("add data runs past the end of the block")
			}
			if kind == opAdd && dm != nil {
				// The model reads the source up to 3 bytes either side.
				view := srcBytes{b: sb}
				if !inMemory {
					lo, hi := max(np-3, 0), min(np+int64(n)+3, srcSize)
					if span, err = readSpan(old, lo, hi, span); err != nil {
						return nil, err
					}
					view = srcBytes{b: span, off: int(lo)}
				}
				t := tbase + len(out) - start
				o := len(out)
				out = append(out, make([]byte, n)...)
				dm.decodeAdd(out[o:], view, int(np), t)
				// A damaged stream is caught by the block CRC; this bounds
				// the work a hostile one can cause past its end.
				if dm.overrun() {
					return nil, formatErr("modelled differences run past the end of the block")
				}
				for k := range n {
					out[o+k] += byte(view.at(int(np) + k))
				}
				sp = int(np) + n
				continue
			}
			for left := n; left > 0; {
				var src []byte
				if inMemory {
					src = sb[np : np+int64(left)]
				} else if src, err = old.at(np, left); err != nil {
					return nil, err
				}
				left -= len(src)
				np += int64(len(src))
				if kind == opCopy {
					out = append(out, src...)
				} else {
					dd := diff.b[diff.p : diff.p+len(src)]
					diff.p += len(src)
					o := len(out)
					out = append(out, src...)
					dst := out[o:]
					for i := range dst {
						dst[i] += dd[i]
					}
				}
			}
			sp = int(np)
		case opInsert:
			if dm != nil && dm.lit != nil {
				for ; n > 0; n-- {
					out = append(out, dm.decodeLiteral(out[start:], tbase+len(out)-start))
					if dm.overrun() {
						return nil, formatErr("modelled literals run past the end of the block")
					}
				}
				continue
			}
			if len(lit.b)-lit.p < n {
				return nil, formatErr("literal data runs past the end of the block")
			}
			out = append(out, lit.b[lit.p:lit.p+n]...)
			lit.p += n
		default:
			return nil, formatErr("reserved instruction %d", kind)
		}
	}
	if ctrl.p != len(ctrl.b) || (layout != LayoutStream && (diff.p != len(diff.b) || lit.p != len(lit.b))) {
		return nil, formatErr("unused data after the block's last instruction")
	}
	if dm != nil && !dm.ended() {
		return nil, formatErr("model stream does not end where the block's last decision does")
	}
	return out, nil
}
