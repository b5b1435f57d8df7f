package layout

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/otakit/otakit/flash"
)

func TestPresetChecks(t *testing.T) {
	m := Preset()
	for _, mode := range []Mode{SwapScratch, SwapMove, OverwriteOnly} {
		if err := m.Check(CheckOptions{Mode: mode}); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
	}
	want := []Partition{
		{Bootloader, 0x08000000, 32 << 10}, {SlotA, 0x08008000, 240 << 10}, {SlotB, 0x08044000, 240 << 10},
		{Scratch, 0x08080000, 64 << 10}, {Config, 0x08090000, 16 << 10},
	}
	if !reflect.DeepEqual(m.Partitions, want) {
		t.Errorf("preset = %v", m.Partitions)
	}
}

func TestParseFormatsAgree(t *testing.T) {
	y, err := os.ReadFile("testdata/preset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := ParseYAML(y)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Preset().JSON()
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := Parse(j)
	if err != nil {
		t.Fatal(err)
	}
	dts, _ := os.ReadFile("testdata/stm32.dts")
	fromDTS, err := ImportDTS(dts)
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Map{"yaml": fromYAML, "json": fromJSON, "dts": fromDTS} {
		if !reflect.DeepEqual(m, Preset()) {
			t.Errorf("%s differs from the preset:\n%v", name, m)
		}
	}
}

func TestCheckErrors(t *testing.T) {
	mod := func(f func(m *Map)) *Map { m := Preset(); f(m); return m }
	for _, tc := range []struct {
		name string
		m    *Map
		mode Mode
		want error
	}{
		{"overlap", mod(func(m *Map) { m.Partitions[2].Offset -= 0x1000 }), SwapScratch, ErrOverlap},
		{"unaligned", mod(func(m *Map) { m.Partitions[4].Size = 1000 }), SwapScratch, ErrAlignment},
		{"outside", mod(func(m *Map) { m.Partitions[4].Offset = 0x08100000 }), SwapScratch, ErrBounds},
		{"slots differ", mod(func(m *Map) { m.Partitions[2].Size -= 0x1000 }), SwapScratch, ErrSlots},
		{"no scratch", mod(func(m *Map) { m.Partitions = m.Partitions[:3] }), SwapScratch, ErrMissing},
		{"scratch small", mod(func(m *Map) { m.Partitions[3].Size = 0x1000; m.Flash.Align = 32 }), SwapScratch, ErrScratch},
		{"trailer", &Map{Base: 0, Flash: flash.Geometry{Sectors: flash.Uniform(4, 1024), Align: 8, Erased: 0xFF},
			Partitions: []Partition{{SlotA, 0, 2048}, {SlotB, 2048, 2048}}}, OverwriteOnly, ErrTrailer},
		{"too many sectors", &Map{Base: 0, Flash: flash.Geometry{Sectors: flash.Uniform(600, 512), Align: 1, Erased: 0xFF},
			Partitions: []Partition{{SlotA, 0, 150 * 1024}, {SlotB, 150 * 1024, 150 * 1024}}}, OverwriteOnly, ErrTrailer},
		{"move mixed", &Map{Base: 0, Flash: flash.Geometry{Sectors: []uint32{16384, 16384, 32768, 16384, 16384, 32768}, Align: 8, Erased: 0xFF},
			Partitions: []Partition{{SlotA, 0, 65536}, {SlotB, 65536, 65536}}}, SwapMove, ErrSlots},
	} {
		err := tc.m.Check(CheckOptions{Mode: tc.mode})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []string{
		`{"flash": {"base": "zz"}}`,
		`{"flash": {"sectors": [{"count": 2, "size": 4096}], "write_align": 3}}`,
		`{"flash": {"sectors": [{"count": 2, "size": 4096}], "write_align": 8, "erased": "0x55"}}`,
		`{"bogus": 1}`,
		"flash: [unclosed",
	} {
		if _, err := Parse([]byte(tc)); err == nil {
			t.Errorf("%q parsed", tc)
		}
	}
	for _, tc := range []string{
		"/ { a { compatible = \"fixed-partitions\"; p@0 { reg = <0x0>; }; }; };",
		"/ { a { compatible = \"fixed-partitions\"; p@0 { reg = <0x0 0x1000>; }; };",
		"/ { b { }; };",
		"/ { a = <0x1 ; };",
	} {
		if _, err := ImportDTS([]byte(tc)); err == nil {
			t.Errorf("%q imported", tc)
		}
	}
}

func TestParseNum(t *testing.T) {
	for in, want := range map[string]uint32{"0x8000": 0x8000, "32K": 32768, "240KiB": 240 << 10, "1M": 1 << 20, "4096": 4096, " 16 K ": 16384} {
		if got, err := ParseNum(in); err != nil || got != want {
			t.Errorf("ParseNum(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "K", "5000000000", "0x", "-1", "4194304M"} {
		if _, err := ParseNum(in); err == nil {
			t.Errorf("ParseNum(%q) accepted", in)
		}
	}
}

func TestMCUbootConfig(t *testing.T) {
	out, err := MCUbootConfig(SwapMove, SigED25519, "/keys/ed.pem", 0, 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"SB_CONFIG_BOOTLOADER_MCUBOOT=y", "SB_CONFIG_MCUBOOT_MODE_SWAP_USING_MOVE=y",
		"SB_CONFIG_BOOT_SIGNATURE_TYPE_ED25519=y", `SB_CONFIG_BOOT_SIGNATURE_KEY_FILE="/keys/ed.pem"`,
		"CONFIG_BOOTLOADER_MCUBOOT=y", "CONFIG_MCUBOOT_BOOTLOADER_MODE_SWAP_USING_MOVE=y",
		`CONFIG_MCUBOOT_SIGNATURE_KEY_FILE="/keys/ed.pem"`, "CONFIG_BOOT_SWAP_USING_MOVE=y", "CONFIG_BOOT_MAX_IMG_SECTORS=60",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing %s in\n%s", line, out)
		}
	}
	if out, _ := MCUbootConfig(SwapScratch, SigRSA, "k.pem", 3072, 0); !strings.Contains(out, "SB_CONFIG_MCUBOOT_MODE_SWAP_SCRATCH=y") || !strings.Contains(out, "CONFIG_BOOT_SIGNATURE_TYPE_RSA_LEN=3072") {
		t.Error(out)
	}
	if out, _ := MCUbootConfig(OverwriteOnly, SigECDSAP256, "", 0, 0); !strings.Contains(out, "CONFIG_BOOT_UPGRADE_ONLY=y") || !strings.Contains(out, "SB_CONFIG_MCUBOOT_MODE_OVERWRITE_ONLY=y") {
		t.Error(out)
	}
	if _, err := MCUbootConfig("x", SigRSA, "", 0, 0); err == nil {
		t.Error("bad mode accepted")
	}
}

func fuzzCheck(t *testing.T, m *Map) {
	for _, mode := range []Mode{SwapScratch, SwapMove, OverwriteOnly} {
		_ = m.Check(CheckOptions{Mode: mode})
	}
	_ = m.String()
	j, err := m.JSON()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseJSON(j)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, j)
	}
	if !reflect.DeepEqual(m.Partitions, m2.Partitions) && len(m.Partitions) > 0 {
		t.Fatalf("round trip differs")
	}
}

func FuzzParseJSON(f *testing.F) {
	j, _ := Preset().JSON()
	f.Add(j)
	f.Add([]byte(`{"flash": {"sectors": [{"count": 1, "size": "1K"}], "write_align": 1}, "partitions": [{"name": "x", "offset": 0, "size": 1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := ParseJSON(data); err == nil {
			fuzzCheck(t, m)
		}
	})
}

func FuzzParseYAML(f *testing.F) {
	y, _ := os.ReadFile("testdata/preset.yaml")
	f.Add(y)
	f.Add([]byte("flash: {sectors: [{count: 1, size: 1K}], write_align: 1}\npartitions: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := ParseYAML(data); err == nil {
			fuzzCheck(t, m)
		}
	})
}

func FuzzImportDTS(f *testing.F) {
	d, _ := os.ReadFile("testdata/stm32.dts")
	f.Add(d)
	f.Add([]byte(`/ { f@0 { partitions { compatible = "fixed-partitions"; p@0 { label = "image-0"; reg = <0 (2*0x1000)>; }; }; }; };`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := ImportDTS(data); err == nil {
			fuzzCheck(t, m)
		}
	})
}

func TestImportDTSTwoCells(t *testing.T) {
	src := `/ { soc { flash@0 { compatible = "soc-nv-flash"; erase-block-size = <4096>; write-block-size = <4>;
		partitions { compatible = "fixed-partitions"; #address-cells = <2>; #size-cells = <2>;
			boot_partition: partition@0 { label = "mcuboot"; reg = <0x0 0x0 0x0 0x10000>; };
			slot0_partition: partition@10000 { label = "image-0"; reg = <0x0 0x10000 0x0 0x20000>; };
			slot1_partition: partition@30000 { label = "image-1"; reg = <0x0 0x30000 0x0 0x20000>; };
		}; }; }; };`
	m, err := ImportDTS([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := m.Find(SlotB); p.Offset != 0x30000 || p.Size != 0x20000 || m.Flash.Align != 4 {
		t.Fatalf("%v", m)
	}
	if err := m.Check(CheckOptions{Mode: SwapMove}); err != nil {
		t.Fatal(err)
	}
}
