package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

func init() { commands = append(commands, newPackageCmd) }

// imageConfig is the spec's image.json shape for `ota package --config`.
type imageConfig struct {
	Type    string `json:"type"`
	Input   string `json:"input"`
	Output  string `json:"output"`
	Version struct {
		Major uint8  `json:"major"`
		Minor uint8  `json:"minor"`
		Patch uint16 `json:"patch"`
		Build uint32 `json:"build"`
	} `json:"version"`
	Compression string `json:"compression"`
	Encryption  *struct {
		Algorithm string `json:"algorithm"`
		KeyFile   string `json:"keyFile"`
	} `json:"encryption"`
}

func newPackageCmd() *cobra.Command {
	var (
		config, typ, input, output, ver, base, comp, enc, keyFile string
	)
	cmd := &cobra.Command{
		Use:   "package",
		Short: "Build an update package (.update): compressed, optionally AES-CTR encrypted",
		Long: `Build an update package from a signed image or a delta patch.

Flags or --config image.json (the imageConfig shape: type, input, output,
version{major,minor,patch,build}, compression, encryption{algorithm,keyFile});
paths in the config are relative to the config file; flags given explicitly
override the config file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config != "" {
				if err := applyImageConfig(cmd, config, &typ, &input, &output, &ver, &comp, &enc, &keyFile); err != nil {
					return err
				}
			}
			if input == "" || output == "" || ver == "" {
				return errors.New("package: --input, --output and --version are required (or --config)")
			}
			var hdr update.Header
			var err error
			if hdr.Type, err = update.ParseType(typ); err != nil {
				return err
			}
			if hdr.Version, err = version.Parse(ver); err != nil {
				return err
			}
			if base != "" {
				if hdr.Type != update.TypeDelta {
					return errors.New("package: --base-version is only for --type delta")
				}
				if hdr.BaseVersion, err = version.Parse(base); err != nil {
					return err
				}
			}
			c, err := codec.Lookup(comp)
			if err != nil {
				return err
			}
			hdr.Compression = c.ID()
			if hdr.Encryption, err = update.ParseEncryption(enc); err != nil {
				return err
			}
			var key []byte
			if hdr.Encryption != update.EncryptNone {
				if keyFile == "" {
					return fmt.Errorf("package: --encrypt %s needs --key-file", hdr.Encryption)
				}
				if key, err = update.LoadKey(keyFile); err != nil {
					return err
				}
			} else if keyFile != "" {
				return errors.New("package: --key-file given without --encrypt")
			}
			h, err := update.PackFile(output, input, hdr, key)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s %s, %d → %d bytes (%s, %s)\n", output, h.Type, h.Version,
				h.Size, h.StoredSize+update.HeaderSize, comp, h.Encryption)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "image.json in the imageConfig shape")
	f.StringVar(&typ, "type", "full", "payload type: full or delta")
	f.StringVarP(&input, "input", "i", "", "signed image or patch to package")
	f.StringVarP(&output, "output", "o", "", "package file to write")
	f.StringVar(&ver, "version", "", "target version, MAJOR.MINOR.REVISION[+BUILD]")
	f.StringVar(&base, "base-version", "", "for --type delta: the version the patch applies to")
	f.StringVar(&comp, "compression", "zstd", "none, lz4, zlib, lzma or zstd")
	f.StringVar(&enc, "encrypt", "", "aes-128-ctr or aes-256-ctr (default: no encryption)")
	f.StringVar(&keyFile, "key-file", "", "AES key: raw 16/32 bytes or hex text")
	cmd.AddCommand(newPackageInfoCmd(), newPackageUnpackCmd())
	return cmd
}

func applyImageConfig(cmd *cobra.Command, path string, typ, input, output, ver, comp, enc, keyFile *string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var c imageConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	set := func(flag string, dst *string, v string) {
		if v != "" && !cmd.Flags().Changed(flag) {
			*dst = v
		}
	}
	// Paths in the config are relative to the config file, as in tsconfig
	// or Cargo.toml, so the file works from any directory.
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(path), p)
	}
	set("type", typ, c.Type)
	set("input", input, rel(c.Input))
	set("output", output, rel(c.Output))
	v := version.Version{Major: c.Version.Major, Minor: c.Version.Minor, Revision: c.Version.Patch, Build: c.Version.Build}
	set("version", ver, v.String())
	set("compression", comp, c.Compression)
	if c.Encryption != nil {
		set("encrypt", enc, c.Encryption.Algorithm)
		set("key-file", keyFile, rel(c.Encryption.KeyFile))
	}
	return nil
}

func newPackageInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info PKG",
		Short: "Print a package's header and check its stored payload digest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			h, err := update.CheckStored(f)
			if h == nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			printPackageInfo(cmd.OutOrStdout(), h, err, asJSON)
			if err != nil {
				return verificationFailed(fmt.Errorf("%s: %w", args[0], err))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printPackageInfo(w io.Writer, h *update.Header, checkErr error, asJSON bool) {
	c, _ := codec.ByID(h.Compression)
	status := "ok"
	if checkErr != nil {
		status = checkErr.Error()
	}
	info := struct {
		Type         string `json:"type"`
		Version      string `json:"version"`
		BaseVersion  string `json:"baseVersion,omitempty"`
		Compression  string `json:"compression"`
		Encryption   string `json:"encryption"`
		Nonce        string `json:"nonce,omitempty"`
		Size         int64  `json:"size"`
		SHA256       string `json:"sha256"`
		StoredSize   int64  `json:"storedSize"`
		StoredSHA256 string `json:"storedSha256"`
		StoredCheck  string `json:"storedCheck"`
	}{h.Type.String(), h.Version.String(), "", c.Name(), h.Encryption.String(), "",
		h.Size, hex.EncodeToString(h.SHA256[:]), h.StoredSize, hex.EncodeToString(h.StoredSHA256[:]), status}
	if h.Type == update.TypeDelta {
		info.BaseVersion = h.BaseVersion.String()
	}
	if h.Encryption != update.EncryptNone {
		info.Nonce = hex.EncodeToString(h.Nonce[:])
	}
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		e.Encode(info)
		return
	}
	fmt.Fprintf(w, "type:          %s\nversion:       %s\n", info.Type, info.Version)
	if info.BaseVersion != "" {
		fmt.Fprintf(w, "base version:  %s\n", info.BaseVersion)
	}
	fmt.Fprintf(w, "compression:   %s\nencryption:    %s\n", info.Compression, info.Encryption)
	if info.Nonce != "" {
		fmt.Fprintf(w, "nonce:         %s\n", info.Nonce)
	}
	fmt.Fprintf(w, "size:          %d\nsha256:        %s\nstored size:   %d\nstored sha256: %s\nstored check:  %s\n",
		info.Size, info.SHA256, info.StoredSize, info.StoredSHA256, info.StoredCheck)
}

func newPackageUnpackCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "unpack PKG OUT",
		Short: "Decrypt and decompress a package, checking both digests",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var key []byte
			if keyFile != "" {
				var err error
				if key, err = update.LoadKey(keyFile); err != nil {
					return err
				}
			}
			h, err := update.UnpackFile(args[1], args[0], key)
			if err != nil {
				if isIntegrityErr(err) {
					return verificationFailed(err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s %s, %d bytes, sha256 %x\n", args[1], h.Type, h.Version, h.Size, h.SHA256)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "AES key for an encrypted package")
	return cmd
}

func isIntegrityErr(err error) bool {
	for _, e := range []error{update.ErrStoredDigest, update.ErrDigest, update.ErrSize, update.ErrTrailingData, update.ErrTruncated} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
