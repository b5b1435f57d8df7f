package flash

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// File layout of a file-backed device, all integers little-endian:
//
//	magic    [8]byte "OTAFLASH"
//	version  uint16  (1)
//	align    uint16
//	erased   uint8
//	reserved [3]byte (zero)
//	nsectors uint32
//	sectors  [nsectors]uint32 sector sizes
//	crc      uint32  CRC-32 (IEEE) of everything above
//	contents [sum of sectors]byte
const (
	fileMagic   = "OTAFLASH"
	fileVersion = 1
	maxSectors  = 1 << 20
)

type backing interface {
	WriteAt(p []byte, off int64) (int, error)
	Close() error
}

func (d *Device) sync(off, n int) error {
	if d.back == nil {
		return nil
	}
	if _, err := d.back.WriteAt(d.data[off:off+n], int64(d.hdrLen+off)); err != nil {
		return fmt.Errorf("flash: write backing file: %w", err)
	}
	return nil
}

func encodeHeader(g Geometry) []byte {
	h := make([]byte, 0, 24+4*len(g.Sectors))
	h = append(h, fileMagic...)
	h = binary.LittleEndian.AppendUint16(h, fileVersion)
	h = binary.LittleEndian.AppendUint16(h, uint16(g.Align))
	h = append(h, g.Erased, 0, 0, 0)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(g.Sectors)))
	for _, s := range g.Sectors {
		h = binary.LittleEndian.AppendUint32(h, s)
	}
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
}

// Create creates (or truncates) the file at path and returns an erased,
// file-backed device with geometry g. Every operation is written through
// to the file. Close the device when done.
func Create(path string, g Geometry) (*Device, error) {
	d, err := New(g)
	if err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	hdr := encodeHeader(d.geo)
	_, err = f.Write(hdr)
	if err == nil {
		_, err = f.Write(d.data)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: write %s: %w", path, err)
	}
	d.back, d.hdrLen = f, len(hdr)
	return d, nil
}

// Open opens a flash file written by Create. A file whose header is
// damaged returns ErrFileFormat; one shorter than its geometry says
// returns ErrTruncated.
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	d, err := decode(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	d.back = f
	return d, nil
}

// Decode reads a flash file image from r into a device that is not backed
// by a file.
func Decode(r io.Reader) (*Device, error) { return decode(r, "input") }

func decode(r io.Reader, name string) (*Device, error) {
	fixed := make([]byte, 20)
	if _, err := io.ReadFull(r, fixed); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s: header needs 20 bytes", ErrTruncated, name)
		}
		return nil, fmt.Errorf("flash: read %s: %w", name, err)
	}
	if string(fixed[:8]) != fileMagic {
		return nil, fmt.Errorf("%w: %s: bad magic %q", ErrFileFormat, name, fixed[:8])
	}
	if v := binary.LittleEndian.Uint16(fixed[8:]); v != fileVersion {
		return nil, fmt.Errorf("%w: %s: unsupported version %d", ErrFileFormat, name, v)
	}
	n := binary.LittleEndian.Uint32(fixed[16:])
	if n == 0 || n > maxSectors {
		return nil, fmt.Errorf("%w: %s: sector count %d", ErrFileFormat, name, n)
	}
	rest := make([]byte, 4*int(n)+4)
	if _, err := io.ReadFull(r, rest); err != nil {
		return nil, fmt.Errorf("%w: %s: header of %d sectors is cut short", ErrTruncated, name, n)
	}
	hdr := append(fixed, rest[:4*n]...)
	if crc32.ChecksumIEEE(hdr) != binary.LittleEndian.Uint32(rest[4*n:]) {
		return nil, fmt.Errorf("%w: %s: header checksum mismatch", ErrFileFormat, name)
	}
	g := Geometry{
		Align:   int(binary.LittleEndian.Uint16(fixed[10:])),
		Erased:  fixed[12],
		Sectors: make([]uint32, n),
	}
	for i := range g.Sectors {
		g.Sectors[i] = binary.LittleEndian.Uint32(rest[4*i:])
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFileFormat, name, err)
	}
	d := &Device{geo: g, hdrLen: len(hdr) + 4}
	d.layout()
	// Read without trusting the header's size for the allocation.
	data, err := io.ReadAll(io.LimitReader(r, int64(g.Size())))
	if err != nil {
		return nil, fmt.Errorf("flash: read %s: %w", name, err)
	}
	if len(data) < g.Size() {
		return nil, fmt.Errorf("%w: %s: contents hold %d of %d bytes", ErrTruncated, name, len(data), g.Size())
	}
	d.data = data
	return d, nil
}

// Encode writes d in the flash file format to w.
func (d *Device) Encode(w io.Writer) error {
	if _, err := w.Write(encodeHeader(d.geo)); err != nil {
		return err
	}
	_, err := w.Write(d.data)
	return err
}

// Close closes the backing file, if any. The device stays usable in memory.
func (d *Device) Close() error {
	if d.back == nil {
		return nil
	}
	err := d.back.Close()
	d.back = nil
	return err
}
