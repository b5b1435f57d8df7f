// Package nvs is a power-safe, wear-levelled key/value and monotonic
// counter store on a flash partition, in the spirit of Zephyr's NVS.
//
// The partition's sectors form a ring. Each sector starts with a header
// holding a sequence number; records (put, delete, gc-done) are appended
// after it and each carries a CRC-32, so a record torn by a power cut is
// recognised and the sector is closed there. When the active sector is
// full the next one in the ring is opened, and the sector after that, the
// oldest, is garbage collected: its live records are copied forward, a
// gc-done record naming its sequence number is written, then it is erased.
// Mount finishes whatever a power cut interrupted. Every sector is erased
// in turn, which levels wear; values that do not change are not rewritten.
//
// On-flash format (little-endian; every item padded with the erased value
// to the write alignment):
//
//	sector header: "NVS1" | seq uint32 | crc32 uint32 (of the first 8 bytes)
//	record:        0xA5 | kind uint8 | keylen uint8 | 0 | vallen uint32 |
//	               crc32 uint32 (of the first 8 bytes, key and value) |
//	               key | value
//
// kind is 1 for put, 2 for delete, 3 for gc-done (value: the collected
// sector's seq as uint32), 4 for resync (value: the sector offset of a torn
// record as uint32). Mount writes a resync record after the bytes a torn
// write left behind, so the scan can step over them and the sector stays
// usable.
package nvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"

	"github.com/otakit/otakit/flash"
)

// Errors returned by the store, wrapped with context.
var (
	ErrNotFound  = errors.New("nvs: key not found")
	ErrNoSpace   = errors.New("nvs: live data does not fit")
	ErrTooLarge  = errors.New("nvs: record larger than a sector")
	ErrBackwards = errors.New("nvs: monotonic counter cannot go backwards")
	ErrGeometry  = errors.New("nvs: unusable partition")
	ErrKey       = errors.New("nvs: invalid key")
)

const (
	sectorMagic = "NVS1"
	recMagic    = 0xA5
	hdrLen      = 12
	recHdrLen   = 12

	kindPut    = 1
	kindDelete = 2
	kindGCDone = 3
	kindResync = 4

	// MaxKey is the longest key in bytes.
	MaxKey = 255
)

type entry struct {
	sector int
	value  []byte
}

// Store is a mounted key/value store. It is not safe for concurrent use.
type Store struct {
	dev     *flash.Device
	off     int
	starts  []int // sector start offsets (absolute), plus the end
	align   int
	seq     []uint32 // per sector; 0 = free
	active  int
	pos     int // next write offset within the active sector
	index   map[string]entry
	gcFloor uint32
}

