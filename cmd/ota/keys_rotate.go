package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/otakit/otakit/internal/atomicfile"
	"github.com/otakit/otakit/manifest"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newKeysCmd) }

// newKeysCmd is the `ota keys` group: management of the manifest-signing
// root of trust. (Key generation and export are the imgtool-style top-level
// commands keygen, getpub, ….)
func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the manifest-signing root of trust (TUF-style key rotation)",
	}
	cmd.AddCommand(newKeysRotateCmd())
	return cmd
}

func newKeysRotateCmd() *cobra.Command {
	var (
		rootFile, output string
		oldKeys, newKeys []string
		threshold        int
		validity         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate --new-key K... [--root root.json --old-key K...] [--threshold k] --output root-vN.json",
		Short: "Write a new root of manifest-signing keys, signed by the old and the new keys",
		Long: `Write the next root.json: it lists the public halves of the --new-key keys with
threshold k, and is signed by the --old-key keys (meeting the current root's
threshold) and by the new keys (meeting k). Devices that trust the current root
accept the new one only through this chain (ota manifest verify --root OLD
--chain NEW). Without --root, writes a self-signed version 1 root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" || len(newKeys) == 0 {
				return errors.New("keys rotate: --output and at least one --new-key are required")
			}
			if (rootFile == "") != (len(oldKeys) == 0) {
				return errors.New("keys rotate: --root and --old-key go together")
			}
			newSigners, err := openManifestSigners(newKeys)
			if err != nil {
				return err
			}
			defer closeManifestSigners(newSigners)
			expires := time.Now().Add(validity)
			var root *manifest.Root
			if rootFile == "" {
				root, err = manifest.NewRoot(1, threshold, expires, signerPublics(newSigners)...)
				if err == nil {
					err = root.Sign(newSigners...)
				}
			} else {
				var old []byte
				if old, err = os.ReadFile(rootFile); err != nil {
					return err
				}
				oldSigners, err := openManifestSigners(oldKeys)
				if err != nil {
					return err
				}
				defer closeManifestSigners(oldSigners)
				root, err = manifest.Rotate(old, oldSigners, newSigners, threshold, expires)
				if err != nil {
					return asVerifyError(fmt.Errorf("%s: %w", rootFile, err))
				}
			}
			if err != nil {
				return err
			}
			b, err := root.Marshal()
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(output, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: root v%d, %d key(s), threshold %d, expires %s\n",
				output, root.Version, len(root.Keys), root.Threshold, root.Expires.Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rootFile, "root", "", "the current root.json")
	f.StringArrayVar(&oldKeys, "old-key", nil, "a signing key of the current root (PEM file or pkcs11: URI; repeatable)")
	f.StringArrayVar(&newKeys, "new-key", nil, "a signing key of the new root (PEM file or pkcs11: URI; repeatable)")
	f.IntVar(&threshold, "threshold", 1, "signatures the new root requires on manifests")
	f.DurationVar(&validity, "expires", 365*24*time.Hour, "validity of the new root")
	f.StringVarP(&output, "output", "o", "", "new root file to write")
	return cmd
}
