package layout

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/otakit/otakit/flash"
)

// dtsLabels maps Zephyr's conventional partition labels to partition names.
var dtsLabels = map[string]string{
	"mcuboot":       Bootloader,
	"image-0":       SlotA,
	"image-1":       SlotB,
	"image-scratch": Scratch,
	"storage":       Config,
}

// dtNode is a parsed devicetree node.
type dtNode struct {
	name     string // with unit address, e.g. "partition@8000"
	props    map[string]string
	children []*dtNode
}

// ImportDTS builds a map from the first node with compatible =
// "fixed-partitions" in a devicetree source. Partition offsets in reg are
// relative to the enclosing flash node, whose unit address (flash@ADDR) or
// reg gives the base; its erase-block-size and write-block-size give the
// geometry (defaults 4096 and 8), its reg size the flash size (default: up
// to the end of the last partition). Partitions are named by label,
// translating Zephyr's mcuboot, image-0, image-1, image-scratch and storage
// to bootloader, slot-a, slot-b, scratch and config.
func ImportDTS(src []byte) (*Map, error) {
	p := &dtParser{src: string(src)}
	root := &dtNode{name: "/", props: map[string]string{}}
	if err := p.body(root, 0); err != nil {
		return nil, err
	}
	var parts, flashNode *dtNode
	var find func(n, parent, grand *dtNode)
	find = func(n, parent, grand *dtNode) {
		if parts != nil {
			return
		}
		if strings.Contains(n.props["compatible"], `"fixed-partitions"`) {
			parts = n
			flashNode = parent
			return
		}
		for _, c := range n.children {
			find(c, n, parent)
		}
	}
	find(root, nil, nil)
	if parts == nil {
		return nil, fmt.Errorf("%w: no fixed-partitions node", ErrMissing)
	}
	m := &Map{}
	var flashSize uint64
	if flashNode != nil {
		if i := strings.IndexByte(flashNode.name, '@'); i >= 0 {
			v, err := strconv.ParseUint(flashNode.name[i+1:], 16, 32)
			if err == nil {
				m.Base = uint32(v)
			}
		}
		if cells, ok := flashNode.props["reg"]; ok {
			v, err := evalCells(cells)
			if err != nil {
				return nil, fmt.Errorf("%w: %s reg: %v", ErrSyntax, flashNode.name, err)
			}
			if len(v) == 2 {
				m.Base, flashSize = uint32(v[0]), v[1]
			}
		}
	}
	erase, err := cellProp(flashNode, "erase-block-size", 4096)
	if err != nil {
		return nil, err
	}
	align, err := cellProp(flashNode, "write-block-size", 8)
	if err != nil {
		return nil, err
	}
	if erase == 0 || erase > 1<<24 {
		return nil, fmt.Errorf("%w: erase-block-size %d", ErrSyntax, erase)
	}
	ac, err := cellProp(parts, "#address-cells", 1)
	if err != nil {
		return nil, err
	}
	sc, err := cellProp(parts, "#size-cells", 1)
	if err != nil {
		return nil, err
	}
	if ac < 1 || ac > 2 || sc < 1 || sc > 2 {
		return nil, fmt.Errorf("%w: #address-cells %d / #size-cells %d (want 1 or 2)", ErrSyntax, ac, sc)
	}
	end := uint64(0)
	for _, c := range parts.children {
		reg, ok := c.props["reg"]
		if !ok {
			return nil, fmt.Errorf("%w: partition %s has no reg", ErrSyntax, c.name)
		}
		cells, err := evalCells(reg)
		if err != nil || len(cells) != int(ac+sc) {
			return nil, fmt.Errorf("%w: partition %s reg <%s>: want %d offset and %d size cells", ErrSyntax, c.name, reg, ac, sc)
		}
		join := func(c []uint64) uint64 {
			if len(c) == 2 {
				return c[0]<<32 | c[1]&0xFFFFFFFF
			}
			return c[0]
		}
		v := []uint64{join(cells[:ac]), join(cells[ac:])}
		if v[0] > 1<<32 || v[1] > 1<<32 {
			return nil, fmt.Errorf("%w: partition %s beyond 4 GiB", ErrBounds, c.name)
		}
		name := c.name
		if l, ok := c.props["label"]; ok {
			name = strings.Trim(l, `" `)
		}
		if n, ok := dtsLabels[name]; ok {
			name = n
		}
		if v[0]+v[1] > 1<<32-1 || uint64(m.Base)+v[0] > 1<<32-1 {
			return nil, fmt.Errorf("%w: partition %s beyond 4 GiB", ErrBounds, c.name)
		}
		m.Partitions = append(m.Partitions, Partition{name, m.Base + uint32(v[0]), uint32(v[1])})
		end = max(end, v[0]+v[1])
	}
	if flashSize == 0 {
		flashSize = (end + erase - 1) / erase * erase
	}
	if flashSize/erase > maxFileSectors || flashSize%erase != 0 {
		return nil, fmt.Errorf("%w: flash size %d is not a small multiple of erase-block-size %d", ErrSyntax, flashSize, erase)
	}
	m.Flash = flash.Geometry{Sectors: flash.Uniform(int(flashSize/erase), uint32(erase)), Align: int(align), Erased: 0xFF}
	if err := m.Flash.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func cellProp(n *dtNode, name string, def uint64) (uint64, error) {
	if n == nil {
		return def, nil
	}
	s, ok := n.props[name]
	if !ok {
		return def, nil
	}
	v, err := evalCells(s)
	if err != nil || len(v) != 1 {
		return 0, fmt.Errorf("%w: %s = <%s>", ErrSyntax, name, s)
	}
	return v[0], nil
}

type dtParser struct {
	src string
	pos int
}

const maxDepth = 64

func (p *dtParser) errf(format string, a ...any) error {
	line := 1 + strings.Count(p.src[:p.pos], "\n")
	return fmt.Errorf("%w: devicetree line %d: %s", ErrSyntax, line, fmt.Sprintf(format, a...))
}

// skip passes whitespace, comments and preprocessor lines.
func (p *dtParser) skip() {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case strings.HasPrefix(p.src[p.pos:], "//"):
			p.skipLine()
		case strings.HasPrefix(p.src[p.pos:], "/*"):
			if e := strings.Index(p.src[p.pos+2:], "*/"); e >= 0 {
				p.pos += e + 4
			} else {
				p.pos = len(p.src)
			}
		case c == '#' && p.atLineStart() && isDirective(p.src[p.pos:]):
			p.skipLine()
		default:
			return
		}
	}
}

