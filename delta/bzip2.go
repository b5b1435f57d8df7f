package delta

import (
	"bytes"
	"sort"
)

// This file is a small bzip2 compressor, needed because BSDIFF40 patches
// carry bzip2 streams and the standard library only decompresses bzip2. It
// uses the suffix-array code for the Burrows-Wheeler transform and one
// Huffman table per block; simple, valid, and good enough for interop.

const bz2BlockMax = 890000 // RLE1 output per block; level 9 allows 900000

var bz2CRCTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for k := 0; k < 8; k++ {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return
}()

type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) bits(n uint, v uint64) {
	w.acc = w.acc<<n | v&(1<<n-1)
	w.nacc += n
	for w.nacc >= 8 {
		w.nacc -= 8
		w.out = append(w.out, byte(w.acc>>w.nacc))
	}
}

func (w *bitWriter) flush() {
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc<<(8-w.nacc)))
		w.nacc = 0
	}
}

// bzip2Compress returns data as a complete bzip2 stream.
func bzip2Compress(data []byte) []byte {
	w := &bitWriter{out: []byte("BZh9")}
	var combined uint32
	for len(data) > 0 {
		// RLE1: runs of 4..255 equal bytes become 4 bytes and a count.
		var rle []byte
		crc := ^uint32(0)
		i := 0
		for i < len(data) && len(rle) < bz2BlockMax {
			b := data[i]
			run := 1
			for run < 255 && i+run < len(data) && data[i+run] == b {
				run++
			}
			for k := 0; k < run; k++ {
				crc = crc<<8 ^ bz2CRCTable[byte(crc>>24)^b]
			}
			if run >= 4 {
				rle = append(rle, b, b, b, b, byte(run-4))
			} else {
				for k := 0; k < run; k++ {
					rle = append(rle, b)
				}
			}
			i += run
		}
		data = data[i:]
		crc = ^crc
		combined = (combined<<1 | combined>>31) ^ crc
		bz2Block(w, rle, crc)
	}
	w.bits(24, 0x177245)
	w.bits(24, 0x385090)
	w.bits(32, uint64(combined))
	w.flush()
	return w.out
}

func bz2Block(w *bitWriter, block []byte, crc uint32) {
	n := len(block)
	// BWT over rotations: sort the suffixes of block+block that start in
	// the first copy.
	doubled := append(append(make([]byte, 0, 2*n), block...), block...)
	sa := suffixArray(doubled)
	bwt := make([]byte, 0, n)
	origPtr := 0
	for _, p := range sa {
		if int(p) >= n {
			continue
		}
		if p == 0 {
			origPtr = len(bwt)
			bwt = append(bwt, block[n-1])
		} else {
			bwt = append(bwt, block[p-1])
		}
	}

	var inUse [256]bool
	for _, b := range block {
		inUse[b] = true
	}
	var seqToUnseq []byte
	var unseqToSeq [256]byte
	for i := 0; i < 256; i++ {
		if inUse[i] {
			unseqToSeq[i] = byte(len(seqToUnseq))
			seqToUnseq = append(seqToUnseq, byte(i))
		}
	}
	nInUse := len(seqToUnseq)
	alpha := nInUse + 2
	eob := uint16(nInUse + 1)

	// MTF and zero-run coding (RUNA=0, RUNB=1).
	mtf := append([]byte(nil), seqToUnseq...)
	for i := range mtf {
		mtf[i] = byte(i)
	}
	var syms []uint16
	zeros := 0
	flushZeros := func() {
		for zeros > 0 {
			zeros--
			syms = append(syms, uint16(zeros&1))
			zeros >>= 1
		}
	}
	for _, b := range bwt {
		s := unseqToSeq[b]
		j := bytes.IndexByte(mtf, s)
		if j == 0 {
			zeros++
			continue
		}
		flushZeros()
		copy(mtf[1:j+1], mtf[:j])
		mtf[0] = s
		syms = append(syms, uint16(j+1))
	}
	flushZeros()
	syms = append(syms, eob)

	freq := make([]int, alpha)
	for _, s := range syms {
		freq[s]++
	}
	lens := huffLengths(freq, 17)
	codes := make([]uint32, alpha)
	code := uint32(0)
	for l := 1; l <= 17; l++ {
		for s := 0; s < alpha; s++ {
			if lens[s] == l {
				codes[s] = code
				code++
			}
		}
		code <<= 1
	}

	w.bits(24, 0x314159)
	w.bits(24, 0x265359)
	w.bits(32, uint64(crc))
	w.bits(1, 0)
	w.bits(24, uint64(origPtr))
	var used16 uint64
	for i := 0; i < 16; i++ {
		for k := 0; k < 16; k++ {
			if inUse[i*16+k] {
				used16 |= 1 << (15 - i)
				break
			}
		}
	}
	w.bits(16, used16)
	for i := 0; i < 16; i++ {
		if used16&(1<<(15-i)) == 0 {
			continue
		}
		var v uint64
		for k := 0; k < 16; k++ {
			if inUse[i*16+k] {
				v |= 1 << (15 - k)
			}
		}
		w.bits(16, v)
	}
	nSel := (len(syms) + 49) / 50
	w.bits(3, 2) // two tables (the minimum), both the same
	w.bits(15, uint64(nSel))
	for i := 0; i < nSel; i++ {
		w.bits(1, 0) // selector 0, MTF-coded
	}
	for t := 0; t < 2; t++ {
		cur := lens[0]
		w.bits(5, uint64(cur))
		for s := 0; s < alpha; s++ {
			for cur < lens[s] {
				w.bits(2, 2)
				cur++
			}
			for cur > lens[s] {
				w.bits(2, 3)
				cur--
			}
			w.bits(1, 0)
		}
	}
	for _, s := range syms {
		w.bits(uint(lens[s]), uint64(codes[s]))
	}
}

// huffLengths returns Huffman code lengths for freq, each at most maxLen,
// flattening the frequencies until the limit holds (as bzip2 itself does).
func huffLengths(freq []int, maxLen int) []int {
	n := len(freq)
	w := make([]int, n)
	for i, f := range freq {
		w[i] = max(f, 1)
	}
	for {
		type node struct{ w, a, b int }
		nodes := make([]node, 0, 2*n)
		for i := range w {
			nodes = append(nodes, node{w[i], -1, -1})
		}
		live := make([]int, n)
		for i := range live {
			live[i] = i
		}
		for len(live) > 1 {
			sort.Slice(live, func(i, j int) bool { return nodes[live[i]].w < nodes[live[j]].w })
			a, b := live[0], live[1]
			nodes = append(nodes, node{nodes[a].w + nodes[b].w, a, b})
			live = append(live[2:], len(nodes)-1)
		}
		lens := make([]int, n)
		var walk func(i, d int)
		walk = func(i, d int) {
			if nodes[i].a < 0 {
				lens[i] = max(d, 1)
				return
			}
			walk(nodes[i].a, d+1)
			walk(nodes[i].b, d+1)
		}
		walk(live[0], 0)
		ok := true
		for _, l := range lens {
			if l > maxLen {
				ok = false
			}
		}
		if ok {
			return lens
		}
		for i := range w {
			w[i] = 1 + w[i]/2
		}
	}
}
