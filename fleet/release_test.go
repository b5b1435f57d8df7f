package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func files(kv ...string) map[string]UploadedFile {
	m := map[string]UploadedFile{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = UploadedFile{Size: int64(len(kv[i+1])), SHA256: sum(kv[i+1])}
	}
	return m
}

const img, patch = "image-bytes", "patch"

func manifestFor(extra string) string {
	return fmt.Sprintf(`{"version":"1.2.0","images":[{"slot":1,"type":"application","file":"fw.bin","size":%d,"hash":"sha256:%s"}]%s}`,
		len(img), sum(img), extra)
}

func TestParseRelease(t *testing.T) {
	summary := fmt.Sprintf(`{"updateImage":{"file":"fw.bin","size":%d,"hash":"%s","version":"1.2.0"},
		"deltaPatches":[{"fromVersion":"1.1.0","file":"d/1.1.0.delta","size":%d,"savings":50}],
		"manifest":"manifest.json","deployment":{},"artifacts":[{"name":"fw.bin","size":%d,"sha256":"%s"}],"future":{"x":1}}`,
		len(img), sum(img), len(patch), len(img), sum(img))
	compat := `,"compatibility":{"minBootloaderVersion":"1.0.0","hardwareRevision":["a","b"],"requiredBaseVersion":"1.0.0"},"releaseNotes":"notes"`
	r, err := ParseRelease([]byte(summary), []byte(manifestFor(compat)), files("fw.bin", img, "d/1.1.0.delta", patch, "notes.txt", "n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "1.2.0" || len(r.Artifacts) != 3 || r.ReleaseNotes != "notes" || len(r.Compatibility.HardwareRevision) != 2 {
		t.Fatalf("release = %+v", r)
	}
	if a, _ := r.BestArtifact("1.1.0"); a.Kind != KindDelta || a.Name != "d/1.1.0.delta" {
		t.Fatalf("best for 1.1.0 = %+v", a)
	}
	if a, _ := r.BestArtifact("1.0.5"); a.Kind != KindFull || a.Name != "fw.bin" {
		t.Fatalf("best for 1.0.5 = %+v", a)
	}
	if a, _ := r.Artifact("notes.txt"); a.Kind != KindOther {
		t.Fatalf("extra file = %+v", a)
	}

	// The shapes `ota release` writes: manifest as an object in release.json
	// and delta.files as a map from base version.
	mapManifest := manifestFor(fmt.Sprintf(`,"delta":{"available":true,"baseVersions":["1.1.0"],"files":{"1.1.0":{"file":"d.update","size":%d,"hash":"sha256:%s"}}}`, len(patch), sum(patch)))
	r, err = ParseRelease([]byte(`{"version":"1.2.0","manifest":{"file":"manifest.json","sha256":"x"}}`), []byte(mapManifest), files("fw.bin", img, "d.update", patch))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := r.BestArtifact("1.1.0"); a.Name != "d.update" || a.Kind != KindDelta {
		t.Fatalf("map-form delta: %+v", a)
	}
	if _, err := ParseRelease(nil, []byte(strings.Replace(mapManifest, `"size":5`, `"size":6`, 1)), files("fw.bin", img, "d.update", patch)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("map-form delta with wrong size: %v", err)
	}

	bad := []struct {
		name              string
		summary, manifest string
		files             map[string]UploadedFile
		want              string
	}{
		{"no manifest", "", "", files("fw.bin", img), "no manifest.json"},
		{"malformed manifest", "", `{"version":`, files("fw.bin", img), "manifest.json"},
		{"no version", "", `{"images":[]}`, nil, "no version"},
		{"bad version", "", `{"version":"1.0/../x"}`, nil, "version"},
		{"no image", "", `{"version":"1.0.0"}`, nil, "no full image"},
		{"missing file", "", manifestFor(""), nil, "not uploaded"},
		{"wrong size", "", manifestFor(""), files("fw.bin", img+"x"), "bytes"},
		{"wrong hash", "", manifestFor(""), map[string]UploadedFile{"fw.bin": {Size: int64(len(img)), SHA256: sum("other")}}, "sha256"},
		{"bad hash", "", strings.Replace(manifestFor(""), "sha256:", "sha256:zz", 1), files("fw.bin", img), "hex SHA-256"},
		{"dotdot upload", "", manifestFor(""), files("fw.bin", img, "../x", "x"), "clean relative"},
		{"absolute image", "", `{"version":"1.0.0","images":[{"file":"/etc/passwd"}]}`, files("fw.bin", img), "absolute"},
		{"delta without base", `{"deltaPatches":[{"file":"fw.bin"}]}`, manifestFor(""), files("fw.bin", img), "fromVersion"},
		{"version mismatch", `{"updateImage":{"file":"fw.bin","version":"9.9.9"}}`, manifestFor(""), files("fw.bin", img), "differs"},
		{"artifact size", `{"artifacts":[{"name":"fw.bin","size":1}]}`, manifestFor(""), files("fw.bin", img), "declared 1"},
		{"hw revision type", "", manifestFor(`,"compatibility":{"hardwareRevision":5}`), files("fw.bin", img), "hardwareRevision"},
	}
	for _, c := range bad {
		_, err := ParseRelease([]byte(c.summary), []byte(c.manifest), c.files)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalid mentioning %q", c.name, err, c.want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"fw.bin", "patches/1.0-to-1.1.delta", "a.b-c_d"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "..", "../x", "a/../b", "/abs", "a//b", "./a", "a/", `a\b`, "a\x00b", strings.Repeat("x", 300)} {
		if err := ValidName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestChoose(t *testing.T) {
	r := &Release{ID: "1.2.0", Version: "1.2.0", Compatibility: Compatibility{MinBootloaderVersion: "1.5.0", HardwareRevision: []string{"a"}, RequiredBaseVersion: "1.0.0"},
		Artifacts: []Artifact{{Name: "full", Kind: KindFull}, {Name: "d09", Kind: KindDelta, FromVersion: "0.9.0"}, {Name: "d11", Kind: KindDelta, FromVersion: "1.1.0"}}}
	cases := []struct {
		hw, bl, cur string
		want        string // artifact name, or "" when incompatible
	}{
		{"a", "1.5.0", "1.1.0", "d11"},
		{"a", "1.5.0", "1.1.0+7", "d11"},
		{"a", "1.10.0", "1.0.5", "full"},
		{"b", "1.5.0", "1.1.0", ""},
		{"a", "1.4.9", "1.1.0", ""},
		{"a", "", "1.1.0", ""},
		{"a", "1.5.0", "0.8.0", ""},    // below requiredBaseVersion, no delta
		{"a", "1.5.0", "0.9.0", "d09"}, // below requiredBaseVersion, but a delta exists
		{"a", "1.5.0", "1.2.0", ""},    // already there
		{"a", "1.5.0", "1.3.0", ""},    // never downgrade
	}
	for _, c := range cases {
		a, err := r.Choose(c.hw, c.bl, c.cur)
		if c.want == "" {
			if !errors.Is(err, ErrIncompatible) {
				t.Errorf("%+v: %v %+v, want ErrIncompatible", c, err, a)
			}
			continue
		}
		if err != nil || a.Name != c.want {
			t.Errorf("%+v: %+v %v, want %s", c, a, err, c.want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.2.0", "1.2.0", 0}, {"1.2", "1.2.0", 0}, {"1.10.0", "1.9.0", 1}, {"1.2.0+5", "1.2.0+7", 0},
		{"2.0.0-rc1", "2.0.0", -1}, {"2.0.0-rc2", "2.0.0-rc1", 1}, {"0.9", "1", -1}, {"1.0.x", "1.0.y", -1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

// FuzzParseRelease feeds hostile release documents: no panics, and any
// accepted release only names uploaded, safe files.
func FuzzParseRelease(f *testing.F) {
	f.Add([]byte(`{"updateImage":{"file":"fw.bin"}}`), []byte(manifestFor("")), "fw.bin")
	f.Add([]byte(`{"deltaPatches":[{"fromVersion":"1","file":"d"}]}`), []byte(manifestFor(`,"delta":{"files":["d"],"baseVersions":["1"]}`)), "d")
	f.Add([]byte(`null`), []byte(`{"version":"1","images":[{"file":"../../x"}]}`), "../../x")
	f.Add([]byte(``), []byte(`{"version":"1","compatibility":{"hardwareRevision":"a"},"images":[{"file":"a","size":-1}]}`), "a")
	f.Fuzz(func(t *testing.T, summary, manifest []byte, extra string) {
		fs := files("fw.bin", img)
		fs[extra] = UploadedFile{Size: 1, SHA256: sum("x")}
		r, err := ParseRelease(summary, manifest, fs)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if _, ok := r.FullImage(); !ok {
			t.Fatal("accepted without a full image")
		}
		for _, a := range r.Artifacts {
			if ValidName(a.Name) != nil {
				t.Fatalf("accepted unsafe name %q", a.Name)
			}
			if u, ok := fs[a.Name]; !ok || u.SHA256 != a.SHA256 || u.Size != a.Size {
				t.Fatalf("artifact %+v not as uploaded", a)
			}
		}
	})
}
