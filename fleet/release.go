package fleet

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// File names of a release folder written by `ota release`.
const (
	SummaryFile  = "release.json"
	ManifestFile = "manifest.json"
)

// Limits on the JSON documents of a release, which are held in memory.
const MaxReleaseJSON = 4 << 20

// Artifact kinds.
const (
	KindFull  = "full"  // the full signed image
	KindDelta = "delta" // a patch from FromVersion to the release's version
	KindOther = "other" // anything else in the folder (packages, notes)
)

// Artifact is one file of a release, stored by content in the blob store.
type Artifact struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Kind        string `json:"kind"`
	FromVersion string `json:"fromVersion,omitempty"`
}

// Compatibility restricts which devices may install a release.
type Compatibility struct {
	MinBootloaderVersion string   `json:"minBootloaderVersion,omitempty"`
	HardwareRevision     []string `json:"hardwareRevision,omitempty"`
	RequiredBaseVersion  string   `json:"requiredBaseVersion,omitempty"`
}

// Release is a published release folder. Manifest holds the signed
// manifest byte for byte: the server never re-signs it, devices verify it.
type Release struct {
	ID            string        `json:"id"` // the version
	Version       string        `json:"version"`
	Manifest      rawJSON       `json:"-"`
	Summary       rawJSON       `json:"-"`
	Compatibility Compatibility `json:"compatibility"`
	Artifacts     []Artifact    `json:"artifacts"`
	ReleaseNotes  string        `json:"releaseNotes,omitempty"`
	CreatedAt     time.Time     `json:"createdAt"`
}

// Artifact returns the artifact called name.
func (r *Release) Artifact(name string) (Artifact, bool) {
	for _, a := range r.Artifacts {
		if a.Name == name {
			return a, true
		}
	}
	return Artifact{}, false
}

// FullImage returns the release's full image artifact.
func (r *Release) FullImage() (Artifact, bool) {
	for _, a := range r.Artifacts {
		if a.Kind == KindFull {
			return a, true
		}
	}
	return Artifact{}, false
}

// BestArtifact picks what a device on currentVersion should download: the
// delta whose base is exactly currentVersion (build metadata after "+"
// aside), else the full image.
func (r *Release) BestArtifact(currentVersion string) (Artifact, bool) {
	if a, ok := r.deltaFrom(currentVersion); ok {
		return a, true
	}
	return r.FullImage()
}

func (r *Release) deltaFrom(v string) (Artifact, bool) {
	if v == "" {
		return Artifact{}, false
	}
	core, _, _ := strings.Cut(v, "+")
	for _, a := range r.Artifacts {
		if a.Kind == KindDelta && (a.FromVersion == v || a.FromVersion == core) {
			return a, true
		}
	}
	return Artifact{}, false
}

// Choose returns the artifact a device with these facts should install, or
// an error wrapping ErrIncompatible saying why it may not install r:
// hardware revision not listed, bootloader older than
// minBootloaderVersion, already on this version or newer (no downgrades),
// or older than requiredBaseVersion with no delta from its exact version.
func (r *Release) Choose(hardwareRevision, bootloaderVersion, currentVersion string) (Artifact, error) {
	c := r.Compatibility
	if len(c.HardwareRevision) > 0 && !slices.Contains(c.HardwareRevision, hardwareRevision) {
		return Artifact{}, fmt.Errorf("%w: hardware revision %q not in %v", ErrIncompatible, hardwareRevision, c.HardwareRevision)
	}
	if c.MinBootloaderVersion != "" {
		if bootloaderVersion == "" || CompareVersions(bootloaderVersion, c.MinBootloaderVersion) < 0 {
			return Artifact{}, fmt.Errorf("%w: bootloader %q older than %q", ErrIncompatible, bootloaderVersion, c.MinBootloaderVersion)
		}
	}
	if currentVersion != "" && CompareVersions(currentVersion, r.Version) >= 0 {
		return Artifact{}, fmt.Errorf("%w: device already runs %q, release is %q", ErrIncompatible, currentVersion, r.Version)
	}
	if a, ok := r.deltaFrom(currentVersion); ok {
		return a, nil
	}
	if c.RequiredBaseVersion != "" && (currentVersion == "" || CompareVersions(currentVersion, c.RequiredBaseVersion) < 0) {
		return Artifact{}, fmt.Errorf("%w: current version %q older than required base %q and no delta from it", ErrIncompatible, currentVersion, c.RequiredBaseVersion)
	}
	a, ok := r.FullImage()
	if !ok {
		return Artifact{}, fmt.Errorf("%w: release %s has no full image", ErrInvalid, r.ID)
	}
	return a, nil
}

// ErrIncompatible says a device may not install a release.
var ErrIncompatible = fmt.Errorf("%w: device incompatible with release", ErrInvalid)

// UploadedFile is one file received in a release upload.
type UploadedFile struct {
	Size   int64
	SHA256 string
}

