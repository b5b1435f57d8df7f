package demo

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math/rand/v2"
	"strings"
)

// FirmwareBase is the address the demo application is linked at: slot A
// of the layout preset plus the MCUboot header.
const FirmwareBase = 0x08008000 + 0x200

// Firmware returns the application binary of version ver of the demo
// firmware. It is shaped like a Cortex-M build — vector table, Thumb code
// with calls and literal pools, read-only strings and tables — and made
// from fixed seeds, so every run makes the same bytes. Each version edits
// a handful of functions and strings of the same base program, as a bug
// fix release does: code moves, call offsets and pointers change, and the
// delta between two versions stays small.
func Firmware(ver string) []byte {
	p := baseProgram()
	h := fnv.New64a()
	h.Write([]byte(ver))
	p.edit(rand.New(rand.NewPCG(h.Sum64(), 7)), ver)
	return p.link()
}

// op is one Thumb instruction of a function before linking: a plain
// 16-bit instruction, a BL to another function, or an LDR from the
// function's literal pool holding the address of a string.
type op struct {
	kind   byte // 'i' plain, 'b' call, 'l' literal load
	code   uint16
	target int // callee, or string index
}

type function struct{ body []op }

// program is the firmware before linking.
type program struct {
	funcs   []function
	strs    []string
	version string
}

const (
	numFuncs   = 560
	numStrings = 700
)

var (
	subsystems = []string{"sensor", "radio", "flash", "power", "ble", "uart", "spi", "i2c", "adc", "rtc", "usb", "ota", "shell", "log", "fs", "net"}
	verbs      = []string{"init", "read", "write", "erase", "probe", "reset", "config", "start", "stop", "sync", "poll", "flush"}
	outcomes   = []string{"failed", "timeout", "ok", "busy", "retry", "overflow", "not ready", "crc error"}
)

// baseProgram builds the code every version shares. Compiled code
// repeats itself: functions are strung together from a vocabulary of
// common instruction sequences, and a few callees (logging, memcpy) take
// most calls, so the image compresses as real firmware does.
func baseProgram() *program {
	r := rand.New(rand.NewPCG(2026, 11))
	p := &program{}
	for range numStrings {
		p.strs = append(p.strs, fmt.Sprintf("%s: %s %s (%s=%%d)\n", pick(r, subsystems), pick(r, verbs), pick(r, outcomes), pick(r, []string{"err", "len", "addr", "reg", "id"})))
	}
	idioms := make([][]op, 1500)
	for i := range idioms {
		for range 2 + r.IntN(7) {
			idioms[i] = append(idioms[i], randomOp(r))
		}
	}
	popular := rand.NewZipf(r, 1.05, 8, uint64(len(idioms)-1))
	callees := rand.NewZipf(r, 1.1, 2, numFuncs-1)
	for range numFuncs {
		f := function{body: []op{{kind: 'i', code: 0xB5F0}}} // push {r4-r7, lr}
		if r.IntN(3) == 0 {
			f.body = append(f.body, op{kind: 'i', code: 0xB080 | uint16(1+r.IntN(8))}) // sub sp, #n*4
		}
		for range 4 + r.IntN(16) {
			for _, o := range idioms[popular.Uint64()] {
				if r.IntN(4) == 0 { // register allocation and constants vary
					o = randomOp(r)
				}
				f.body = append(f.body, o)
			}
			switch r.IntN(4) {
			case 0:
				f.body = append(f.body, op{kind: 'b', target: int(callees.Uint64())})
			case 1:
				f.body = append(f.body, op{kind: 'l', target: r.IntN(numStrings)}, op{kind: 'b', target: 0})
			}
		}
		f.body = append(f.body, op{kind: 'i', code: 0xBDF0}) // pop {r4-r7, pc}
		p.funcs = append(p.funcs, f)
	}
	return p
}

func pick(r *rand.Rand, list []string) string { return list[r.IntN(len(list))] }

