// Package codec puts the compression formats otakit uses behind one
// interface, so that patches and update packages name a codec by a one-byte
// ID or a short name and stream through it.
//
// Built in: none, lz4 (frame format), zlib (RFC 1950), lzma (the classic
// .lzma "alone" format), zstd and heatshrink (a bit-level LZSS whose decoder
// needs only a 2^W-byte window, for microcontrollers). Other packages may
// Register more.
package codec

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
)

// ID identifies a codec in binary headers. IDs are part of the on-disk
// formats and never change meaning.
type ID uint8

// Codec IDs used in patch and package headers.
const (
	None       ID = 0
	LZ4        ID = 1
	Zlib       ID = 2
	LZMA       ID = 3
	Zstd       ID = 4
	Heatshrink ID = 5 // small-RAM LZSS for microcontrollers, see heatshrink.go
)

// Codec compresses and decompresses one stream format.
type Codec interface {
	// ID is the codec's identifier in binary headers.
	ID() ID
	// Name is the codec's flag and JSON name, such as "zstd".
	Name() string
	// NewWriter returns a writer that compresses into w. Close flushes the
	// stream; it does not close w.
	NewWriter(w io.Writer) (io.WriteCloser, error)
	// NewReader returns a reader that decompresses r.
	NewReader(r io.Reader) (io.ReadCloser, error)
}

// ErrUnknown is returned by Lookup and ByID for a codec that is not registered.
var ErrUnknown = errors.New("codec: unknown codec")

var (
	mu     sync.RWMutex
	byName = map[string]Codec{}
	byID   = map[ID]Codec{}
)

// Register makes c available to Lookup and ByID. It panics if the name or ID
// is already taken, since that is a programming error.
func Register(c Codec) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := byName[c.Name()]; dup {
		panic("codec: duplicate name " + c.Name())
	}
	if _, dup := byID[c.ID()]; dup {
		panic(fmt.Sprintf("codec: duplicate id %d", c.ID()))
	}
	byName[c.Name()] = c
	byID[c.ID()] = c
}

// Lookup returns the codec called name.
func Lookup(name string) (Codec, error) {
	mu.RLock()
	defer mu.RUnlock()
	if c, ok := byName[name]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("%w %q (have %v)", ErrUnknown, name, namesLocked())
}

// ByID returns the codec with identifier id.
func ByID(id ID) (Codec, error) {
	mu.RLock()
	defer mu.RUnlock()
	if c, ok := byID[id]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("%w id %d", ErrUnknown, id)
}

// Names lists the registered codec names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
