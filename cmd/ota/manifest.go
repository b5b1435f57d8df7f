package main

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/manifest"
	"github.com/otakit/otakit/version"
)

func init() { commands = append(commands, newManifestCmd) }

func newManifestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Generate and verify signed release manifests",
	}
	cmd.AddCommand(newManifestGenerateCmd(), newManifestVerifyCmd())
	return cmd
}

// signingKeyPasswordEnv names the environment variable holding the password
// of encrypted signing key files (and the PIN of pkcs11: keys without one).
const signingKeyPasswordEnv = "OTA_KEY_PASSWORD"

// openManifestSigners opens each key file or pkcs11: URI in refs. Close the
// result with closeManifestSigners.
func openManifestSigners(refs []string) ([]crypto.Signer, error) {
	var pw []byte
	if v, ok := os.LookupEnv(signingKeyPasswordEnv); ok {
		pw = []byte(v)
	}
	var out []crypto.Signer
	for _, ref := range refs {
		s, err := keys.OpenSigner(ref, pw)
		if err != nil {
			closeManifestSigners(out)
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func closeManifestSigners(ss []crypto.Signer) {
	for _, s := range ss {
		keys.CloseSigner(s)
	}
}

func newManifestGenerateCmd() *cobra.Command {
	var (
		image, output, minBoot, reqBase, notes, seqFile, ver string
		patches, hardware, keyRefs                           []string
		seq                                                  uint64
		validity                                             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "generate --image SIGNED.bin --key K --output manifest.json [flags]",
		Short: "Write a signed manifest for a signed image and its delta patches",
		Long: `Write a signed manifest. Files are listed relative to the manifest's directory
and must lie inside it. The version comes from the image header (MCUboot image or
full update package). The sequence number comes from --sequence, or from
--sequence-file (last value + 1, written back on success).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" || len(keyRefs) == 0 {
				return errors.New("manifest generate: --output and at least one --key are required")
			}
			if (seq == 0) == (seqFile == "") {
				return errors.New("manifest generate: give exactly one of --sequence N (≥ 1) or --sequence-file F")
			}
			if seqFile != "" {
				last, err := manifest.ReadSequence(seqFile)
				if err != nil {
					return err
				}
				seq = last + 1
			}
			o := manifest.Options{
				Dir: filepath.Dir(output), Image: image, Patches: map[string]string{},
				HardwareRevisions: hardware, MinBootloaderVersion: minBoot, RequiredBaseVersion: reqBase,
				ReleaseNotes: notes, Sequence: seq, Validity: validity,
			}
			if ver != "" {
				v, err := version.Parse(ver)
				if err != nil {
					return err
				}
				o.Version = &v
			}
			for _, p := range patches {
				from, file, ok := strings.Cut(p, "=")
				if !ok || from == "" || file == "" {
					return fmt.Errorf("manifest generate: --patch %q: want FROM=PATCH", p)
				}
				o.Patches[from] = file
			}
			signers, err := openManifestSigners(keyRefs)
			if err != nil {
				return err
			}
			defer closeManifestSigners(signers)
			m, err := manifest.New(o)
			if err != nil {
				return err
			}
			if err := m.WriteFile(output, signers...); err != nil {
				return err
			}
			if seqFile != "" {
				if err := manifest.WriteSequence(seqFile, seq); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: version %s+%d, sequence %d, expires %s, %d image(s), %d delta(s), %d signature(s)\n",
				output, m.Version, m.Build, m.Sequence, m.Expires.Format(time.RFC3339), len(m.Images), len(m.Delta.Files), len(m.Signatures))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&image, "image", "", "signed MCUboot image (or full update package)")
	f.StringArrayVar(&patches, "patch", nil, "FROM=PATCH: a patch or delta package from version FROM (repeatable)")
	f.StringSliceVar(&hardware, "hardware", nil, "supported hardware revisions, comma-separated")
	f.StringVar(&minBoot, "min-bootloader", "", "minimum bootloader version")
	f.StringVar(&reqBase, "required-base", "", "lowest version that may install the full image")
	f.StringVar(&notes, "notes", "", "release notes")
	f.Uint64Var(&seq, "sequence", 0, "sequence number (monotonic per product, ≥ 1)")
	f.StringVar(&seqFile, "sequence-file", "", "file holding the last sequence number; incremented")
	f.DurationVar(&validity, "expires", manifest.DefaultValidity, "validity period")
	f.StringArrayVar(&keyRefs, "key", nil, "signing key: PEM file or pkcs11: URI (repeatable)")
	f.StringVarP(&output, "output", "o", "", "manifest file to write")
	f.StringVar(&ver, "version", "", "release version, when the image header has none")
	return cmd
}

// manifestVerifyErrors are the refusals that exit with code 1.
var manifestVerifyErrors = []error{
	manifest.ErrSignature, manifest.ErrThreshold, manifest.ErrExpired, manifest.ErrReplay, manifest.ErrRollback,
	manifest.ErrHardware, manifest.ErrBootloader, manifest.ErrBase, manifest.ErrDowngrade, manifest.ErrFileSize,
	manifest.ErrFileHash, manifest.ErrFileMissing, manifest.ErrMixed, manifest.ErrRoot, manifest.ErrRootVersion,
}

func asVerifyError(err error) error {
	for _, e := range manifestVerifyErrors {
		if errors.Is(err, e) {
			return verificationFailed(err)
		}
	}
	return err
}

// trustFromFlags builds the trusted key set from --key/--threshold or from
// --root and its --chain.
func trustFromFlags(keyFiles []string, threshold int, rootFile string, chain []string, now time.Time) (*manifest.KeySet, string, error) {
	switch {
	case rootFile != "" && len(keyFiles) > 0:
		return nil, "", errors.New("give either --key or --root, not both")
	case rootFile != "":
		trusted, err := os.ReadFile(rootFile)
		if err != nil {
			return nil, "", err
		}
		var links [][]byte
		for _, c := range chain {
			b, err := os.ReadFile(c)
			if err != nil {
				return nil, "", err
			}
			links = append(links, b)
		}
		root, err := manifest.VerifyRootChain(trusted, links, now)
		if err != nil {
			return nil, "", err
		}
		ks, err := root.KeySet()
		return ks, fmt.Sprintf("%d key(s) of root v%d", len(root.Keys), root.Version), err
	case len(chain) > 0:
		return nil, "", errors.New("--chain needs --root")
	case len(keyFiles) == 0:
		return nil, "", errors.New("give --key PUB (repeatable) or --root root.json")
	}
	var pubs []crypto.PublicKey
	for _, k := range keyFiles {
		p, err := keys.LoadPublic(k)
		if err != nil {
			return nil, "", err
		}
		pubs = append(pubs, p)
	}
	ks, err := manifest.NewKeySet(threshold, pubs...)
	return ks, fmt.Sprintf("%d key(s)", len(ks.Keys)), err
}

func newManifestVerifyCmd() *cobra.Command {
	var (
		keyFiles, chain            []string
		threshold                  int
		deviceFile, rootFile, atTS string
		lastSeq                    uint64
		skipFiles                  bool
	)
	cmd := &cobra.Command{
		Use:   "verify manifest.json (--key PUB... [--threshold k] | --root root.json [--chain root-vN.json...])",
		Short: "Verify a manifest: signatures, expiry, sequence, files, and fit for a device",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			if atTS != "" {
				t, err := time.Parse(time.RFC3339, atTS)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				now = t
			}
			ks, trustDesc, err := trustFromFlags(keyFiles, threshold, rootFile, chain, now)
			if err != nil {
				return asVerifyError(err)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			m, err := manifest.Verify(data, manifest.Policy{Keys: ks, Now: now, LastSequence: lastSeq})
			if err != nil {
				return asVerifyError(fmt.Errorf("%s: %w", args[0], err))
			}
			signedBy, _ := manifest.SignedBy(data, ks)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: signature ok (%d of %s, threshold %d), version %s+%d, sequence %d, expires %s\n",
				args[0], len(signedBy), trustDesc, ks.Threshold, m.Version, m.Build, m.Sequence, m.Expires.Format(time.RFC3339))
			if !skipFiles {
				if err := m.CheckFiles(filepath.Dir(args[0])); err != nil {
					return asVerifyError(fmt.Errorf("%s: %w", args[0], err))
				}
				fmt.Fprintf(out, "files ok: %d image(s), %d delta(s)\n", len(m.Images), len(m.Delta.Files))
			}
			if deviceFile != "" {
				b, err := os.ReadFile(deviceFile)
				if err != nil {
					return err
				}
				var d manifest.Device
				if err := json.Unmarshal(b, &d); err != nil {
					return fmt.Errorf("%s: %w", deviceFile, err)
				}
				offer, err := m.Check(d)
				if err != nil {
					return asVerifyError(fmt.Errorf("device %s: %w", deviceFile, err))
				}
				if offer.Delta {
					fmt.Fprintf(out, "device ok: delta from %s: %s (%d bytes)\n", offer.BaseVersion, offer.File, offer.Size)
				} else {
					fmt.Fprintf(out, "device ok: full image %s (%d bytes)\n", offer.File, offer.Size)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keyFiles, "key", nil, "trusted public key (PEM; repeatable)")
	f.IntVar(&threshold, "threshold", 1, "signatures required from distinct trusted keys")
	f.StringVar(&rootFile, "root", "", "trusted root.json (instead of --key)")
	f.StringArrayVar(&chain, "chain", nil, "newer root, signed by the previous one (repeatable, in order)")
	f.StringVar(&deviceFile, "device", "", "device.json: hardwareRevision, bootloaderVersion, currentVersion")
	f.Uint64Var(&lastSeq, "last-sequence", 0, "sequence of the last manifest the device accepted")
	f.BoolVar(&skipFiles, "skip-files", false, "do not check the referenced files")
	f.StringVar(&atTS, "at", "", "verify as of this RFC 3339 time instead of now")
	return cmd
}

func signerPublics(ss []crypto.Signer) []crypto.PublicKey {
	var out []crypto.PublicKey
	for _, s := range ss {
		out = append(out, s.Public())
	}
	return out
}

// writeManifestFileAtomic writes b to a temporary file beside path and renames it.
func writeManifestFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
