package release

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/manifest"
	"github.com/otakit/otakit/mcuboot"
	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

// DefaultHeaderSize is the MCUboot header area the pipeline reserves.
const DefaultHeaderSize = 0x200

// Result is what Build did.
type Result struct {
	Dir       string   // the release folder
	Summary   *Summary // its release.json
	UpToDate  bool     // the release existed with the same inputs; nothing was written
	Bases     []string // versions deltas were made from
	Sequence  uint64   // the manifest's sequence number
	Artifacts int
}

// earlier is a release found in the releases directory.
type earlier struct {
	dir     string
	version version.Version
	sum     *Summary
	seq     uint64
}

// Build runs the pipeline. See the package documentation. Cancelling ctx
// stops it between steps and removes the temporary folder.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Firmware == "" || o.ImageSigner == nil || o.Version.IsZero() {
		return nil, fmt.Errorf("%w: firmware, version and a signing key are required", ErrOptions)
	}
	if o.Releases == "" && o.Out == "" {
		return nil, fmt.Errorf("%w: give a releases directory or an output folder", ErrOptions)
	}
	enc, err := o.encryption()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOptions, err)
	}
	if o.Compression == nil {
		if o.Compression, err = codec.Lookup("zstd"); err != nil {
			return nil, err
		}
	}
	if o.HeaderSize == 0 {
		o.HeaderSize = DefaultHeaderSize
	}
	if o.DeltasFrom == 0 {
		o.DeltasFrom = 3
	}
	if len(o.ManifestSigners) == 0 {
		o.ManifestSigners = []crypto.Signer{o.ImageSigner}
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	out := o.Out
	if out == "" {
		out = filepath.Join(o.Releases, o.Version.String())
	}
	fwHash, err := fileSHA256(o.Firmware)
	if err != nil {
		return nil, err
	}

	// Idempotence: a finished release from the same inputs is left alone.
	if _, err := os.Stat(out); err == nil {
		s, err := ReadSummary(out)
		if err != nil {
			return nil, fmt.Errorf("%w: %s exists and is not a release (%v)", ErrExists, out, err)
		}
		if s.Version != o.Version.String() || s.Inputs.FirmwareSHA256 != fwHash {
			return nil, fmt.Errorf("%w: %s holds %s built from firmware %.12s…", ErrExists, out, s.Version, s.Inputs.FirmwareSHA256)
		}
		return &Result{Dir: out, Summary: s, UpToDate: true, Bases: s.Inputs.Bases}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	prev, err := findReleases(o.Releases, out)
	if err != nil {
		return nil, err
	}
	var seq uint64
	for _, p := range prev {
		seq = max(seq, p.seq)
	}
	seq++
	bases := pickBases(prev, o.Version, o.DeltasFrom)

	total := 4 + 2*len(bases)
	step := 0
	progress := func(name string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		step++
		if o.Progress != nil {
			o.Progress(Step{Index: step, Total: total, Name: name})
		}
		return nil
	}

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	p := func(name string) string { return filepath.Join(tmp, name) }
	v := o.Version.String()
	sum := &Summary{Version: v, Deployment: map[string]any{}, DeltaPatches: []DeltaPatch{},
		Inputs: Inputs{FirmwareSHA256: fwHash, Bases: []string{}}}

	// 1. Sign.
	if err := progress("sign MCUboot image " + v); err != nil {
		return nil, err
	}
	signedName := "app-" + v + ".signed.bin"
	sigAlg, err := signImage(p(signedName), &o)
	if err != nil {
		return nil, err
	}
	newImage, err := os.ReadFile(p(signedName))
	if err != nil {
		return nil, err
	}

	// 2. Full package.
	if err := progress("package full image"); err != nil {
		return nil, err
	}
	fullName := "app-" + v + ".update"
	if _, err := update.PackFile(p(fullName), p(signedName), update.Header{
		Type: update.TypeFull, Version: o.Version, Compression: o.Compression.ID(), Encryption: enc,
	}, o.EncryptKey); err != nil {
		return nil, err
	}
	sum.UpdateImage = UpdateImage{File: fullName, SignedImage: signedName, Compression: o.Compression.Name(),
		Encryption: enc.String(), SignatureAlg: sigAlg}
	if sum.UpdateImage.Size, sum.UpdateImage.SHA256, err = fileRef(p(fullName)); err != nil {
		return nil, err
	}
	sum.UpdateImage.Version, sum.UpdateImage.Hash = v, "sha256:"+sum.UpdateImage.SHA256
	sum.UpdateImage.ImageSize = int64(len(newImage))
	sum.UpdateImage.ImageSHA256 = hexSHA256(newImage)

	// 3. Deltas.
	patches, baseHashes := map[string]string{}, map[string]string{}
	for _, b := range bases {
		from := b.version.String()
		if err := progress("delta from " + from); err != nil {
			return nil, err
		}
		oldImage, err := os.ReadFile(filepath.Join(b.dir, b.sum.UpdateImage.SignedImage))
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", from, err)
		}
		if hexSHA256(oldImage) != b.sum.UpdateImage.ImageSHA256 {
			return nil, fmt.Errorf("release %s: signed image does not match its release.json (damaged base)", from)
		}
		patch, err := makePatch(oldImage, newImage, b.version, o.Version)
		if err != nil {
			return nil, fmt.Errorf("delta from %s: %w", from, err)
		}
		patchName := "app-" + from + "-to-" + v + ".patch"
		if err := os.WriteFile(p(patchName), patch, 0o644); err != nil {
			return nil, err
		}
		if err := progress("package delta from " + from); err != nil {
			return nil, err
		}
		pkgName := "app-" + from + "-to-" + v + ".update"
		if _, err := update.PackFile(p(pkgName), p(patchName), update.Header{
			Type: update.TypeDelta, Version: o.Version, BaseVersion: b.version, Compression: o.Compression.ID(), Encryption: enc,
		}, o.EncryptKey); err != nil {
			return nil, err
		}
		d := DeltaPatch{FromVersion: from, ToVersion: v, File: pkgName, PatchFile: patchName,
			PatchSize: int64(len(patch)), PatchSHA256: hexSHA256(patch), BaseSHA256: hexSHA256(oldImage),
			FullSize: sum.UpdateImage.Size}
		if d.Size, d.SHA256, err = fileRef(p(pkgName)); err != nil {
			return nil, err
		}
		d.SavingsBytes = d.FullSize - d.Size
		if d.FullSize > 0 {
			d.Savings = float64(int64(float64(d.SavingsBytes)*10000/float64(d.FullSize))) / 100
		}
		sum.DeltaPatches = append(sum.DeltaPatches, d)
		sum.Inputs.Bases = append(sum.Inputs.Bases, from)
		core := b.version.Core()
		patches[core] = p(pkgName)
		baseHashes[core] = "sha256:" + d.BaseSHA256
	}

	// 4. Manifest.
	if err := progress("sign manifest"); err != nil {
		return nil, err
	}
	imgSig, err := manifest.ImageSignature(p(signedName))
	if err != nil {
		return nil, err
	}
	m, err := manifest.New(manifest.Options{
		Dir: tmp, Image: p(fullName), Patches: patches, BaseHashes: baseHashes, ImageSignature: imgSig,
		HardwareRevisions: o.HardwareRevisions, MinBootloaderVersion: o.MinBootloaderVersion,
		RequiredBaseVersion: o.RequiredBaseVersion, ReleaseNotes: o.ReleaseNotes,
		Sequence: seq, Now: o.Now, Validity: o.Validity,
	})
	if err != nil {
		return nil, err
	}
	if err := m.WriteFile(p(ManifestFile), o.ManifestSigners...); err != nil {
		return nil, err
	}
	sum.Manifest = ManifestInfo{File: ManifestFile, Sequence: m.Sequence, Expires: m.Expires.Format(time.RFC3339)}
	for _, s := range m.Signatures {
		sum.Manifest.KeyIDs = append(sum.Manifest.KeyIDs, s.KeyID)
	}
	if _, sum.Manifest.SHA256, err = fileRef(p(ManifestFile)); err != nil {
		return nil, err
	}

	// 5. Summary, then publish.
	if err := progress("write release.json"); err != nil {
		return nil, err
	}
	add := func(name, kind string) error {
		size, h, err := fileRef(p(name))
		sum.Artifacts = append(sum.Artifacts, Artifact{Name: name, Kind: kind, Size: size, SHA256: h})
		return err
	}
	if err := add(signedName, "signed-image"); err != nil {
		return nil, err
	}
	if err := add(fullName, "package"); err != nil {
		return nil, err
	}
	for _, d := range sum.DeltaPatches {
		if err := add(d.PatchFile, "patch"); err != nil {
			return nil, err
		}
		if err := add(d.File, "delta-package"); err != nil {
			return nil, err
		}
	}
	if err := add(ManifestFile, "manifest"); err != nil {
		return nil, err
	}
	if err := writeJSON(p(SummaryFile), sum); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	ok = true
	return &Result{Dir: out, Summary: sum, Bases: sum.Inputs.Bases, Sequence: seq, Artifacts: len(sum.Artifacts)}, nil
}

