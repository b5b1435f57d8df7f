package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/layout"
)

func init() { commands = append(commands, newLayoutCmd) }

// loadMap reads a partition map: the preset when path is empty, a Zephyr
// devicetree for .dts/.dtsi/.overlay files, else JSON or YAML.
func loadMap(path string) (*layout.Map, error) {
	if path == "" || path == "preset" {
		return layout.Preset(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m *layout.Map
	switch strings.ToLower(filepath.Ext(path)) {
	case ".dts", ".dtsi", ".overlay":
		m, err = layout.ImportDTS(data)
	default:
		m, err = layout.Parse(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func newLayoutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "layout",
		Short: "Show, check and import flash partition maps; print MCUboot build configuration",
	}
	var mapPath string
	cmd.PersistentFlags().StringVar(&mapPath, "map", "", "partition map (JSON, YAML or .dts); default: the spec preset")

	var asJSON bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the partition map",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			m, err := loadMap(mapPath)
			if err != nil {
				return err
			}
			if asJSON {
				j, err := m.JSON()
				if err != nil {
					return err
				}
				fmt.Fprintln(c.OutOrStdout(), string(j))
				return nil
			}
			fmt.Fprint(c.OutOrStdout(), m.String())
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print the map as JSON (the form --map reads)")

	var mode string
	var maxSectors int
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the map: overlaps, sector alignment, equal slots, trailer and scratch size (exit 1 if invalid)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			m, err := loadMap(mapPath)
			if err != nil {
				return err
			}
			md, err := layout.ParseMode(mode)
			if err != nil {
				return err
			}
			if err := m.Check(layout.CheckOptions{Mode: md, MaxImgSectors: maxSectors}); err != nil {
				return verificationFailed(err)
			}
			fmt.Fprintf(c.OutOrStdout(), "ok: %d partitions, valid for %s\n", len(m.Partitions), md)
			return nil
		},
	}
	check.Flags().StringVar(&mode, "mode", "swap-scratch", "swap mode: swap-scratch, swap-move or overwrite-only")
	check.Flags().IntVar(&maxSectors, "max-sectors", 128, "MCUboot's BOOT_MAX_IMG_SECTORS")

	importDTS := &cobra.Command{
		Use:   "import-dts FILE.dts",
		Short: "Convert a Zephyr devicetree fixed-partitions node into a JSON partition map",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			m, err := layout.ImportDTS(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			j, err := m.JSON()
			if err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), string(j))
			return nil
		},
	}

	var keyPath, sigType string
	cfg := &cobra.Command{
		Use:   "mcuboot-config",
		Short: "Print sysbuild.conf / prj.conf lines for a swap mode and signing key",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			md, err := layout.ParseMode(mode)
			if err != nil {
				return err
			}
			sig, bits := strings.ToUpper(strings.ReplaceAll(sigType, "-", "_")), 0
			if keyPath != "" {
				k, err := keys.LoadPrivate(keyPath, nil)
				if err != nil {
					pub, perr := keys.LoadPublic(keyPath)
					if perr != nil {
						return err
					}
					k = pub
				}
				if sig, bits, err = layout.SignatureType(k); err != nil {
					return err
				}
				if abs, err := filepath.Abs(keyPath); err == nil {
					keyPath = abs
				}
			}
			if sig == "" {
				return fmt.Errorf("give --key or --sig-type")
			}
			m, err := loadMap(mapPath)
			if err != nil {
				return err
			}
			n := 0
			if a, ok := m.Find(layout.SlotA); ok {
				n = len(m.SectorsOf(a))
			}
			out, err := layout.MCUbootConfig(md, sig, keyPath, bits, n)
			if err != nil {
				return err
			}
			fmt.Fprint(c.OutOrStdout(), out)
			return nil
		},
	}
	cfg.Flags().StringVar(&mode, "mode", "swap-scratch", "swap mode: swap-scratch, swap-move or overwrite-only")
	cfg.Flags().StringVar(&keyPath, "key", "", "signing key (PEM); its type selects the signature type")
	cfg.Flags().StringVar(&sigType, "sig-type", "", "signature type without a key: ecdsa-p256, ed25519 or rsa")

	cmd.AddCommand(show, check, importDTS, cfg)
	return cmd
}
