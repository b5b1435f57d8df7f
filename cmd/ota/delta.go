package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/delta"
)

func init() { commands = append(commands, newDeltaCmd) }

func newDeltaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delta",
		Short: "Make, apply and describe binary patches between firmware images",
	}
	cmd.AddCommand(newDeltaCreateCmd(), newDeltaApplyCmd(), newDeltaInfoCmd())
	return cmd
}

// deltaConfig is the spec's deltaConfig object (ota delta create --config).
type deltaConfig struct {
	BaseVersion string `json:"baseVersion"`
	BaseImage   string `json:"baseImage"`
	TargetImage string `json:"targetImage"`
	Algorithm   string `json:"algorithm"` // bsdiff | xdelta | vcdiff | native
	Output      string `json:"output"`
	Metadata    struct {
		SourceVersion string `json:"sourceVersion"`
		TargetVersion string `json:"targetVersion"`
		SourceHash    string `json:"sourceHash"`
		TargetHash    string `json:"targetHash"`
	} `json:"metadata"`
}

// deltaPatchEntry is the spec's deltaPatches entry printed by --json.
type deltaPatchEntry struct {
	FromVersion string  `json:"fromVersion"`
	File        string  `json:"file"`
	Size        int64   `json:"size"`
	Savings     float64 `json:"savings"` // percent of the full image saved
}

func newDeltaCreateCmd() *cobra.Command {
	var format, compression, layout, srcVer, tgtVer, config string
	var blockSize int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create [flags] OLD NEW PATCH",
		Short: "Make a patch that turns OLD into NEW",
		Long: `Make a patch that turns OLD into NEW.

--format native (default) writes otakit's format (docs/delta-format.md);
bsdiff writes BSDIFF40 for bspatch; vcdiff writes RFC 3284 VCDIFF for xdelta3.
--compression best (default) is the model layout, which codes instructions,
differences and literals with its own context models: the smallest patches on
firmware, for Go appliers. heatshrink or none make the stream layout that the C
applier (delta/c) applies on a microcontroller; --layout model with lzma or zstd
sends the literals through that codec instead (faster to apply, a little larger).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Making a patch is one goroutine's work: with a second P the
			// runtime only spins idle threads and runs idle GC workers,
			// ~5% more CPU time on the corpus for no gain in wall time.
			runtime.GOMAXPROCS(1)
			defer runtime.SetDefaultGOMAXPROCS()
			var srcHash, tgtHash string
			if config != "" {
				b, err := os.ReadFile(config)
				if err != nil {
					return err
				}
				var dc deltaConfig
				dec := json.NewDecoder(strings.NewReader(string(b)))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&dc); err != nil {
					return fmt.Errorf("%s: %w", config, err)
				}
				if len(args) != 0 {
					return errors.New("give either --config or OLD NEW PATCH")
				}
				if dc.BaseImage == "" || dc.TargetImage == "" || dc.Output == "" {
					return fmt.Errorf("%s: baseImage, targetImage and output are required", config)
				}
				dir := filepath.Dir(config)
				rel := func(p string) string {
					if filepath.IsAbs(p) {
						return p
					}
					return filepath.Join(dir, p)
				}
				args = []string{rel(dc.BaseImage), rel(dc.TargetImage), rel(dc.Output)}
				switch dc.Algorithm {
				case "", "native":
				case "bsdiff":
					format = "bsdiff"
				case "xdelta", "vcdiff":
					format = "vcdiff"
				default:
					return fmt.Errorf("%s: unknown algorithm %q (bsdiff, xdelta, vcdiff, native)", config, dc.Algorithm)
				}
				srcVer = firstNonEmpty(dc.Metadata.SourceVersion, dc.BaseVersion, srcVer)
				tgtVer = firstNonEmpty(dc.Metadata.TargetVersion, tgtVer)
				srcHash, tgtHash = dc.Metadata.SourceHash, dc.Metadata.TargetHash
			} else if len(args) != 3 {
				return errors.New("want OLD NEW PATCH (or --config FILE)")
			}
			old, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			new, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			if err := checkHash("sourceHash", srcHash, old); err != nil {
				return err
			}
			if err := checkHash("targetHash", tgtHash, new); err != nil {
				return err
			}
			var patch []byte
			switch format {
			case "native":
				opt := &delta.Options{BlockSize: blockSize, SourceVersion: srcVer, TargetVersion: tgtVer}
				if compression != "best" {
					if opt.Codec, err = codec.Lookup(compression); err != nil {
						return err
					}
				}
				switch {
				case layout == "split":
					opt.Layout = delta.LayoutSplit
				case layout == "stream":
					opt.Layout = delta.LayoutStream
				case layout == "model":
					opt.Layout = delta.LayoutModel
				case layout != "":
					return fmt.Errorf("unknown layout %q (model, split, stream)", layout)
				case compression == "heatshrink" || compression == "none":
					opt.Layout = delta.LayoutStream
				default:
					opt.Layout = delta.LayoutModel
				}
				if patch, err = delta.Create(old, new, opt); err != nil {
					return err
				}
			case "bsdiff":
				patch = delta.CreateBSDIFF40(old, new)
			case "vcdiff":
				patch = delta.CreateVCDIFF(old, new)
			default:
				return fmt.Errorf("unknown format %q (native, bsdiff, vcdiff)", format)
			}
			out, err := createAtomic(args[2])
			if err != nil {
				return err
			}
			if _, err := out.Write(patch); err != nil {
				out.Abort()
				return err
			}
			if err := out.Commit(); err != nil {
				return err
			}
			saved := 0.0
			if len(new) > 0 {
				saved = 100 * float64(len(new)-len(patch)) / float64(len(new))
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, deltaPatchEntry{FromVersion: srcVer, File: filepath.Base(args[2]),
					Size: int64(len(patch)), Savings: float64(int(saved*10+0.5)) / 10})
			}
			fmt.Fprintf(w, "full size:  %d bytes\npatch size: %d bytes (%s)\nsaved:      %.1f%%\n",
				len(new), len(patch), format, saved)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "native", "patch format: native, bsdiff or vcdiff")
	f.StringVar(&compression, "compression", "best", "native codec: best (model layout, literals modelled), "+strings.Join(codec.Names(), ", "))
	f.StringVar(&layout, "layout", "", "native layout: model, split or stream (default: stream for heatshrink/none, else model)")
	f.IntVar(&blockSize, "block-size", 0, "native restart interval in target bytes (default 65536)")
	f.StringVar(&srcVer, "source-version", "", "source version recorded in the native header")
	f.StringVar(&tgtVer, "target-version", "", "target version recorded in the native header")
	f.BoolVar(&asJSON, "json", false, "print the deltaPatches entry as JSON")
	f.StringVar(&config, "config", "", "read a deltaConfig JSON file instead of OLD NEW PATCH")
	return cmd
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// checkHash compares b with a "sha256:HEX" or "HEX" digest, if one is given.
func checkHash(what, want string, b []byte) error {
	if want == "" {
		return nil
	}
	want = strings.ToLower(strings.TrimPrefix(want, "sha256:"))
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != want {
		return verificationFailed(fmt.Errorf("%s: image SHA-256 is %s, config says %s", what, got, want))
	}
	return nil
}

func newDeltaApplyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "apply OLD PATCH OUT",
		Short: "Apply a native, BSDIFF40, ENDSLEY/BSDIFF43 or VCDIFF patch",
		Long: `Apply a patch to OLD and write OUT. Native patches are checked against the
source SHA-256 before anything is written and the target SHA-256 after; OUT is
written to a temporary file and renamed, so a failure leaves no partial OUT.
Native patches are applied in one pass: PATCH is streamed and OLD read at random,
so memory is one decoded block (see docs/delta-format.md), not the images.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			oldf, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer oldf.Close()
			pf, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer pf.Close()
			patch := bufio.NewReader(pf)
			magic, _ := patch.Peek(len(delta.Magic))
			out, err := createAtomic(args[2])
			if err != nil {
				return err
			}
			if string(magic) == delta.Magic {
				// Native: stream the patch, read OLD at random; RAM is one block.
				var st os.FileInfo
				if st, err = oldf.Stat(); err == nil {
					err = delta.ApplyStream(oldf, st.Size(), patch, out)
				}
			} else {
				err = applyWhole(oldf, patch, out)
			}
			if err != nil {
				out.Abort()
				if errors.Is(err, delta.ErrSourceMismatch) || errors.Is(err, delta.ErrTargetMismatch) {
					return verificationFailed(err)
				}
				return err
			}
			return out.Commit()
		},
	}
}

