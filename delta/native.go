package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"slices"

	"github.com/otakit/otakit/codec"
)

// Magic starts every native patch.
const Magic = "OTAD"

// Version is the native format version this package writes and reads.
const Version = 1

// DefaultBlockSize is the default restart interval in target bytes of the
// stream layout: small, so a device loses little work on a power cut.
const DefaultBlockSize = 64 << 10

// DefaultSplitBlockSize is the default restart interval of the split layout:
// larger, because every block restarts the codec (costing compression) and
// its applier buffers a block anyway.
const DefaultSplitBlockSize = 1 << 20

// Layout says how instructions and their data are arranged in a block.
type Layout uint8

const (
	// LayoutStream interleaves instructions and data so an applier parses a
	// block as it arrives with no patch buffer (microcontrollers).
	LayoutStream Layout = 0
	// LayoutSplit groups control, add-difference and literal bytes into
	// sections, which compress better; the applier buffers one block.
	LayoutSplit Layout = 1
	// LayoutModel codes instructions, add differences and (with codec
	// none) literals by context-mixing models and one arithmetic coder;
	// the smallest patches, for Go appliers.
	LayoutModel Layout = 2
)

func (l Layout) String() string {
	switch l {
	case LayoutStream:
		return "stream"
	case LayoutSplit:
		return "split"
	case LayoutModel:
		return "model"
	}
	return fmt.Sprintf("layout(%d)", uint8(l))
}

const (
	fixedHeaderLen = 88
	tableEntryLen  = 12
	maxVersionLen  = 255
	maxImageSize   = 1<<32 - 1
)

// Header is the decoded header of a native patch.
type Header struct {
	Layout        Layout
	Codec         codec.ID
	SourceSize    int64
	TargetSize    int64
	SourceSHA256  [32]byte
	TargetSHA256  [32]byte
	BlockSize     int
	ApplierRAM    uint32
	SourceVersion string
	TargetVersion string
}

// Block is one entry of the block table: a restart point.
type Block struct {
	PackedSize uint32 // bytes of the block in the patch
	SourcePos  uint32 // source pointer at the block's start
	CRC32      uint32 // CRC-32 (IEEE) of the target bytes the block produces
}

// Options control Create. A nil *Options means LayoutModel with its own
// literal model (codec none).
type Options struct {
	// Layout of the instruction stream; LayoutModel gives the smallest
	// patches, LayoutStream the ones a microcontroller applies.
	Layout Layout
	// Codec compresses each block (for LayoutModel, only its literals);
	// nil means none for LayoutModel, whose own literal model gave the
	// smallest patches on the firmware corpus, and lzma otherwise.
	Codec codec.Codec
	// BlockSize is the restart interval in target bytes; 0 means
	// DefaultBlockSize (stream) or DefaultSplitBlockSize (split).
	BlockSize int
	// SourceVersion and TargetVersion are stored in the header (≤255 bytes each).
	SourceVersion, TargetVersion string
}

// ErrTooLarge is returned for images or fields beyond the format's limits.
var ErrTooLarge = errors.New("delta: too large for the native format")