// Mount opens the store on the device range [off, off+size), which must
// cover whole sectors (at least three of them). A blank range is
// formatted; an operation interrupted by a power cut is completed or
// rolled back.
func Mount(dev *flash.Device, off, size int) (*Store, error) {
	s := &Store{dev: dev, off: off, align: dev.Align(), index: map[string]entry{}}
	for p := off; p < off+size; {
		_, st, n, err := dev.SectorAt(p)
		if err != nil || st != p {
			return nil, fmt.Errorf("%w: [%#x, %#x) does not cover whole sectors", ErrGeometry, off, off+size)
		}
		s.starts = append(s.starts, p)
		p += n
		if p > off+size {
			return nil, fmt.Errorf("%w: [%#x, %#x) does not end on a sector boundary", ErrGeometry, off, off+size)
		}
	}
	s.starts = append(s.starts, off+size)
	if len(s.starts)-1 < 3 {
		return nil, fmt.Errorf("%w: need at least 3 sectors, have %d", ErrGeometry, len(s.starts)-1)
	}
	s.seq = make([]uint32, len(s.starts)-1)
	if err := s.mount(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) n() int                 { return len(s.starts) - 1 }
func (s *Store) sectorSize(i int) int   { return s.starts[i+1] - s.starts[i] }
func (s *Store) pad(n int) int          { return (n + s.align - 1) / s.align * s.align }
func (s *Store) dataStart() int         { return s.pad(hdrLen) }
func (s *Store) next(i int) int         { return (i + 1) % s.n() }
func (s *Store) recSize(k, v int) int   { return s.pad(recHdrLen + k + v) }
func (s *Store) erase(i int) error      { return s.dev.Erase(s.starts[i], s.sectorSize(i)) }
func (s *Store) read(off, n int) []byte { b := make([]byte, n); s.dev.Read(off, b); return b }

type sectorState int

const (
	stFree sectorState = iota
	stValid
	stDirty
)

func (s *Store) classify(i int) (sectorState, uint32, error) {
	h := make([]byte, hdrLen)
	if err := s.dev.Read(s.starts[i], h); err != nil {
		return 0, 0, err
	}
	if string(h[:4]) == sectorMagic && crc32.ChecksumIEEE(h[:8]) == binary.LittleEndian.Uint32(h[8:]) {
		if seq := binary.LittleEndian.Uint32(h[4:]); seq != 0 {
			return stValid, seq, nil
		}
	}
	ok, err := s.dev.IsErased(s.starts[i], s.sectorSize(i))
	if err != nil {
		return 0, 0, err
	}
	if ok {
		return stFree, 0, nil
	}
	return stDirty, 0, nil
}

type record struct {
	kind       byte
	key, value []byte
	off, size  int
}

// scan reads sector i's records. It stops at erased space, returning the
// offset after the last good record; at a torn record it looks for the
// resync record naming it and carries on after that, or else returns the
// torn record's offset with torn set.
func (s *Store) scan(i int, fn func(r record)) (end int, torn bool, err error) {
	base, lim := s.starts[i], s.starts[i+1]
	p := base + s.dataStart()
	for p+recHdrLen <= lim {
		if erased, err := s.dev.IsErased(p, s.pad(recHdrLen)); err != nil {
			return 0, false, err
		} else if erased {
			return p, false, nil
		}
		r, ok := s.parse(p, lim)
		if !ok {
			q := s.findResync(p, base, lim)
			if q < 0 {
				return p, true, nil
			}
			p = q
			continue
		}
		if r.kind != kindResync {
			fn(r)
		}
		p += r.size
	}
	return p, false, nil
}

// parse decodes the record at p, reporting false if it is torn.
func (s *Store) parse(p, lim int) (record, bool) {
	h := s.read(p, recHdrLen)
	kl, vl := int(h[2]), binary.LittleEndian.Uint32(h[4:])
	if h[0] != recMagic || h[3] != 0 || vl > uint32(lim-p) || p+s.recSize(kl, int(vl)) > lim {
		return record{}, false
	}
	body := s.read(p+recHdrLen, kl+int(vl))
	c := crc32.NewIEEE()
	c.Write(h[:8])
	c.Write(body)
	if c.Sum32() != binary.LittleEndian.Uint32(h[8:]) {
		return record{}, false
	}
	return record{h[1], body[:kl], body[kl:], p, s.recSize(kl, int(vl))}, true
}

// findResync returns the offset after the resync record that names the
// torn record at p, or -1.
func (s *Store) findResync(p, base, lim int) int {
	for q := p + s.align; q+recHdrLen <= lim; q += s.align {
		r, ok := s.parse(q, lim)
		if ok && r.kind == kindResync && len(r.value) == 4 && int(binary.LittleEndian.Uint32(r.value)) == p-base {
			return q + r.size
		}
	}
	return -1
}

// tornEnd returns the aligned offset after the last non-erased byte of
// sector i: where writing may resume after a torn record.
func (s *Store) tornEnd(i int) int {
	b := s.read(s.starts[i], s.sectorSize(i))
	e := len(b)
	for e > 0 && b[e-1] == s.dev.Erased() {
		e--
	}
	return s.pad(e)
}

func (s *Store) mount() error {
	var valid []int
	for i := range s.seq {
		st, seq, err := s.classify(i)
		if err != nil {
			return err
		}
		s.seq[i] = seq
		if st == stValid {
			valid = append(valid, i)
		}
	}
	sort.Slice(valid, func(a, b int) bool { return s.seq[valid[a]] < s.seq[valid[b]] })
	// The gc-done records say which sectors are already collected.
	for _, i := range valid {
		if _, _, err := s.scan(i, func(r record) {
			if r.kind == kindGCDone && len(r.value) == 4 {
				s.gcFloor = max(s.gcFloor, binary.LittleEndian.Uint32(r.value))
			}
		}); err != nil {
			return err
		}
	}
	var live []int
	for _, i := range valid {
		if s.seq[i] > s.gcFloor {
			live = append(live, i)
		} else {
			s.seq[i] = 0 // garbage: erased below
		}
	}
	// Erase everything that is neither live nor free: torn headers, torn
	// erases, collected sectors.
	for i := range s.seq {
		if s.seq[i] != 0 {
			continue
		}
		if ok, err := s.dev.IsErased(s.starts[i], s.sectorSize(i)); err != nil {
			return err
		} else if !ok {
			if err := s.erase(i); err != nil {
				return err
			}
		}
	}
	if len(live) == 0 {
		return s.openSector(0, 1)
	}
	for _, i := range live {
		if err := s.replay(i); err != nil {
			return err
		}
	}
	s.active = live[len(live)-1]
	end, torn, err := s.scan(s.active, func(record) {})
	if err != nil {
		return err
	}
	s.pos = end - s.starts[s.active]
	if !torn {
		// Anything but erased space after the last record is debris.
		rest, err := s.dev.IsErased(end, s.starts[s.active+1]-end)
		if err != nil {
			return err
		}
		torn = !rest
	}
	if torn {
		// Step over what the torn write left; if even a resync record
		// does not fit, the sector is full.
		s.pos = s.tornEnd(s.active)
		var v [4]byte
		binary.LittleEndian.PutUint32(v[:], uint32(end-s.starts[s.active]))
		if s.pos+s.recSize(0, 4) <= s.sectorSize(s.active) {
			if err := s.append(kindResync, nil, v[:]); err != nil {
				return err
			}
		} else {
			s.pos = s.sectorSize(s.active)
		}
	}
	// A collection that was cut short: the sector after the active one
	// is still live.
	if nx := s.next(s.active); s.seq[nx] != 0 && nx != s.active {
		if err := s.collect(nx); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) replay(i int) error {
	_, _, err := s.scan(i, func(r record) {
		switch r.kind {
		case kindPut:
			s.index[string(r.key)] = entry{i, append([]byte(nil), r.value...)}
		case kindDelete:
			delete(s.index, string(r.key))
		}
	})
	return err
}

func (s *Store) openSector(i int, seq uint32) error {
	h := make([]byte, s.dataStart())
	for j := range h {
		h[j] = s.dev.Erased()
	}
	copy(h, sectorMagic)
	binary.LittleEndian.PutUint32(h[4:], seq)
	binary.LittleEndian.PutUint32(h[8:], crc32.ChecksumIEEE(h[:8]))
	if err := s.dev.Write(s.starts[i], h); err != nil {
		return err
	}
	s.seq[i], s.active, s.pos = seq, i, s.dataStart()
	return nil
}

// append writes one record into the active sector; the caller made room.
func (s *Store) append(kind byte, key, value []byte) error {
	size := s.recSize(len(key), len(value))
	b := make([]byte, size)
	for j := range b {
		b[j] = s.dev.Erased()
	}
	b[0], b[1], b[2], b[3] = recMagic, kind, byte(len(key)), 0
	binary.LittleEndian.PutUint32(b[4:], uint32(len(value)))
	copy(b[recHdrLen:], key)
	copy(b[recHdrLen+len(key):], value)
	c := crc32.NewIEEE()
	c.Write(b[:8])
	c.Write(b[recHdrLen : recHdrLen+len(key)+len(value)])
	binary.LittleEndian.PutUint32(b[8:], c.Sum32())
	if err := s.dev.Write(s.starts[s.active]+s.pos, b); err != nil {
		s.pos = s.sectorSize(s.active) // maybe torn: never write here again
		return err
	}
	s.pos += size
	return nil
}

// collect copies sector victim's live records into the active sector,
// records that it did, and erases it.
func (s *Store) collect(victim int) error {
	keys := make([]string, 0)
	for k, e := range s.index {
		if e.sector == victim {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := s.index[k]
		if s.pos+s.recSize(len(k), len(e.value)) > s.sectorSize(s.active)-s.recSize(0, 4) {
			return fmt.Errorf("%w: collecting sector %d", ErrNoSpace, victim)
		}
		if err := s.append(kindPut, []byte(k), e.value); err != nil {
			return err
		}
		s.index[k] = entry{s.active, e.value}
	}
	var v [4]byte
	binary.LittleEndian.PutUint32(v[:], s.seq[victim])
	if err := s.append(kindGCDone, nil, v[:]); err != nil {
		return err
	}
	s.gcFloor = max(s.gcFloor, s.seq[victim])
	s.seq[victim] = 0
	return s.erase(victim)
}

// makeRoom ensures the active sector can take a record of size bytes
// (plus, always, a gc-done record).
func (s *Store) makeRoom(size int) error {
	reserve := s.recSize(0, 4)
	for tries := 0; s.pos+size > s.sectorSize(s.active)-reserve; tries++ {
		if tries >= s.n() {
			return fmt.Errorf("%w: %d-byte record", ErrNoSpace, size)
		}
		nx := s.next(s.active)
		if err := s.openSector(nx, s.seq[s.active]+1); err != nil {
			return err
		}
		if after := s.next(nx); s.seq[after] != 0 {
			if err := s.collect(after); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) put(kind byte, key string, value []byte) error {
	if len(key) == 0 || len(key) > MaxKey {
		return fmt.Errorf("%w: %q", ErrKey, key)
	}
	size := s.recSize(len(key), len(value))
	if size > s.sectorSize(s.active)-s.dataStart()-2*s.recSize(0, 4) {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	// Live data must fit in half the smallest sector, leaving room for
	// a collection that power cuts interrupt (torn records and resyncs).
	live := size
	for k, e := range s.index {
		if k != key {
			live += s.recSize(len(k), len(e.value))
		}
	}
	if live > s.capacity() {
		return fmt.Errorf("%w: %d bytes live, capacity %d", ErrNoSpace, live, s.capacity())
	}
	if err := s.makeRoom(size); err != nil {
		return err
	}
	return s.append(kind, []byte(key), value)
}

// capacity is the most live data (in record bytes) the store accepts.
func (s *Store) capacity() int {
	m := s.sectorSize(0)
	for i := range s.seq {
		m = min(m, s.sectorSize(i))
	}
	return (m - s.dataStart() - 2*s.recSize(0, 4)) / 2
}

// Get returns the value stored under key, or ErrNotFound.
func (s *Store) Get(key string) ([]byte, error) {
	e, ok := s.index[key]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return append([]byte(nil), e.value...), nil
}

// Keys returns the stored keys in order.
func (s *Store) Keys() []string {
	out := make([]string, 0, len(s.index))
	for k := range s.index {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Put stores value under key. When Put returns nil the value survives any
// later power cut; when it fails with a power cut, the store holds either
// the old or the new value after the next Mount.
func (s *Store) Put(key string, value []byte) error {
	if e, ok := s.index[key]; ok && string(e.value) == string(value) {
		return nil // unchanged: spare the flash
	}
	if err := s.put(kindPut, key, value); err != nil {
		return err
	}
	s.index[key] = entry{s.active, append([]byte(nil), value...)}
	return nil
}

// Delete removes key; deleting a missing key is not an error.
func (s *Store) Delete(key string) error {
	if _, ok := s.index[key]; !ok {
		return nil
	}
	if err := s.put(kindDelete, key, nil); err != nil {
		return err
	}
	delete(s.index, key)
	return nil
}

// Counter returns the monotonic counter stored under key; 0 if unset.
func (s *Store) Counter(key string) (uint64, error) {
	v, err := s.Get(key)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("nvs: %q is not a counter (%d bytes)", key, len(v))
	}
	return binary.LittleEndian.Uint64(v), nil
}

// SetCounter raises the counter under key to v. Lowering it fails with
// ErrBackwards; setting the current value is a no-op.
func (s *Store) SetCounter(key string, v uint64) error {
	cur, err := s.Counter(key)
	if err != nil {
		return err
	}
	if v < cur {
		return fmt.Errorf("%w: %q is %d, refused %d", ErrBackwards, key, cur, v)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return s.Put(key, b[:])
}

// Increment adds one to the counter under key and returns the new value.
func (s *Store) Increment(key string) (uint64, error) {
	cur, err := s.Counter(key)
	if err != nil {
		return 0, err
	}
	return cur + 1, s.SetCounter(key, cur+1)
}

// SecurityCounter adapts one counter of a store to the boot loader's
// anti-rollback counter (boot.Counter).
type SecurityCounter struct {
	Store *Store
	Key   string
}

// SecurityCounter returns the stored value (0 if unset).
func (c SecurityCounter) SecurityCounter() (uint32, error) {
	v, err := c.Store.Counter(c.Key)
	if v > 1<<32-1 {
		return 0, fmt.Errorf("nvs: security counter %q out of range: %d", c.Key, v)
	}
	return uint32(v), err
}

// SetSecurityCounter raises the stored value; lowering fails with
// ErrBackwards.
func (c SecurityCounter) SetSecurityCounter(v uint32) error {
	return c.Store.SetCounter(c.Key, uint64(v))
}
