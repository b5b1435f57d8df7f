package ihex

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// maxLine is the longest valid record line: ':' and 2×(1+2+1+255+1) digits,
// with room for a CR.
const maxLine = 1 + 2*260 + 1

// Read parses an Intel HEX file. Empty lines and CR LF line ends are
// accepted; every record's length and checksum are checked; data at the
// same address twice is an error (ErrOverlap), as are records after the EOF
// record and a missing EOF record. Errors name the line.
func Read(r io.Reader) (*File, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine+1)
	f := &File{}
	var (
		line    int
		base    uint64 // from the last 02 or 04 record
		eof     bool
		cur     *Segment // the segment being extended by consecutive records
		lineErr = func(err error, format string, a ...any) error {
			if format != "" {
				err = fmt.Errorf("%w: "+format, append([]any{err}, a...)...)
			}
			return fmt.Errorf("line %d: %w", line, err)
		}
	)
	for sc.Scan() {
		line++
		s := bytes.TrimRight(sc.Bytes(), "\r")
		if len(s) == 0 {
			continue
		}
		if eof {
			return nil, lineErr(ErrAfterEOF, "")
		}
		if s[0] != ':' {
			return nil, lineErr(ErrSyntax, "record does not start with ':'")
		}
		if (len(s)-1)%2 != 0 {
			return nil, lineErr(ErrLength, "odd number of hex digits")
		}
		rec := make([]byte, (len(s)-1)/2)
		if _, err := hex.Decode(rec, s[1:]); err != nil {
			return nil, lineErr(ErrSyntax, "%v", err)
		}
		if len(rec) < 5 {
			return nil, lineErr(ErrLength, "record of %d bytes is shorter than 5", len(rec))
		}
		if len(rec) != 5+int(rec[0]) {
			return nil, lineErr(ErrLength, "record holds %d bytes, its length field says %d", max(len(rec)-5, 0), int(rec[0]))
		}
		var sum byte
		for _, b := range rec {
			sum += b
		}
		if sum != 0 {
			return nil, lineErr(ErrChecksum, "checksum 0x%02x, want 0x%02x", rec[len(rec)-1], rec[len(rec)-1]-sum)
		}
		n, off, typ, data := int(rec[0]), uint64(rec[1])<<8|uint64(rec[2]), rec[3], rec[4:len(rec)-1]
		switch typ {
		case TypeData:
			if n == 0 {
				continue
			}
			addr := base + off
			if addr+uint64(n) > 1<<32 {
				return nil, lineErr(ErrRange, "data at 0x%x", addr)
			}
			if cur != nil && cur.End() == addr {
				cur.Data = append(cur.Data, data...)
				continue
			}
			f.Segments = append(f.Segments, Segment{Addr: uint32(addr), Data: append([]byte(nil), data...)})
			cur = &f.Segments[len(f.Segments)-1]
		case TypeEOF:
			if n != 0 {
				return nil, lineErr(ErrLength, "end-of-file record with %d data bytes", n)
			}
			eof = true
		case TypeExtSegmentAddr, TypeExtLinearAddr:
			if n != 2 || off != 0 {
				return nil, lineErr(ErrLength, "extended address record needs 2 bytes at offset 0")
			}
			v := uint64(data[0])<<8 | uint64(data[1])
			if typ == TypeExtSegmentAddr {
				base = v << 4
			} else {
				base = v << 16
			}
		case TypeStartSegment, TypeStartLinear:
			if n != 4 || off != 0 {
				return nil, lineErr(ErrLength, "start address record needs 4 bytes at offset 0")
			}
			st := &Start{Linear: typ == TypeStartLinear}
			if st.Linear {
				st.EIP = uint32(data[0])<<24 | uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3])
			} else {
				st.CS = uint16(data[0])<<8 | uint16(data[1])
				st.IP = uint16(data[2])<<8 | uint16(data[3])
			}
			if f.Start != nil && *f.Start != *st {
				return nil, lineErr(ErrStart, "")
			}
			f.Start = st
		default:
			return nil, lineErr(ErrRecordType, "0x%02x", typ)
		}
		// Appending to f.Segments may move it: keep cur valid.
		if len(f.Segments) > 0 && cur != nil {
			cur = &f.Segments[len(f.Segments)-1]
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: %w: line longer than %d characters", line+1, ErrLength, maxLine)
		}
		return nil, err
	}
	if !eof {
		return nil, ErrNoEOF
	}
	if err := f.normalize(); err != nil {
		return nil, err
	}
	return f, nil
}
