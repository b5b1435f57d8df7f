package delta

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/otakit/otakit/codec"
)

// Applier applies a native patch in one pass: it reads the patch once,
// in order, from an io.Reader, reads the source at random through an
// io.ReaderAt and writes the target in order. It holds the block table
// (12 bytes per block), the codec's decoder state, a 64 KiB source window
// and 24 KiB of read and write buffers. Layout 0 needs nothing more: its
// instructions run as they decode. Layouts 1 and 2 also hold one decoded
// block: its instruction bytes (at most 11 × block_size + 32) and its
// target bytes (block_size). Buffers grow only as patch bytes arrive, so a
// hostile header declaring huge sizes allocates nothing up front.
type Applier struct {
	Header Header
	Blocks []Block

	src    *readerSource
	patch  *bufio.Reader
	c      codec.Codec
	plain  []byte        // decoded block (instructions and data), reused
	rest   []byte        // layout 2: modelled difference bytes, reused
	dm     *modelDecoder // layout 2: its model tables are reused
	out    []byte        // target bytes of the block, reused
	maxBuf int           // peak cap(plain)+cap(rest)+cap(out), for tests
	chunk  []byte        // layout 0: target bytes on their way to w
	instr  *instrStream  // layout 0: the block's decoded bytes
}

// NewApplier reads the patch's header and block table from patch and checks
// that src, of srcSize bytes, is the source the patch was made for (size
// and SHA-256, reading src once in order).
func NewApplier(src io.ReaderAt, srcSize int64, patch io.Reader) (*Applier, error) {
	br := bufio.NewReaderSize(patch, 4096)
	fixed := make([]byte, fixedHeaderLen+1)
	if n, err := io.ReadFull(br, fixed); err != nil {
		if n >= 4 && string(fixed[:4]) == Magic {
			return nil, formatErr("truncated header (%d bytes)", n)
		}
		if err != io.ErrUnexpectedEOF && err != io.EOF {
			return nil, err
		}
	}
	if string(fixed[:4]) != Magic {
		return nil, formatErr("bad magic (not a native otakit patch)")
	}
	h, err := parseFixed(fixed)
	if err != nil {
		return nil, err
	}
	sv := make([]byte, int(fixed[fixedHeaderLen])+1)
	if _, err := io.ReadFull(br, sv); err != nil {
		return nil, truncated("source version", err)
	}
	h.SourceVersion = string(sv[:len(sv)-1])
	tv := make([]byte, int(sv[len(sv)-1]))
	if _, err := io.ReadFull(br, tv); err != nil {
		return nil, truncated("target version", err)
	}
	h.TargetVersion = string(tv)
	nblocks := (h.TargetSize + int64(h.BlockSize) - 1) / int64(h.BlockSize)
	a := &Applier{Header: h, patch: br}
	// Grow the table as entries arrive rather than trusting nblocks.
	var e [tableEntryLen]byte
	le := binary.LittleEndian
	for i := int64(0); i < nblocks; i++ {
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return nil, truncated(fmt.Sprintf("block table (entry %d of %d)", i, nblocks), err)
		}
		b := Block{PackedSize: le.Uint32(e[:]), SourcePos: le.Uint32(e[4:]), CRC32: le.Uint32(e[8:])}
		if int64(b.SourcePos) > h.SourceSize {
			return nil, formatErr("block %d starts at source offset %d past the source size %d", i, b.SourcePos, h.SourceSize)
		}
		a.Blocks = append(a.Blocks, b)
	}
	if a.c, err = codec.ByID(h.Codec); err != nil {
		return nil, err
	}
	if srcSize != h.SourceSize {
		return nil, fmt.Errorf("%w: size %d, patch expects %d", ErrSourceMismatch, srcSize, h.SourceSize)
	}
	hs := sha256.New()
	if _, err := io.Copy(hs, io.NewSectionReader(src, 0, srcSize)); err != nil {
		return nil, fmt.Errorf("delta: reading source: %w", err)
	}
	if [sha256.Size]byte(hs.Sum(nil)) != h.SourceSHA256 {
		return nil, fmt.Errorf("%w: SHA-256 differs", ErrSourceMismatch)
	}
	a.src = &readerSource{r: src, n: srcSize}
	return a, nil
}

// truncated turns a short read of the patch into a format error.
func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr("truncated %s", what)
	}
	return err
}