// Create returns a native patch that turns old into new.
func Create(old, new []byte, opt *Options) ([]byte, error) {
	if opt == nil {
		opt = &Options{Layout: LayoutModel}
	}
	if len(old) > maxImageSize || len(new) > maxImageSize || len(old) >= 1<<31-1 || len(new) >= 1<<31-1 {
		return nil, fmt.Errorf("%w: images must be under 2 GiB", ErrTooLarge)
	}
	if len(opt.SourceVersion) > maxVersionLen || len(opt.TargetVersion) > maxVersionLen {
		return nil, fmt.Errorf("%w: version strings are limited to %d bytes", ErrTooLarge, maxVersionLen)
	}
	c := opt.Codec
	if c == nil && opt.Layout == LayoutModel {
		// Layout 2 with codec none codes the literals with its own model,
		// 3.7% smaller than lzma on the corpus.
		var err error
		if c, err = codec.ByID(codec.None); err != nil {
			return nil, err
		}
	}
	if c == nil {
		// lzma gave the smaller patch on all but a few corpus pairs, and
		// by tenths of a percent there; trying zstd too doubled the
		// encoder memory for nothing.
		var err error
		if c, err = codec.Lookup("lzma"); err != nil {
			return nil, err
		}
	}
	if opt.Layout > LayoutModel {
		return nil, fmt.Errorf("delta: unknown layout %d", opt.Layout)
	}
	bs := opt.BlockSize
	if bs > MaxBlockSize {
		return nil, fmt.Errorf("%w: block size %d above %d", ErrTooLarge, bs, MaxBlockSize)
	}
	if bs <= 0 {
		bs = DefaultBlockSize
		if opt.Layout != LayoutStream {
			bs = DefaultSplitBlockSize
		}
	}
	tu := defaultTuning
	if opt.Layout == LayoutModel {
		tu = modelTuning
	}
	ops := diffOps(old, new, tu)
	// The suffix array and the matcher are garbage now. Collecting them
	// lets the coder's tables and buffers reuse their pages rather than
	// fault in fresh, zeroed ones (a fault costs ~8 µs on the VM the bench
	// ran on): 15% fewer page faults and 4-19% less diff CPU on the corpus.
	runtime.GC()
	if opt.Layout == LayoutModel {
		ops = dropShortAlignments(ops, minNewAlignment)
	}
	if opt.Layout == LayoutStream {
		// Measured on the corpus: uncompressed streams want short copies,
		// heatshrink long ones; the split layout's codecs code zero
		// differences so cheaply that splitting only adds instructions.
		minCopy := 64
		if opt.Codec != nil && opt.Codec.ID() == codec.None {
			minCopy = 10
		}
		ops = splitAdds(old, new, ops, minCopy)
	}
	return encodeNative(old, new, ops, opt.Layout, c, bs, opt.SourceVersion, opt.TargetVersion)
}

