package release

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Summary is release.json, the spec's Output Schema: the update image, the
// delta patches with their savings, the manifest, the deployment (empty
// until the fleet server deploys the release) and every artifact.
type Summary struct {
	Version      string         `json:"version"`
	UpdateImage  UpdateImage    `json:"updateImage"`
	DeltaPatches []DeltaPatch   `json:"deltaPatches"`
	Manifest     ManifestInfo   `json:"manifest"`
	Deployment   map[string]any `json:"deployment"`
	Artifacts    []Artifact     `json:"artifacts"`
	// Inputs records what the release was made from, so a re-run can tell
	// it is already done.
	Inputs Inputs `json:"inputs"`
}

// UpdateImage describes the full image: the signed MCUboot image and the
// package devices download.
type UpdateImage struct {
	Version      string `json:"version"`
	File         string `json:"file"` // the .update package
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	Hash         string `json:"hash"` // "sha256:" + SHA256, as in the manifest
	SignedImage  string `json:"signedImage"`
	ImageSize    int64  `json:"imageSize"`
	ImageSHA256  string `json:"imageSha256"`
	Compression  string `json:"compression"`
	Encryption   string `json:"encryption"`
	SignatureAlg string `json:"signatureAlgorithm"`
}

// DeltaPatch describes the patch from one earlier release.
type DeltaPatch struct {
	FromVersion  string  `json:"fromVersion"`
	ToVersion    string  `json:"toVersion"`
	File         string  `json:"file"` // the delta .update package
	Size         int64   `json:"size"`
	SHA256       string  `json:"sha256"`
	PatchFile    string  `json:"patchFile"` // the raw patch
	PatchSize    int64   `json:"patchSize"`
	PatchSHA256  string  `json:"patchSha256"`
	BaseSHA256   string  `json:"baseSha256"`   // of the base signed image
	FullSize     int64   `json:"fullSize"`     // the full package, for comparison
	SavingsBytes int64   `json:"savingsBytes"` // FullSize - Size
	Savings      float64 `json:"savings"`      // percent of FullSize saved
}

// ManifestInfo describes the signed manifest.
type ManifestInfo struct {
	File     string   `json:"file"`
	SHA256   string   `json:"sha256"`
	Sequence uint64   `json:"sequence"`
	Expires  string   `json:"expires"`
	KeyIDs   []string `json:"keyids"`
}

// Artifact is one file of the release.
type Artifact struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // signed-image, package, patch, delta-package, manifest
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Inputs identify a release's inputs for idempotent re-runs.
type Inputs struct {
	FirmwareSHA256 string   `json:"firmwareSha256"`
	Bases          []string `json:"bases"` // versions deltas were made from
}

// ReadSummary reads dir/release.json.
func ReadSummary(dir string) (*Summary, error) {
	b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		return nil, err
	}
	s := new(Summary)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, SummaryFile), err)
	}
	return s, nil
}

func jsonEncoder(w io.Writer) *json.Encoder {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e
}