// randomOp draws a Thumb instruction with the frequencies of compiled C:
// loads and stores, moves and arithmetic, compares and short branches.
func randomOp(r *rand.Rand) op {
	lo := func() uint16 { return uint16(r.IntN(8)) }
	switch x := 14 + r.IntN(86); {
	case x < 26:
		return op{kind: 'i', code: 0x6800 | uint16(r.IntN(8))<<6 | lo()<<3 | lo()} // ldr rt, [rn, #imm]
	case x < 34:
		return op{kind: 'i', code: 0x6000 | uint16(r.IntN(8))<<6 | lo()<<3 | lo()} // str rt, [rn, #imm]
	case x < 46:
		return op{kind: 'i', code: 0x2000 | lo()<<8 | uint16(r.IntN(16))} // movs rd, #imm
	case x < 54:
		return op{kind: 'i', code: 0x1C00 | uint16(r.IntN(4))<<6 | lo()<<3 | lo()} // adds rd, rn, #imm
	case x < 60:
		return op{kind: 'i', code: 0x1800 | lo()<<6 | lo()<<3 | lo()} // adds rd, rn, rm
	case x < 68:
		return op{kind: 'i', code: 0x2800 | lo()<<8 | uint16(r.IntN(32))} // cmp rn, #imm
	case x < 76:
		return op{kind: 'i', code: 0xD000 | uint16(r.IntN(14))<<8 | uint16(1+r.IntN(12))} // b<cond> forward
	case x < 82:
		return op{kind: 'i', code: 0x4600 | lo()<<3 | lo()} // mov rd, rm
	case x < 88:
		return op{kind: 'i', code: 0x9800 | lo()<<8 | uint16(r.IntN(8))} // ldr rt, [sp, #imm]
	case x < 93:
		return op{kind: 'i', code: 0x9000 | lo()<<8 | uint16(r.IntN(8))} // str rt, [sp, #imm]
	default:
		return op{kind: 'i', code: 0x0000 | uint16(1+r.IntN(31))<<6 | lo()<<3 | lo()} // lsls rd, rm, #imm
	}
}

// edit applies the changes of one version: a few functions patched in
// place, one grown, a couple of messages reworded, and the version string.
func (p *program) edit(r *rand.Rand, ver string) {
	p.version = ver
	for range 4 {
		f := &p.funcs[r.IntN(numFuncs)]
		for range 3 {
			f.body[1+r.IntN(len(f.body)-2)] = randomOp(r)
		}
	}
	f := &p.funcs[r.IntN(numFuncs)]
	at := 1 + r.IntN(len(f.body)-2)
	extra := make([]op, 6+r.IntN(6))
	for i := range extra {
		extra[i] = randomOp(r)
	}
	f.body = append(f.body[:at], append(extra, f.body[at:]...)...)
	for range 2 {
		i := r.IntN(numStrings)
		p.strs[i] = strings.Replace(p.strs[i], ")", ", "+pick(r, verbs)+")", 1)
	}
}

// link lays the program out — vector table, code, strings, a CRC table,
// the version record — and resolves calls and literals.
func (p *program) link() []byte {
	const vectors = 48
	// Addresses: code after the vector table, each function 4-aligned
	// with its literal pool at its end; then the strings.
	addr := make([]uint32, len(p.funcs))
	pos := uint32(vectors * 4)
	for i, f := range p.funcs {
		addr[i] = FirmwareBase + pos
		pos += uint32(codeSize(f))
		pos = (pos + 3) &^ 3
		pos += 4 * uint32(literals(f))
	}
	strAddr := make([]uint32, len(p.strs))
	for i, s := range p.strs {
		strAddr[i] = FirmwareBase + pos
		pos += uint32(len(s)+1+3) &^ 3
	}
	out := make([]byte, 0, pos+2048)
	le := binary.LittleEndian
	out = le.AppendUint32(out, 0x20010000)
	for i := 1; i < vectors; i++ {
		out = le.AppendUint32(out, addr[(i*37)%len(addr)]|1) // handlers, Thumb bit set
	}
	for i, f := range p.funcs {
		var pool []uint32
		for _, o := range f.body {
			at := FirmwareBase + uint32(len(out))
			switch o.kind {
			case 'b':
				off := int32(addr[o.target]-(at+4)) >> 1
				s := uint16(off>>23) & 1
				j1 := ^(uint16(off>>22) ^ s) & 1
				j2 := ^(uint16(off>>21) ^ s) & 1
				out = le.AppendUint16(out, 0xF000|s<<10|uint16(off>>11)&0x3FF)
				out = le.AppendUint16(out, 0xD000|j1<<13|j2<<11|uint16(off)&0x7FF)
			case 'l':
				poolAt := addr[i] + uint32(codeSize(f)+3)&^3 + 4*uint32(len(pool))
				imm := (poolAt - ((at + 4) &^ 3)) / 4
				out = le.AppendUint16(out, 0x4800|uint16(len(pool)%8)<<8|uint16(imm&0xFF))
				pool = append(pool, strAddr[o.target])
			default:
				out = le.AppendUint16(out, o.code)
			}
		}
		for len(out)%4 != 0 {
			out = le.AppendUint16(out, 0xBF00) // nop
		}
		for _, v := range pool {
			out = le.AppendUint32(out, v)
		}
	}
	for _, s := range p.strs {
		out = append(out, s...)
		out = append(out, 0)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	for _, v := range crc32.MakeTable(crc32.Castagnoli) {
		out = le.AppendUint32(out, v)
	}
	return append(out, fmt.Sprintf("otakit-demo %s\x00", p.version)...)
}

func codeSize(f function) int {
	n := 0
	for _, o := range f.body {
		n += 2
		if o.kind == 'b' {
			n += 2
		}
	}
	return n
}

func literals(f function) int {
	n := 0
	for _, o := range f.body {
		if o.kind == 'l' {
			n++
		}
	}
	return n
}