// ValidName reports whether name is a safe relative file name inside a
// release folder: not empty, not absolute, no "..", no backslashes or NULs,
// and already clean.
func ValidName(name string) error {
	switch {
	case name == "", len(name) > 255:
		return fmt.Errorf("%w: file name %q: empty or too long", ErrInvalid, name)
	case strings.ContainsAny(name, "\\\x00"), strings.HasPrefix(name, "/"):
		return fmt.Errorf("%w: file name %q: absolute or has a backslash or NUL", ErrInvalid, name)
	case path.Clean(name) != name, name == ".", name == "..", strings.HasPrefix(name, "../"):
		return fmt.Errorf("%w: file name %q: not a clean relative path", ErrInvalid, name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." || el == "." || el == "" {
			return fmt.Errorf("%w: file name %q: has a %q element", ErrInvalid, name, el)
		}
	}
	return nil
}

// summaryDoc is the part of release.json the server reads.
type summaryDoc struct {
	UpdateImage *struct {
		File    string `json:"file"`
		Size    *int64 `json:"size"`
		Hash    string `json:"hash"`
		Version string `json:"version"`
	} `json:"updateImage"`
	DeltaPatches []struct {
		FromVersion string `json:"fromVersion"`
		File        string `json:"file"`
		Size        *int64 `json:"size"`
	} `json:"deltaPatches"`
	Version   string          `json:"version"`
	Manifest  json.RawMessage `json:"manifest"` // a file name or {file, sha256, …}
	Artifacts []struct {
		Name   string `json:"name"`
		Size   *int64 `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"artifacts"`
}

// manifestDoc is the part of manifest.json the server reads.
type manifestDoc struct {
	Version string `json:"version"`
	Images  []struct {
		Slot any    `json:"slot"`
		Type string `json:"type"`
		File string `json:"file"`
		Size *int64 `json:"size"`
		Hash string `json:"hash"`
	} `json:"images"`
	Compatibility *struct {
		MinBootloaderVersion string          `json:"minBootloaderVersion"`
		HardwareRevision     json.RawMessage `json:"hardwareRevision"`
		RequiredBaseVersion  string          `json:"requiredBaseVersion"`
	} `json:"compatibility"`
	Delta *struct {
		Available    bool     `json:"available"`
		BaseVersions []string `json:"baseVersions"`
		// Files is either a list of names (parallel to BaseVersions) or
		// a map from base version to {file, size, hash}.
		Files json.RawMessage `json:"files"`
	} `json:"delta"`
	ReleaseNotes any `json:"releaseNotes"`
}

// ParseRelease builds a Release from an uploaded release folder: the raw
// release.json (may be nil) and manifest.json, and the size and SHA-256 of
// every other uploaded file. Unknown JSON fields are ignored; every file
// the documents name must have been uploaded with the declared size and
// hash, and every name must be safe. Errors wrap ErrInvalid.
func ParseRelease(summary, manifest []byte, files map[string]UploadedFile) (*Release, error) {
	if len(manifest) == 0 {
		return nil, fmt.Errorf("%w: release has no %s", ErrInvalid, ManifestFile)
	}
	var m manifestDoc
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, ManifestFile, err)
	}
	var s summaryDoc
	if len(summary) > 0 {
		if err := json.Unmarshal(summary, &s); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, SummaryFile, err)
		}
	}
	for name := range files {
		if err := ValidName(name); err != nil {
			return nil, err
		}
	}
	r := &Release{Version: m.Version, Manifest: manifest, Summary: summary}
	if r.Version == "" && s.UpdateImage != nil {
		r.Version = s.UpdateImage.Version
	}
	if r.Version == "" {
		r.Version = s.Version
	}
	if r.Version == "" {
		return nil, fmt.Errorf("%w: %s has no version", ErrInvalid, ManifestFile)
	}
	if err := validVersionString(r.Version); err != nil {
		return nil, err
	}
	r.ID = r.Version
	if s.UpdateImage != nil && s.UpdateImage.Version != "" && s.UpdateImage.Version != r.Version {
		return nil, fmt.Errorf("%w: %s version %q differs from manifest version %q", ErrInvalid, SummaryFile, s.UpdateImage.Version, r.Version)
	}
	if n, ok := m.ReleaseNotes.(string); ok {
		r.ReleaseNotes = n
	}
	if c := m.Compatibility; c != nil {
		r.Compatibility.MinBootloaderVersion = c.MinBootloaderVersion
		r.Compatibility.RequiredBaseVersion = c.RequiredBaseVersion
		if len(c.HardwareRevision) > 0 && string(c.HardwareRevision) != "null" {
			// Accept a list or a single string.
			var list []string
			if err := json.Unmarshal(c.HardwareRevision, &list); err != nil {
				var one string
				if err2 := json.Unmarshal(c.HardwareRevision, &one); err2 != nil {
					return nil, fmt.Errorf("%w: compatibility.hardwareRevision: want a list of strings", ErrInvalid)
				}
				list = []string{one}
			}
			r.Compatibility.HardwareRevision = list
		}
	}

	arts := map[string]*Artifact{}
	// need checks that name was uploaded and matches the declared facts.
	need := func(where, name string, size *int64, hash string) (*Artifact, error) {
		if err := ValidName(name); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		f, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("%w: %s names %q, which was not uploaded", ErrInvalid, where, name)
		}
		if size != nil && *size != f.Size {
			return nil, fmt.Errorf("%w: %s: %q is %d bytes, declared %d", ErrInvalid, where, name, f.Size, *size)
		}
		if hash != "" {
			want, err := parseSHA256(hash)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %q: %v", ErrInvalid, where, name, err)
			}
			if want != f.SHA256 {
				return nil, fmt.Errorf("%w: %s: %q has sha256 %s, declared %s", ErrInvalid, where, name, f.SHA256, want)
			}
		}
		a := arts[name]
		if a == nil {
			a = &Artifact{Name: name, Size: f.Size, SHA256: f.SHA256, Kind: KindOther}
			arts[name] = a
		}
		return a, nil
	}

	for i, img := range m.Images {
		a, err := need(fmt.Sprintf("%s images[%d]", ManifestFile, i), img.File, img.Size, img.Hash)
		if err != nil {
			return nil, err
		}
		if i == 0 || strings.EqualFold(img.Type, "full") || strings.EqualFold(img.Type, "application") {
			a.Kind = KindFull
		}
	}
	if s.UpdateImage != nil && s.UpdateImage.File != "" {
		a, err := need(SummaryFile+" updateImage", s.UpdateImage.File, s.UpdateImage.Size, s.UpdateImage.Hash)
		if err != nil {
			return nil, err
		}
		a.Kind = KindFull
	}
	for i, p := range s.DeltaPatches {
		a, err := need(fmt.Sprintf("%s deltaPatches[%d]", SummaryFile, i), p.File, p.Size, "")
		if err != nil {
			return nil, err
		}
		if p.FromVersion == "" {
			return nil, fmt.Errorf("%w: %s deltaPatches[%d] has no fromVersion", ErrInvalid, SummaryFile, i)
		}
		a.Kind, a.FromVersion = KindDelta, p.FromVersion
	}
	if d := m.Delta; d != nil && len(d.Files) > 0 && string(d.Files) != "null" {
		var list []string
		var byBase map[string]struct {
			File string `json:"file"`
			Size *int64 `json:"size"`
			Hash string `json:"hash"`
		}
		if err := json.Unmarshal(d.Files, &list); err == nil {
			for i, f := range list {
				a, err := need(fmt.Sprintf("%s delta.files[%d]", ManifestFile, i), f, nil, "")
				if err != nil {
					return nil, err
				}
				if a.Kind != KindDelta && i < len(d.BaseVersions) {
					a.Kind, a.FromVersion = KindDelta, d.BaseVersions[i]
				}
			}
		} else if err := json.Unmarshal(d.Files, &byBase); err == nil {
			bases := make([]string, 0, len(byBase))
			for b := range byBase {
				bases = append(bases, b)
			}
			sort.Strings(bases)
			for _, base := range bases {
				f := byBase[base]
				a, err := need(fmt.Sprintf("%s delta.files[%q]", ManifestFile, base), f.File, f.Size, f.Hash)
				if err != nil {
					return nil, err
				}
				if a.Kind != KindDelta {
					a.Kind, a.FromVersion = KindDelta, base
				}
			}
		} else {
			return nil, fmt.Errorf("%w: %s delta.files: want a list of names or a map of base version to file", ErrInvalid, ManifestFile)
		}
	}
	for i, x := range s.Artifacts {
		if x.Name == ManifestFile || x.Name == SummaryFile {
			continue // the documents themselves are checked by being parsed
		}
		if _, err := need(fmt.Sprintf("%s artifacts[%d]", SummaryFile, i), x.Name, x.Size, x.SHA256); err != nil {
			return nil, err
		}
	}
	// Files nobody named are kept as "other" so the folder is stored whole.
	for name := range files {
		if _, err := need("upload", name, nil, ""); err != nil {
			return nil, err
		}
	}
	if _, ok := firstKind(arts, KindFull); !ok {
		return nil, fmt.Errorf("%w: release has no full image (manifest images[] is empty)", ErrInvalid)
	}
	for _, a := range arts {
		r.Artifacts = append(r.Artifacts, *a)
	}
	sort.Slice(r.Artifacts, func(i, j int) bool { return r.Artifacts[i].Name < r.Artifacts[j].Name })
	return r, nil
}

func firstKind(arts map[string]*Artifact, kind string) (*Artifact, bool) {
	for _, a := range arts {
		if a.Kind == kind {
			return a, true
		}
	}
	return nil, false
}

// parseSHA256 accepts "hex" or "sha256:hex" and returns lower-case hex.
func parseSHA256(s string) (string, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "sha256:"), "SHA256:")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("hash %q is not a hex SHA-256", s)
	}
	return hex.EncodeToString(b), nil
}

func validVersionString(v string) error {
	if len(v) > 64 {
		return fmt.Errorf("%w: version too long", ErrInvalid)
	}
	for _, c := range v {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune(".-+_~", c)) {
			return fmt.Errorf("%w: version %q has character %q", ErrInvalid, v, c)
		}
	}
	return nil
}
