package ctest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"math/rand"

	"github.com/otakit/otakit/codec"
)

// refPatch is an independent writer of native layout-0 patches
// (docs/delta-format.md) used to drive the C applier with instruction mixes
// a real diff engine rarely emits: random ADD sources (negative source
// moves), COPY runs, INSERTs, block-sized and one-byte instructions. It does
// not try to make small patches.
type refPatch struct {
	blockSize  int
	codec      codec.ID // None or Heatshrink
	srcVer     string
	tgtVer     string
	rnd        *rand.Rand
	randomSP   bool // source_pos of each block chosen at random
	maxInstLen int
}

func (rp refPatch) make(old, new []byte) []byte {
	bs := rp.blockSize
	nblocks := (len(new) + bs - 1) / bs
	var hdr bytes.Buffer
	hdr.WriteString("OTAD")
	hdr.Write([]byte{1, 0, byte(rp.codec), 0})
	le := binary.LittleEndian
	hdr.Write(le.AppendUint32(nil, uint32(len(old))))
	hdr.Write(le.AppendUint32(nil, uint32(len(new))))
	so, ta := sha256.Sum256(old), sha256.Sum256(new)
	hdr.Write(so[:])
	hdr.Write(ta[:])
	hdr.Write(le.AppendUint32(nil, uint32(bs)))
	ram := uint32(0)
	if rp.codec == codec.Heatshrink {
		ram = 1 << codec.HeatshrinkDefaultWindow
	}
	hdr.Write(le.AppendUint32(nil, ram))
	hdr.WriteByte(byte(len(rp.srcVer)))
	hdr.WriteString(rp.srcVer)
	hdr.WriteByte(byte(len(rp.tgtVer)))
	hdr.WriteString(rp.tgtVer)

	var table, body bytes.Buffer
	sp := 0
	for b := 0; b < nblocks; b++ {
		start, end := b*bs, min((b+1)*bs, len(new))
		if rp.randomSP {
			sp = rp.rnd.Intn(len(old) + 1)
		}
		blockSP := sp
		var raw []byte
		for i := start; i < end; {
			l := 1 + rp.rnd.Intn(min(end-i, rp.maxInstLen))
			if rp.rnd.Intn(8) == 0 {
				l = end - i // whole rest of the block
			}
			// COPY where the source at the same offset matches.
			run := 0
			for i+run < end && i+run < len(old) && old[i+run] == new[i+run] && run < l {
				run++
			}
			switch {
			case run > 0 && rp.rnd.Intn(3) > 0:
				raw = binary.AppendUvarint(raw, uint64(run)<<2) // op 0: COPY
				raw = binary.AppendVarint(raw, int64(i-sp))
				sp = i + run
				i += run
			case len(old) >= l && rp.rnd.Intn(4) > 0:
				p := i
				if p+l > len(old) || rp.rnd.Intn(4) == 0 {
					p = rp.rnd.Intn(len(old) - l + 1)
				}
				raw = binary.AppendUvarint(raw, uint64(l)<<2|1)
				raw = binary.AppendVarint(raw, int64(p-sp))
				for k := 0; k < l; k++ {
					raw = append(raw, new[i+k]-old[p+k])
				}
				sp = p + l
				i += l
			default:
				raw = binary.AppendUvarint(raw, uint64(l)<<2|2)
				raw = append(raw, new[i:i+l]...)
				i += l
			}
		}
		packed := raw
		if rp.codec == codec.Heatshrink {
			var z bytes.Buffer
			w, err := codec.NewHeatshrinkWriter(&z, codec.HeatshrinkDefaultWindow, codec.HeatshrinkDefaultLookahead)
			if err != nil {
				panic(err)
			}
			w.Write(raw)
			w.Close()
			packed = z.Bytes()
		}
		table.Write(le.AppendUint32(nil, uint32(len(packed))))
		table.Write(le.AppendUint32(nil, uint32(blockSP)))
		table.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(new[start:end])))
		body.Write(packed)
	}
	return append(append(hdr.Bytes(), table.Bytes()...), body.Bytes()...)
}