func encodeNative(old, new []byte, ops []op, layout Layout, c codec.Codec, bs int, sv, tv string) ([]byte, error) {
	h := Header{
		Layout: layout, Codec: c.ID(), SourceSize: int64(len(old)), TargetSize: int64(len(new)),
		SourceSHA256: sha256.Sum256(old), TargetSHA256: sha256.Sum256(new),
		BlockSize: bs, SourceVersion: sv, TargetVersion: tv,
	}
	nblocks := (len(new) + bs - 1) / bs
	table := make([]Block, nblocks)
	var body bytes.Buffer
	var ctrl, diff, lit, plain []byte
	var scratch []byte // an add's differences, copied to diff or plain
	var tmp [binary.MaxVarintLen64]byte
	maxDecoded, maxModel, window := 0, 0, 0
	var prevDM *modelEncoder    // layout 2: model tables reused by every block
	sp, oi, consumed := 0, 0, 0 // consumed: bytes of ops[oi] already emitted
	for b := 0; b < nblocks; b++ {
		start := b * bs
		end := min(start+bs, len(new))
		table[b].SourcePos = uint32(sp)
		table[b].CRC32 = crc32.ChecksumIEEE(new[start:end])
		ctrl, diff, lit, plain = ctrl[:0], diff[:0], lit[:0], plain[:0]
		var dm *modelEncoder
		if layout == LayoutModel {
			prevDM = newModelEncoder(end-start, int64(sp-start), c.ID() == codec.None, prevDM)
			dm = prevDM
		}
		t := start
		for t < end {
			o := ops[oi]
			n := min(o.n-consumed, end-t)
			src := o.src + consumed
			head := binary.PutUvarint(tmp[:], uint64(n)<<2|uint64(o.kind))
			if dm != nil {
				dm.encodeOp(o.kind, n, int64(src-t))
			}
			var fb [2 * binary.MaxVarintLen64]byte
			field := append(fb[:0], tmp[:head]...)
			if o.kind != opInsert {
				k := binary.PutVarint(tmp[:], int64(src-sp))
				field = append(field, tmp[:k]...)
				sp = src + n
			}
			var data []byte
			switch o.kind {
			case opAdd:
				scratch = slices.Grow(scratch[:0], n)[:n]
				data = scratch
				for i := range data {
					data[i] = new[t+i] - old[src+i]
				}
				if dm != nil {
					dm.encodeAdd(data, srcBytes{b: old}, src, t)
				}
			case opInsert:
				data = new[t : t+n]
			}
			if dm != nil && dm.lit != nil && o.kind == opInsert {
				for i := 0; i < n; i++ {
					dm.encodeLiteral(new[start:t+i], t+i, new[t+i])
				}
				data = nil // coded above
			}
			switch {
			case layout == LayoutStream:
				plain = append(plain, field...)
				plain = append(plain, data...)
			case layout == LayoutSplit:
				ctrl = append(ctrl, field...)
				if o.kind == opAdd {
					diff = append(diff, data...)
				} else {
					lit = append(lit, data...)
				}
			case o.kind == opInsert:
				// Layout 2's model stream holds the instructions and
				// differences: only the codec's literals are kept.
				lit = append(lit, data...)
			}
			t += n
			consumed += n
			if consumed == o.n {
				oi++
				consumed = 0
			}
		}
		if layout == LayoutSplit {
			k := binary.PutUvarint(tmp[:], uint64(len(ctrl)))
			plain = append(plain, tmp[:k]...)
			k = binary.PutUvarint(tmp[:], uint64(len(diff)))
			plain = append(plain, tmp[:k]...)
			plain = append(plain, ctrl...)
			plain = append(plain, diff...)
			plain = append(plain, lit...)
		}
		if layout == LayoutModel {
			plain = append(plain, lit...)
		}
		maxDecoded = max(maxDecoded, len(plain))
		before := body.Len()
		packed, err := compressBlock(c, plain)
		if err != nil {
			return nil, err
		}
		if dm != nil {
			k := binary.PutUvarint(tmp[:], uint64(len(packed)))
			body.Write(tmp[:k])
		}
		body.Write(packed)
		if dm != nil {
			fin := dm.finish()
			maxModel = max(maxModel, len(fin))
			body.Write(fin)
		}
		if body.Len()-before > maxImageSize {
			return nil, ErrTooLarge
		}
		table[b].PackedSize = uint32(body.Len() - before)
		if c.ID() == codec.Heatshrink && body.Len() > before {
			// The stream's first byte is W<<4|L; the decoder keeps 2^W bytes.
			window = max(window, 1<<(body.Bytes()[before]>>4))
		}
	}
	switch layout {
	case LayoutSplit:
		h.ApplierRAM = uint32(maxDecoded)
	case LayoutModel:
		// The codec section, the model stream and the target bytes of a
		// block, and the models' tables.
		h.ApplierRAM = uint32(min(maxDecoded+maxModel+bs+modelRAM(bs, c.ID() == codec.None), maxImageSize))
	default:
		// A streaming applier keeps the block table (it arrives before the
		// blocks) and the codec's window.
		h.ApplierRAM = uint32(tableEntryLen*nblocks + window)
	}
	out := h.appendTo(nil, table)
	return append(out, body.Bytes()...), nil
}

func (h *Header) appendTo(b []byte, table []Block) []byte {
	b = append(b, Magic...)
	b = append(b, Version, byte(h.Layout), byte(h.Codec), 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.SourceSize))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.TargetSize))
	b = append(b, h.SourceSHA256[:]...)
	b = append(b, h.TargetSHA256[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.BlockSize))
	b = binary.LittleEndian.AppendUint32(b, h.ApplierRAM)
	b = append(b, byte(len(h.SourceVersion)))
	b = append(b, h.SourceVersion...)
	b = append(b, byte(len(h.TargetVersion)))
	b = append(b, h.TargetVersion...)
	for _, e := range table {
		b = binary.LittleEndian.AppendUint32(b, e.PackedSize)
		b = binary.LittleEndian.AppendUint32(b, e.SourcePos)
		b = binary.LittleEndian.AppendUint32(b, e.CRC32)
	}
	return b
}