// applyWhole applies an interop (bsdiff, VCDIFF) patch, which these
// formats' appliers take in memory.
func applyWhole(old io.Reader, patch io.Reader, w io.Writer) error {
	o, err := io.ReadAll(old)
	if err != nil {
		return err
	}
	p, err := io.ReadAll(patch)
	if err != nil {
		return err
	}
	return delta.ApplyAny(o, p, w)
}

func newDeltaInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info PATCH",
		Short: "Describe a patch",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			patch, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			info, err := delta.Describe(patch)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), info)
			}
			return writeDeltaInfo(cmd.OutOrStdout(), info)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func writeDeltaInfo(w io.Writer, in *delta.Info) error {
	fmt.Fprintf(w, "format:         %s\n", in.Format)
	fmt.Fprintf(w, "patch size:     %d bytes\n", in.PatchSize)
	if in.TargetSize >= 0 {
		fmt.Fprintf(w, "target size:    %d bytes\n", in.TargetSize)
	}
	if in.Native == nil {
		return nil
	}
	h := in.Native
	fmt.Fprintf(w, "layout:         %s\ncodec:          %s\nsource size:    %d bytes\n", h.Layout, in.Codec, h.SourceSize)
	fmt.Fprintf(w, "source sha256:  %x\ntarget sha256:  %x\n", h.SourceSHA256, h.TargetSHA256)
	fmt.Fprintf(w, "source version: %s\ntarget version: %s\n", h.SourceVersion, h.TargetVersion)
	fmt.Fprintf(w, "block size:     %d bytes (%d blocks, restart points)\napplier RAM:    %d bytes\n", h.BlockSize, in.Blocks, h.ApplierRAM)
	return nil
}