func isDirective(s string) bool {
	for _, d := range []string{"#include", "#define", "#if", "#ifdef", "#ifndef", "#else", "#endif", "#undef", "#elif"} {
		if strings.HasPrefix(s, d) {
			return true
		}
	}
	return false
}

func (p *dtParser) atLineStart() bool {
	i := strings.LastIndexByte(p.src[:p.pos], '\n')
	return strings.TrimSpace(p.src[i+1:p.pos]) == ""
}

func (p *dtParser) skipLine() {
	if e := strings.IndexByte(p.src[p.pos:], '\n'); e >= 0 {
		p.pos += e + 1
	} else {
		p.pos = len(p.src)
	}
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte(",._+-@#/?&:", c) >= 0
}

func (p *dtParser) word() string {
	s := p.pos
	for p.pos < len(p.src) && isWord(p.src[p.pos]) {
		p.pos++
	}
	return p.src[s:p.pos]
}

// body parses statements until '}' (depth > 0) or the end of input.
func (p *dtParser) body(n *dtNode, depth int) error {
	if depth > maxDepth {
		return p.errf("nesting deeper than %d", maxDepth)
	}
	for {
		p.skip()
		if p.pos >= len(p.src) {
			if depth > 0 {
				return p.errf("unexpected end of input in node %s", n.name)
			}
			return nil
		}
		if p.src[p.pos] == '}' {
			if depth == 0 {
				return p.errf("unbalanced '}'")
			}
			p.pos++
			p.skip()
			if p.pos < len(p.src) && p.src[p.pos] == ';' {
				p.pos++
			}
			return nil
		}
		// Labels ("flash0:") and the name.
		var name string
		for {
			w := p.word()
			if w == "" {
				if p.pos >= len(p.src) {
					return p.errf("unexpected end of input")
				}
				return p.errf("unexpected %q", p.src[p.pos])
			}
			p.skip()
			if strings.HasSuffix(w, ":") && len(w) > 1 {
				continue // a label
			}
			name = w
			break
		}
		if p.pos >= len(p.src) {
			return p.errf("unexpected end of input after %q", name)
		}
		switch p.src[p.pos] {
		case ';':
			p.pos++
			if !strings.HasPrefix(name, "/") {
				n.props[name] = ""
			}
		case '=':
			p.pos++
			v, err := p.value()
			if err != nil {
				return err
			}
			n.props[name] = v
		case '{':
			p.pos++
			c := &dtNode{name: name, props: map[string]string{}}
			if err := p.body(c, depth+1); err != nil {
				return err
			}
			// Merge "/ {...}" blocks and &label overrides into the tree
			// as plain children; lookups only need compatible and reg.
			n.children = append(n.children, c)
		default:
			if strings.HasPrefix(name, "/") { // "/delete-node/ &x;" and the like
				p.skipStatement()
				continue
			}
			return p.errf("unexpected %q after %q", p.src[p.pos], name)
		}
	}
}

