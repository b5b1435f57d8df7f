package mcuboot

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Info is a printable description of an image, for ota dumpinfo.
type Info struct {
	ByteOrder string     `json:"byte_order"`
	Header    HeaderInfo `json:"header"`
	Protected []TLVInfo  `json:"protected_tlvs"`
	TLVs      []TLVInfo  `json:"tlvs"`
	// ImageEnd is where the TLV area ends; FileSize exceeds it when the
	// image is padded to its slot.
	ImageEnd int64    `json:"image_end"`
	FileSize int64    `json:"file_size"`
	Trailer  *Trailer `json:"trailer,omitempty"`
}

// HeaderInfo is the header as Info prints it.
type HeaderInfo struct {
	Magic            string   `json:"magic"`
	LoadAddr         uint32   `json:"load_addr"`
	HeaderSize       uint16   `json:"hdr_size"`
	ProtectedTLVSize uint16   `json:"protected_tlv_size"`
	ImageSize        uint32   `json:"img_size"`
	Flags            uint32   `json:"flags"`
	FlagNames        []string `json:"flag_names"`
	Version          string   `json:"version"`
}

// TLVInfo is one TLV as Info prints it, with a decoded value where the
// type has a structure.
type TLVInfo struct {
	Type    string `json:"type"`
	TypeID  uint16 `json:"type_id"`
	Len     int    `json:"len"`
	Offset  int64  `json:"offset"`
	Value   string `json:"value"`
	Decoded any    `json:"decoded,omitempty"`
}

// Describe summarises img for printing.
func Describe(img *Image) *Info {
	order := "little"
	if img.ByteOrder == binary.BigEndian {
		order = "big"
	}
	h := img.Header
	in := &Info{
		ByteOrder: order,
		Header: HeaderInfo{
			Magic: fmt.Sprintf("0x%08x", ImageMagic), LoadAddr: h.LoadAddr, HeaderSize: h.HeaderSize,
			ProtectedTLVSize: h.ProtectedTLVSize, ImageSize: h.ImageSize, Flags: uint32(h.Flags),
			FlagNames: h.Flags.Names(), Version: h.Version.String(),
		},
		Protected: []TLVInfo{},
		TLVs:      []TLVInfo{},
		ImageEnd:  img.End(),
		FileSize:  img.Size,
		Trailer:   img.Trailer,
	}
	if in.Header.FlagNames == nil {
		in.Header.FlagNames = []string{}
	}
	for _, t := range img.Protected {
		in.Protected = append(in.Protected, describeTLV(t, img.ByteOrder))
	}
	for _, t := range img.TLVs {
		in.TLVs = append(in.TLVs, describeTLV(t, img.ByteOrder))
	}
	return in
}

func describeTLV(t TLV, o binary.ByteOrder) TLVInfo {
	ti := TLVInfo{Type: t.Type.String(), TypeID: uint16(t.Type), Len: len(t.Value), Offset: t.Offset, Value: hex.EncodeToString(t.Value)}
	switch t.Type {
	case TLVSecCnt:
		if len(t.Value) == 4 {
			ti.Decoded = o.Uint32(t.Value)
		}
	case TLVDependency:
		if d, err := parseDependency(t.Value, o); err == nil {
			ti.Decoded = map[string]any{"image_id": d.ImageID, "min_version": d.Version.String()}
		}
	case TLVUUIDVID, TLVUUIDCID:
		if len(t.Value) == 16 {
			v := hex.EncodeToString(t.Value)
			ti.Decoded = v[:8] + "-" + v[8:12] + "-" + v[12:16] + "-" + v[16:20] + "-" + v[20:]
		}
	}
	return ti
}

// WriteText prints the description in a readable layout.
func (in *Info) WriteText(w io.Writer) error {
	var b strings.Builder
	h := in.Header
	fmt.Fprintf(&b, "header (%s-endian):\n", in.ByteOrder)
	fmt.Fprintf(&b, "  magic:              %s\n", h.Magic)
	fmt.Fprintf(&b, "  load_addr:          0x%08x\n", h.LoadAddr)
	fmt.Fprintf(&b, "  hdr_size:           0x%x\n", h.HeaderSize)
	fmt.Fprintf(&b, "  protected_tlv_size: 0x%x\n", h.ProtectedTLVSize)
	fmt.Fprintf(&b, "  img_size:           0x%x\n", h.ImageSize)
	fmt.Fprintf(&b, "  flags:              0x%08x %s\n", h.Flags, strings.Join(h.FlagNames, "|"))
	fmt.Fprintf(&b, "  version:            %s\n", h.Version)
	for _, area := range []struct {
		name string
		tlvs []TLVInfo
	}{{"protected TLVs", in.Protected}, {"TLVs", in.TLVs}} {
		if len(area.tlvs) == 0 {
			fmt.Fprintf(&b, "%s: none\n", area.name)
			continue
		}
		fmt.Fprintf(&b, "%s:\n", area.name)
		for _, t := range area.tlvs {
			fmt.Fprintf(&b, "  %-12s (0x%02x) len %-4d at 0x%x: ", t.Type, t.TypeID, t.Len, t.Offset)
			if t.Decoded != nil {
				fmt.Fprintf(&b, "%v\n", t.Decoded)
			} else {
				fmt.Fprintf(&b, "%s\n", t.Value)
			}
		}
	}
	fmt.Fprintf(&b, "image end: 0x%x, file size: 0x%x\n", in.ImageEnd, in.FileSize)
	if t := in.Trailer; t != nil {
		fmt.Fprintf(&b, "trailer (flags at 0x%x, max_align %d):\n", t.Offset, t.MaxAlign)
		fmt.Fprintf(&b, "  magic:     %s\n", t.Magic)
		fmt.Fprintf(&b, "  swap_size: 0x%x\n", t.SwapSize)
		fmt.Fprintf(&b, "  swap_info: 0x%02x\n", t.SwapInfo)
		fmt.Fprintf(&b, "  copy_done: 0x%02x\n", t.CopyDone)
		fmt.Fprintf(&b, "  image_ok:  0x%02x\n", t.ImageOK)
	} else {
		fmt.Fprintln(&b, "trailer: none (image not padded to a slot)")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