// WriteTo writes the target to w, checking each block's CRC-32, that the
// patch ends after the last block, and the target's SHA-256. On an error w
// has received bytes that must be discarded. It may be called once.
func (a *Applier) WriteTo(w io.Writer) (int64, error) {
	t := &targetWriter{w: w, h: sha256.New()}
	bs := int64(a.Header.BlockSize)
	for i, b := range a.Blocks {
		tlen := int(min(bs, a.Header.TargetSize-int64(i)*bs))
		t.crc = 0
		var err error
		if a.Header.Layout == LayoutStream {
			err = a.streamBlock(b, tlen, t)
		} else {
			var out []byte
			if out, err = a.block(b, int(int64(i)*bs), tlen); err == nil {
				_, err = t.Write(out)
			}
		}
		if err != nil {
			return t.n, fmt.Errorf("block %d: %w", i, err)
		}
		if t.crc != b.CRC32 {
			return t.n, fmt.Errorf("%w: block %d CRC-32 differs", ErrTargetMismatch, i)
		}
	}
	if n, _ := a.patch.Read(make([]byte, 1)); n > 0 {
		return t.n, formatErr("trailing bytes after the last block")
	}
	if [sha256.Size]byte(t.h.Sum(nil)) != a.Header.TargetSHA256 {
		return t.n, ErrTargetMismatch
	}
	return t.n, nil
}

// targetWriter writes target bytes to w, hashing the whole target and
// the current block's CRC-32.
type targetWriter struct {
	w   io.Writer
	h   hash.Hash
	crc uint32
	n   int64
}

func (t *targetWriter) Write(p []byte) (int, error) {
	t.crc = crc32.Update(t.crc, crc32.IEEETable, p)
	t.h.Write(p)
	n, err := t.w.Write(p)
	t.n += int64(n)
	return n, err
}

// chunkSize is the buffer layout 0 blocks are applied through.
const chunkSize = 16 << 10

// streamBlock applies one layout-0 block without buffering it: instructions
// are read as they decode and target bytes written as they are produced.
// The caller checks the block's CRC-32 afterwards.
func (a *Applier) streamBlock(b Block, tlen int, w io.Writer) error {
	body := &io.LimitedReader{R: a.patch, N: int64(b.PackedSize)}
	var r io.Reader = body
	if a.c.ID() != codec.None {
		cr, err := a.c.NewReader(body)
		if err != nil {
			return formatErr("codec: %v", err)
		}
		defer cr.Close()
		r = cr
	}
	if a.chunk == nil {
		a.chunk = make([]byte, chunkSize)
		a.instr = &instrStream{r: bufio.NewReaderSize(r, 4096)}
	}
	in := a.instr
	in.r.Reset(r)
	in.n, in.limit, in.codec, in.err = 0, maxDecodedPerTarget*tlen+32, a.c.ID() != codec.None, nil
	// Target bytes gather in out and go to w when it fills, so short
	// instructions do not each cost a write.
	out := a.chunk[:0]
	room := func() (int, error) {
		if len(out) == cap(out) {
			if _, err := w.Write(out); err != nil {
				return 0, err
			}
			out = out[:0]
		}
		return cap(out) - len(out), nil
	}
	sp := int64(b.SourcePos)
	for done := 0; done < tlen; {
		v, err := binary.ReadUvarint(in)
		if err != nil {
			return in.fail(err, fmt.Sprintf("instructions end after %d of %d target bytes", done, tlen))
		}
		kind, n64 := opKind(v&3), v>>2
		if n64 == 0 || n64 > uint64(tlen-done) {
			return formatErr("instruction length %d invalid with %d target bytes left", n64, tlen-done)
		}
		n := int(n64)
		switch kind {
		case opCopy, opAdd:
			d, err := binary.ReadVarint(in)
			if err != nil {
				return in.fail(err, "truncated varint")
			}
			np := sp + d
			if np < 0 || np+int64(n) > a.src.size() {
				return formatErr("source range %d+%d outside the source's %d bytes", np, n, a.src.size())
			}
			for left := n; left > 0; {
				free, err := room()
				if err != nil {
					return err
				}
				src, err := a.src.at(np, min(left, free))
				if err != nil {
					return err
				}
				o := len(out)
				if kind == opCopy {
					out = append(out, src...)
				} else {
					out = out[:o+len(src)]
					dd := out[o:]
					if err := in.read(dd); err != nil {
						return in.fail(err, "add data runs past the end of the block")
					}
					for i := range dd {
						dd[i] += src[i]
					}
				}
				left -= len(src)
				np += int64(len(src))
			}
			sp = np
		case opInsert:
			for left := n; left > 0; {
				free, err := room()
				if err != nil {
					return err
				}
				o := len(out)
				out = out[:o+min(left, free)]
				if err := in.read(out[o:]); err != nil {
					return in.fail(err, "literal data runs past the end of the block")
				}
				left -= len(out) - o
			}
		default:
			return formatErr("reserved instruction %d", kind)
		}
		done += n
	}
	if _, err := w.Write(out); err != nil {
		return err
	}
	if _, err := in.ReadByte(); err == nil {
		return formatErr("unused data after the block's last instruction")
	} else if !errors.Is(err, io.EOF) {
		return in.fail(err, "")
	}
	// Skip what the codec left of the body, so the next block starts
	// where the table says.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return err
	}
	if body.N > 0 {
		return truncated("block body", io.ErrUnexpectedEOF)
	}
	return nil
}