func (p *dtParser) skipStatement() {
	if e := strings.IndexByte(p.src[p.pos:], ';'); e >= 0 {
		p.pos += e + 1
	} else {
		p.pos = len(p.src)
	}
}

// value returns a property value's text up to ';': strings keep their
// quotes, cell lists lose their angle brackets (several lists are joined).
func (p *dtParser) value() (string, error) {
	var parts []string
	for {
		p.skip()
		if p.pos >= len(p.src) {
			return "", p.errf("unterminated property value")
		}
		switch c := p.src[p.pos]; c {
		case '"':
			e := p.pos + 1
			for e < len(p.src) && p.src[e] != '"' {
				if p.src[e] == '\\' {
					e++
				}
				e++
			}
			if e >= len(p.src) {
				return "", p.errf("unterminated string")
			}
			parts = append(parts, p.src[p.pos:e+1])
			p.pos = e + 1
		case '<', '[':
			close := map[byte]byte{'<': '>', '[': ']'}[c]
			e := strings.IndexByte(p.src[p.pos:], close)
			if e < 0 {
				return "", p.errf("unterminated %c", c)
			}
			parts = append(parts, strings.TrimSpace(p.src[p.pos+1:p.pos+e]))
			p.pos += e + 1
		case '&':
			parts = append(parts, p.word())
		default:
			return "", p.errf("unexpected %q in property value", c)
		}
		p.skip()
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.src) && p.src[p.pos] == ';' {
			p.pos++
			return strings.Join(parts, ", "), nil
		}
		return "", p.errf("expected ';' after property value")
	}
}

// evalCells evaluates a cell list such as "0x8000 DT_SIZE_K(240)" or
// "(0x1000 + 0x2000) 0x400".
func evalCells(s string) ([]uint64, error) {
	e := &cellExpr{s: s}
	var out []uint64
	for {
		e.skip()
		if e.i >= len(e.s) {
			return out, nil
		}
		if len(out) > 16 {
			return nil, fmt.Errorf("too many cells")
		}
		v, err := e.primary(0)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

type cellExpr struct {
	s string
	i int
}

func (e *cellExpr) skip() {
	for e.i < len(e.s) && strings.IndexByte(" \t\r\n,", e.s[e.i]) >= 0 {
		e.i++
	}
}

func (e *cellExpr) primary(depth int) (uint64, error) {
	if depth > 32 {
		return 0, fmt.Errorf("expression too deep")
	}
	e.skip()
	if e.i >= len(e.s) {
		return 0, fmt.Errorf("missing value")
	}
	if e.s[e.i] == '(' {
		e.i++
		v, err := e.sum(depth + 1)
		if err != nil {
			return 0, err
		}
		e.skip()
		if e.i >= len(e.s) || e.s[e.i] != ')' {
			return 0, fmt.Errorf("missing ')'")
		}
		e.i++
		return v, nil
	}
	st := e.i
	for e.i < len(e.s) && (isAlnum(e.s[e.i]) || e.s[e.i] == '_') {
		e.i++
	}
	tok := e.s[st:e.i]
	if tok == "" {
		return 0, fmt.Errorf("unexpected %q", e.s[e.i])
	}
	if tok == "DT_SIZE_K" || tok == "DT_SIZE_M" {
		v, err := e.primary(depth + 1)
		if err != nil {
			return 0, err
		}
		if tok == "DT_SIZE_K" {
			return v << 10, nil
		}
		return v << 20, nil
	}
	v, err := strconv.ParseUint(strings.TrimRight(strings.TrimRight(tok, "UuLl"), "UuLl"), 0, 32)
	if err != nil {
		return 0, fmt.Errorf("bad cell %q", tok)
	}
	return v, nil
}

func (e *cellExpr) sum(depth int) (uint64, error) {
	v, err := e.product(depth)
	for err == nil {
		e.skip()
		if e.i >= len(e.s) || (e.s[e.i] != '+' && e.s[e.i] != '-') {
			break
		}
		op := e.s[e.i]
		e.i++
		var w uint64
		if w, err = e.product(depth); err == nil {
			if op == '+' {
				v += w
			} else {
				v -= w
			}
		}
	}
	return v & 0xFFFFFFFFFFFF, err
}

func (e *cellExpr) product(depth int) (uint64, error) {
	v, err := e.primary(depth + 1)
	for err == nil {
		e.skip()
		if e.i >= len(e.s) || e.s[e.i] != '*' {
			break
		}
		e.i++
		var w uint64
		if w, err = e.primary(depth + 1); err == nil {
			v = (v * w) & 0xFFFFFFFFFFFF
		}
	}
	return v, err
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
