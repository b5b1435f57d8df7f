package main

// Intel HEX for ota sign/verify/decrypt/dumpinfo. A minimal reader and a
// writer that lays out records as imgtool (python-intelhex) does, kept here
// until the shared ihex package is on main.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

type hexSegment struct {
	Addr uint32
	Data []byte
}

func sortedKeys(m map[int64][]byte) []int64 {
	ks := make([]int64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// readHexFile returns the lowest address of an Intel HEX file and its
// contents from there to the highest address, gaps filled with 0xff.
func readHexFile(path string) (uint32, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	return readHex(f, path)
}

// maxHexSpan bounds the flattened size of a HEX file, so that two records
// far apart cannot make us allocate gigabytes of fill.
const maxHexSpan = 256 << 20

// readHex parses Intel HEX from r; name prefixes error messages.
func readHex(f io.Reader, path string) (uint32, []byte, error) {
	mem := map[uint32]byte{}
	var upper uint32
	sc := bufio.NewScanner(f)
	line := 0
	eof := false
	for sc.Scan() && !eof {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		if s[0] != ':' {
			return 0, nil, fmt.Errorf("%s:%d: Intel HEX record does not start with ':'", path, line)
		}
		rec, err := hex.DecodeString(s[1:])
		if err != nil || len(rec) < 5 || len(rec) != 5+int(rec[0]) {
			return 0, nil, fmt.Errorf("%s:%d: malformed Intel HEX record", path, line)
		}
		var sum byte
		for _, c := range rec {
			sum += c
		}
		if sum != 0 {
			return 0, nil, fmt.Errorf("%s:%d: Intel HEX checksum mismatch", path, line)
		}
		addr, data := uint32(rec[1])<<8|uint32(rec[2]), rec[4:len(rec)-1]
		switch rec[3] {
		case 0:
			for i, c := range data {
				mem[upper+addr+uint32(i)] = c
			}
		case 1:
			eof = true
		case 2:
			if len(data) != 2 {
				return 0, nil, fmt.Errorf("%s:%d: bad extended segment address record", path, line)
			}
			upper = (uint32(data[0])<<8 | uint32(data[1])) << 4
		case 4:
			if len(data) != 2 {
				return 0, nil, fmt.Errorf("%s:%d: bad extended linear address record", path, line)
			}
			upper = (uint32(data[0])<<8 | uint32(data[1])) << 16
		case 3, 5: // start addresses: not part of the image
		default:
			return 0, nil, fmt.Errorf("%s:%d: unknown Intel HEX record type %d", path, line, rec[3])
		}
	}
	if err := sc.Err(); err != nil {
		return 0, nil, err
	}
	if len(mem) == 0 {
		return 0, nil, fmt.Errorf("%s: Intel HEX file holds no data", path)
	}
	lo, hi := ^uint32(0), uint32(0)
	for a := range mem {
		lo, hi = min(lo, a), max(hi, a)
	}
	if hi-lo >= maxHexSpan {
		return 0, nil, fmt.Errorf("%s: Intel HEX data spans 0x%x bytes (0x%x to 0x%x), more than %d MiB", path, uint64(hi-lo)+1, lo, hi, maxHexSpan>>20)
	}
	data := bytes.Repeat([]byte{0xff}, int(hi-lo)+1)
	for a, c := range mem {
		data[a-lo] = c
	}
	return lo, data, nil
}

// writeHex writes segments (sorted by address, not overlapping) as Intel
// HEX: data records of up to 16 bytes that never cross a 64 KiB boundary,
// an extended linear address record whenever the upper 16 bits change
// (only if any address is above 0xffff), and the end-of-file record.
func writeHex(w io.Writer, segs []hexSegment) error {
	bw := bufio.NewWriter(w)
	var maxAddr uint64
	for _, s := range segs {
		if len(s.Data) > 0 {
			maxAddr = max(maxAddr, uint64(s.Addr)+uint64(len(s.Data))-1)
		}
	}
	needExt := maxAddr > 0xffff
	high := int64(-1)
	for _, s := range segs {
		addr := uint64(s.Addr)
		data := s.Data
		for len(data) > 0 {
			if needExt && int64(addr>>16) != high {
				high = int64(addr >> 16)
				hexRecord(bw, 0, 4, []byte{byte(high >> 8), byte(high)})
			}
			low := addr & 0xffff
			n := min(uint64(len(data)), 16, 0x10000-low)
			hexRecord(bw, uint16(low), 0, data[:n])
			data, addr = data[n:], addr+n
		}
	}
	hexRecord(bw, 0, 1, nil)
	return bw.Flush()
}

func hexRecord(w *bufio.Writer, addr uint16, typ byte, data []byte) {
	rec := append([]byte{byte(len(data)), byte(addr >> 8), byte(addr), typ}, data...)
	var sum byte
	for _, c := range rec {
		sum += c
	}
	rec = append(rec, -sum)
	w.WriteString(":" + strings.ToUpper(hex.EncodeToString(rec)) + "\n")
}