// instrStream reads a layout-0 block's decoded bytes, refusing more than
// limit of them.
type instrStream struct {
	r        *bufio.Reader
	n, limit int
	codec    bool
	err      error // last read error other than the end of the data
}

func (s *instrStream) ReadByte() (byte, error) {
	if s.n >= s.limit {
		return 0, formatErr("block decodes to more than %d bytes", s.limit)
	}
	c, err := s.r.ReadByte()
	if err == nil {
		s.n++
	} else if err != io.EOF {
		s.err = err
	}
	return c, err
}

func (s *instrStream) read(p []byte) error {
	if s.n+len(p) > s.limit {
		return formatErr("block decodes to more than %d bytes", s.limit)
	}
	k, err := io.ReadFull(s.r, p)
	s.n += k
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		s.err = err
	}
	return err
}

// fail turns a read error into a format error: the end of the block
// (what says which data ran out) or a codec error.
func (s *instrStream) fail(err error, what string) error {
	switch {
	case errors.Is(err, ErrFormat):
		return err
	case s.err != nil && !s.codec:
		return s.err // reading the patch failed
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return formatErr("%s", what)
	case s.codec:
		return formatErr("codec: %v", err)
	}
	return formatErr("%v", err) // varint overflow, or reading the patch
}

// block decodes and runs one block of tlen target bytes, starting at
// target offset tbase, from the patch.
func (a *Applier) block(b Block, tbase, tlen int) ([]byte, error) {
	body := &io.LimitedReader{R: a.patch, N: int64(b.PackedSize)}
	limit := maxDecodedPerTarget*tlen + 32
	var dm *modelDecoder
	var r io.Reader = body
	if a.Header.Layout == LayoutModel {
		n, err := binary.ReadUvarint(byteReader{body})
		if err != nil {
			return nil, truncated("section length", err)
		}
		if n > uint64(body.N) {
			return nil, formatErr("bad section length")
		}
		r = io.LimitReader(body, int64(n))
	}
	plain, err := decodeStream(a.c, r, limit, a.plain)
	if err != nil {
		return nil, err
	}
	a.plain = plain
	// Skip what the codec left of its section, so the next block starts
	// where the table says.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	if a.Header.Layout == LayoutModel {
		if a.rest, err = readLimited(body, limit, a.rest); err != nil {
			return nil, err
		}
		a.dm = newModelDecoder(a.rest, tlen, int64(b.SourcePos)-int64(tbase), a.Header.Codec == codec.None, a.dm)
		dm = a.dm
	}
	if body.N > 0 {
		return nil, truncated("block body", io.ErrUnexpectedEOF)
	}
	if cap(a.out) < tlen {
		a.out = make([]byte, 0, tlen)
	}
	out, err := runBlock(a.out[:0], a.src, plain, int(b.SourcePos), tbase, tlen, a.Header.Layout, dm)
	if err != nil {
		return nil, err
	}
	a.out = out
	a.maxBuf = max(a.maxBuf, cap(a.plain)+cap(a.rest)+cap(out))
	return out, nil
}

// byteReader reads single bytes for binary.ReadUvarint.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var c [1]byte
	_, err := io.ReadFull(b.r, c[:])
	return c[0], err
}

// ApplyStream applies a native patch read in one pass from patch to the
// source src of srcSize bytes, writing the target to w. It checks the
// source SHA-256 first, then each block's CRC-32 and the target SHA-256.
func ApplyStream(src io.ReaderAt, srcSize int64, patch io.Reader, w io.Writer) error {
	a, err := NewApplier(src, srcSize, patch)
	if err != nil {
		return err
	}
	_, err = a.WriteTo(w)
	return err
}
