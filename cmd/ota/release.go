package main

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/release"
	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

func init() { commands = append(commands, newReleaseCmd) }

func newReleaseCmd() *cobra.Command {
	var (
		o                                    release.Options
		firmware, ver, encKeyFile, comp, out string
		keyRef                               string
		manifestKeys, hardware               []string
		headerSize                           uint32
	)
	cmd := &cobra.Command{
		Use:   "release --firmware app.bin --version 1.2.0+456 --key K --releases DIR [flags]",
		Short: "Sign, diff, package and publish a release with its signed manifest and release.json",
		Long: `Run the release pipeline: sign the firmware as an MCUboot image, make delta
patches from the most recent earlier releases in --releases, package the image
and the patches, write the signed manifest and release.json. The release is
built in a temporary folder and renamed to --out (default DIR/VERSION) when
complete; re-running with the same firmware and version leaves it as it is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if firmware == "" || ver == "" || keyRef == "" {
				return errors.New("release: --firmware, --version and --key are required")
			}
			var err error
			if o.Version, err = version.Parse(ver); err != nil {
				return err
			}
			if o.Compression, err = codec.Lookup(comp); err != nil {
				return err
			}
			if encKeyFile != "" {
				if o.EncryptKey, err = update.LoadKey(encKeyFile); err != nil {
					return err
				}
			}
			signers, err := openManifestSigners(append([]string{keyRef}, manifestKeys...))
			if err != nil {
				return err
			}
			defer closeManifestSigners(signers)
			o.ImageSigner = signers[0]
			o.ManifestSigners = signers[1:]
			if len(o.ManifestSigners) == 0 {
				o.ManifestSigners = []crypto.Signer{signers[0]}
			}
			o.Firmware, o.Out, o.HardwareRevisions, o.HeaderSize = firmware, out, hardware, int(headerSize)
			if o.DeltasFrom == 0 {
				o.DeltasFrom = -1 // the package reads 0 as its default
			}
			var done func()
			o.Progress, done = releaseProgress(cmd.ErrOrStderr())
			// An interrupted run removes its temporary folder.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			res, err := release.Build(ctx, o)
			done()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if res.UpToDate {
				fmt.Fprintf(w, "%s: release %s is up to date (same firmware); nothing written\n", res.Dir, res.Summary.Version)
				return nil
			}
			s := res.Summary
			fmt.Fprintf(w, "%s: release %s, sequence %d\n", res.Dir, s.Version, res.Sequence)
			fmt.Fprintf(w, "  full:  %s (%d bytes; signed image %d bytes)\n", s.UpdateImage.File, s.UpdateImage.Size, s.UpdateImage.ImageSize)
			for _, d := range s.DeltaPatches {
				fmt.Fprintf(w, "  delta: %s (%d bytes, saves %.2f%% of the full package)\n", d.File, d.Size, d.Savings)
			}
			fmt.Fprintf(w, "  manifest: %s, release.json, %d artifacts\n", s.Manifest.File, len(s.Artifacts))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&firmware, "firmware", "", "unsigned firmware binary")
	f.StringVar(&ver, "version", "", "release version MAJOR.MINOR.REVISION[+BUILD]")
	f.StringVar(&keyRef, "key", "", "image signing key: PEM file or pkcs11: URI (also signs the manifest unless --manifest-key)")
	f.StringArrayVar(&manifestKeys, "manifest-key", nil, "manifest signing key (repeatable; default: --key)")
	f.StringVar(&encKeyFile, "encrypt-key", "", "AES key file (16 or 32 bytes, raw or hex) to encrypt packages with AES-CTR")
	f.StringVar(&o.Releases, "releases", "", "directory of releases (earlier ones are diffed against)")
	f.IntVar(&o.DeltasFrom, "deltas-from", 3, "make deltas from this many most recent earlier releases (negative: none)")
	f.StringVar(&out, "out", "", "release folder to create (default RELEASES/VERSION)")
	f.StringVar(&comp, "compression", "zstd", "package compression: none, lz4, zlib, lzma, zstd")
	f.Uint32Var(&headerSize, "header-size", release.DefaultHeaderSize, "MCUboot header area")
	f.Int64Var(&o.SlotSize, "slot-size", 0, "slot size the signed image must fit (0: unchecked)")
	f.StringSliceVar(&hardware, "hardware", nil, "supported hardware revisions, comma-separated")
	f.StringVar(&o.MinBootloaderVersion, "min-bootloader", "", "minimum bootloader version")
	f.StringVar(&o.RequiredBaseVersion, "required-base", "", "lowest version that may install the full image")
	f.StringVar(&o.ReleaseNotes, "notes", "", "release notes")
	f.DurationVar(&o.Validity, "expires", 30*24*time.Hour, "manifest validity")
	return cmd
}

// releaseProgress shows a progress bar when w is a terminal and plain
// lines otherwise (logs, CI).
// The second function ends the bar once the pipeline returns.
func releaseProgress(w io.Writer) (func(release.Step), func()) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		step := func(s release.Step) {
			if bar == nil {
				bar = progressbar.NewOptions(s.Total, progressbar.OptionSetWriter(w),
					progressbar.OptionShowCount(), progressbar.OptionSetWidth(30),
					progressbar.OptionSetPredictTime(false))
			}
			bar.Describe(s.Name)
			bar.Set(s.Index - 1)
		}
		done := func() {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(w)
			}
		}
		return step, done
	}
	return func(s release.Step) { fmt.Fprintf(w, "release: [%d/%d] %s\n", s.Index, s.Total, s.Name) }, func() {}
}
