package delta

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/otakit/otakit/codec"
)

// Applier applies a native patch in one pass: it reads the patch once,
// in order, from an io.Reader, reads the source at random through an
// io.ReaderAt and writes the target in order. Besides the block table
// (12 bytes per block) and the codec's decoder state, it holds one decoded
// block: the block's instruction bytes (at most 11 × block_size + 32) and
// its target bytes (at most block_size), plus a 64 KiB source window and a
// 4 KiB patch read buffer. Buffers grow only as bytes arrive, so a hostile
// header declaring huge sizes allocates nothing up front.
type Applier struct {
	Header Header
	Blocks []Block

	src    *readerSource
	patch  *bufio.Reader
	c      codec.Codec
	plain  []byte // decoded block (instructions and data), reused
	rest   []byte // layout 2: modelled difference bytes, reused
	out    []byte // target bytes of the block, reused
	maxBuf int    // peak cap(plain)+cap(rest)+cap(out), for tests
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
	hw := sha256.New()
	bs := int64(a.Header.BlockSize)
	var written int64
	for i, b := range a.Blocks {
		tlen := int(min(bs, a.Header.TargetSize-int64(i)*bs))
		out, err := a.block(b, tlen)
		if err != nil {
			return written, fmt.Errorf("block %d: %w", i, err)
		}
		if crc32.ChecksumIEEE(out) != b.CRC32 {
			return written, fmt.Errorf("%w: block %d CRC-32 differs", ErrTargetMismatch, i)
		}
		hw.Write(out)
		n, err := w.Write(out)
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
	if n, _ := a.patch.Read(make([]byte, 1)); n > 0 {
		return written, formatErr("trailing bytes after the last block")
	}
	if [sha256.Size]byte(hw.Sum(nil)) != a.Header.TargetSHA256 {
		return written, ErrTargetMismatch
	}
	return written, nil
}

// block decodes and runs one block of tlen target bytes from the patch.
func (a *Applier) block(b Block, tlen int) ([]byte, error) {
	body := &io.LimitedReader{R: a.patch, N: int64(b.PackedSize)}
	limit := maxDecodedPerTarget*tlen + 32
	var dm *diffDecoder
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
		dm = newDiffDecoder(a.rest)
	}
	if body.N > 0 {
		return nil, truncated("block body", io.ErrUnexpectedEOF)
	}
	if cap(a.out) < tlen {
		a.out = make([]byte, 0, tlen)
	}
	out, err := runBlock(a.out[:0], a.src, plain, int(b.SourcePos), tlen, a.Header.Layout, dm)
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