// signImage signs o.Firmware into path and returns the signature's
// algorithm name.
func signImage(path string, o *Options) (string, error) {
	in, err := os.Open(o.Firmware)
	if err != nil {
		return "", err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	mv := mcuboot.Version{Major: o.Version.Major, Minor: o.Version.Minor, Revision: o.Version.Revision, Build: o.Version.Build}
	if _, err := mcuboot.Sign(f, in, st.Size(), &mcuboot.SignOptions{
		Version: mv, HeaderSize: o.HeaderSize, PadHeader: true, SlotSize: o.SlotSize, Signer: o.ImageSigner,
	}); err != nil {
		return "", fmt.Errorf("signing %s: %w", o.Firmware, err)
	}
	alg, err := manifest.Algorithm(o.ImageSigner.Public())
	if err != nil {
		return "", err
	}
	return alg, f.Close()
}

// findReleases lists the release folders in dir (not skip), newest first.
func findReleases(dir, skip string) ([]earlier, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []earlier
	for _, e := range entries {
		sub := filepath.Join(dir, e.Name())
		if !e.IsDir() || e.Name()[0] == '.' || sameDir(sub, skip) {
			continue
		}
		s, err := ReadSummary(sub)
		if errors.Is(err, fs.ErrNotExist) {
			continue // not a release folder
		}
		if err != nil {
			return nil, err
		}
		v, err := version.Parse(s.Version)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sub, err)
		}
		out = append(out, earlier{dir: sub, version: v, sum: s, seq: s.Manifest.Sequence})
	}
	slices.SortFunc(out, func(a, b earlier) int { return b.version.Compare(a.version) })
	return out, nil
}

// pickBases returns the n most recent releases older than v, one per
// major.minor.revision (the newest build of each).
func pickBases(prev []earlier, v version.Version, n int) []earlier {
	var out []earlier
	seen := map[string]bool{}
	for _, p := range prev {
		if len(out) >= n || n < 0 {
			break
		}
		if p.version.CompareCore(v) >= 0 || seen[p.version.Core()] {
			continue
		}
		seen[p.version.Core()] = true
		out = append(out, p)
	}
	return out
}

func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileRef(path string) (int64, string, error) {
	size, h, err := manifest.FileRef(path)
	if err != nil {
		return 0, "", err
	}
	return size, h[len("sha256:"):], nil
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := jsonEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// syncDir flushes the files of dir and the directory itself, so the rename
// publishes complete files.
func syncDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
