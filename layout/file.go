package layout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/otakit/otakit/flash"
)

// Num is a size or address in a map file: a JSON/YAML number or a string
// such as "0x08000000", "32K", "1M" or "4096".
type Num uint32

// UnmarshalJSON accepts a number or a string with an optional 0x prefix
// and K/M suffix.
func (n *Num) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, err := ParseNum(s)
	*n = Num(v)
	return err
}

// MarshalJSON writes addresses and sizes as hex strings.
func (n Num) MarshalJSON() ([]byte, error) { return json.Marshal(fmt.Sprintf("%#x", uint32(n))) }

// ParseNum parses "0x8000", "32768", "32K", "32KiB", "1M".
func ParseNum(s string) (uint32, error) {
	t := strings.TrimSpace(s)
	mul := uint64(1)
	u := strings.ToUpper(t)
	for _, suf := range []struct {
		s string
		m uint64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}} {
		if strings.HasSuffix(u, suf.s) && !strings.HasPrefix(u, "0X") {
			t, mul = strings.TrimSpace(t[:len(t)-len(suf.s)]), suf.m
			break
		}
	}
	v, err := strconv.ParseUint(t, 0, 64)
	if err != nil || v*mul > 1<<32-1 || (mul > 1 && v > 1<<32) {
		return 0, fmt.Errorf("%w: bad number %q", ErrSyntax, s)
	}
	return uint32(v * mul), nil
}

// fileMap is the JSON/YAML shape of a Map.
type fileMap struct {
	Flash struct {
		Base    Num `json:"base"`
		Sectors []struct {
			Count int `json:"count"`
			Size  Num `json:"size"`
		} `json:"sectors"`
		WriteAlign int    `json:"write_align"`
		Erased     string `json:"erased"`
	} `json:"flash"`
	Partitions []struct {
		Name   string `json:"name"`
		Offset Num    `json:"offset"`
		Size   Num    `json:"size"`
	} `json:"partitions"`
}

const maxFileSectors = 1 << 16

// ParseJSON reads a map in the JSON form written by Map.JSON:
//
//	{"flash": {"base": "0x08000000", "sectors": [{"count": 148, "size": "4K"}],
//	           "write_align": 8, "erased": "0xff"},
//	 "partitions": [{"name": "slot-a", "offset": "0x08008000", "size": "240K"}, …]}
func ParseJSON(data []byte) (*Map, error) {
	var f fileMap
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	return f.toMap()
}

// ParseYAML reads the same shape as ParseJSON from YAML.
func ParseYAML(data []byte) (*Map, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	return ParseJSON(j)
}

// jsonable turns YAML's map[any]any into map[string]any.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
	}
	return v
}

// Parse reads a map as JSON if it starts with '{', else as YAML.
func Parse(data []byte) (*Map, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return ParseJSON(data)
	}
	return ParseYAML(data)
}

func (f *fileMap) toMap() (*Map, error) {
	m := &Map{Base: uint32(f.Flash.Base)}
	m.Flash.Align = f.Flash.WriteAlign
	switch strings.ToLower(f.Flash.Erased) {
	case "", "0xff", "255":
		m.Flash.Erased = 0xFF
	case "0x00", "0", "0x0":
		m.Flash.Erased = 0
	default:
		return nil, fmt.Errorf("%w: erased value %q (want 0xff or 0x00)", ErrSyntax, f.Flash.Erased)
	}
	total := 0
	for _, s := range f.Flash.Sectors {
		if s.Count <= 0 || total+s.Count > maxFileSectors {
			return nil, fmt.Errorf("%w: sector count %d", ErrSyntax, s.Count)
		}
		total += s.Count
		m.Flash.Sectors = append(m.Flash.Sectors, flash.Uniform(s.Count, uint32(s.Size))...)
	}
	if err := m.Flash.Validate(); err != nil {
		return nil, err
	}
	for _, p := range f.Partitions {
		if p.Name == "" {
			return nil, fmt.Errorf("%w: partition without a name", ErrSyntax)
		}
		m.Partitions = append(m.Partitions, Partition{p.Name, uint32(p.Offset), uint32(p.Size)})
	}
	return m, nil
}

// JSON returns m in the form ParseJSON reads, with runs of equal sectors
// folded.
func (m *Map) JSON() ([]byte, error) {
	type sec struct {
		Count int `json:"count"`
		Size  Num `json:"size"`
	}
	type part struct {
		Name   string `json:"name"`
		Offset Num    `json:"offset"`
		Size   Num    `json:"size"`
	}
	var out struct {
		Flash struct {
			Base       Num    `json:"base"`
			Sectors    []sec  `json:"sectors"`
			WriteAlign int    `json:"write_align"`
			Erased     string `json:"erased"`
		} `json:"flash"`
		Partitions []part `json:"partitions"`
	}
	out.Flash.Base = Num(m.Base)
	out.Flash.WriteAlign = m.Flash.Align
	out.Flash.Erased = fmt.Sprintf("%#02x", m.Flash.Erased)
	if m.Flash.Erased == 0 {
		out.Flash.Erased = "0x00"
	}
	for _, s := range m.Flash.Sectors {
		if n := len(out.Flash.Sectors); n > 0 && out.Flash.Sectors[n-1].Size == Num(s) {
			out.Flash.Sectors[n-1].Count++
		} else {
			out.Flash.Sectors = append(out.Flash.Sectors, sec{1, Num(s)})
		}
	}
	for _, p := range m.Partitions {
		out.Partitions = append(out.Partitions, part{p.Name, Num(p.Offset), Num(p.Size)})
	}
	return json.MarshalIndent(out, "", "  ")
}

// String renders m as a table.
func (m *Map) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flash: base 0x%08x, %d bytes, %d sectors, write align %d, erased %#02x\n",
		m.Base, m.Flash.Size(), len(m.Flash.Sectors), m.Flash.Align, m.Flash.Erased)
	fmt.Fprintf(&b, "%-12s %-10s %-10s %s\n", "partition", "start", "end", "size")
	for _, p := range m.Partitions {
		fmt.Fprintf(&b, "%-12s 0x%08x 0x%08x %dK (%d sectors)\n", p.Name, p.Offset, p.End(), p.Size/1024, len(m.sectorsOf(p)))
	}
	return b.String()
}
