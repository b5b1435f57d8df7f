package main

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/otakit/otakit/boot"
	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/layout"
)

func init() {
	deviceSubcommands = append(deviceSubcommands, newDeviceInitCmd, newDeviceBootCmd, newDeviceConfirmCmd,
		newDeviceRollbackCmd, newDeviceStatusCmd)
}

// deviceMeta is the sidecar (FLASH.json) that tells later commands how the
// simulated device is built: its partition map, swap mode and the public
// keys its boot loader trusts.
type deviceMeta struct {
	Map        json.RawMessage `json:"map"`
	Mode       layout.Mode     `json:"mode"`
	MaxSectors int             `json:"max_sectors"`
	Keys       []string        `json:"keys"` // PEM public keys
}

type simDevice struct {
	*boot.Device
	meta deviceMeta
}

func (d *simDevice) Close() error { return d.Flash.Close() }

func openSimDevice(path string) (*simDevice, error) {
	raw, err := os.ReadFile(path + ".json")
	if err != nil {
		return nil, fmt.Errorf("device description: %w (create the device with ota device init)", err)
	}
	var meta deviceMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, fmt.Errorf("%s.json: %w", path, err)
	}
	m, err := layout.ParseJSON(meta.Map)
	if err != nil {
		return nil, fmt.Errorf("%s.json: %w", path, err)
	}
	cfg := boot.Config{Mode: meta.Mode, MaxImgSectors: meta.MaxSectors}
	for _, k := range meta.Keys {
		pub, err := keys.ParsePublic([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("%s.json: trusted key: %w", path, err)
		}
		cfg.Keys = append(cfg.Keys, pub)
	}
	fd, err := flash.Open(path)
	if err != nil {
		return nil, err
	}
	d, err := boot.OpenDevice(fd, m, cfg)
	if err != nil {
		fd.Close()
		return nil, err
	}
	return &simDevice{d, meta}, nil
}

func flashFlag(c *cobra.Command, p *string) {
	c.Flags().StringVar(p, "flash", "device.flash", "flash file of the simulated device (its description is FLASH.json)")
}

func newDeviceInitCmd() *cobra.Command {
	var flashPath, mapPath, mode, image string
	var keyPaths []string
	var maxSectors int
	var force bool
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a simulated MCUboot device: erased flash per the map, factory image in the primary slot",
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
			mj, err := m.JSON()
			if err != nil {
				return err
			}
			meta := deviceMeta{Map: mj, Mode: md, MaxSectors: maxSectors}
			for _, p := range keyPaths {
				pub, err := loadPublicOrPrivate(c, p)
				if err != nil {
					return err
				}
				der, err := x509.MarshalPKIXPublicKey(pub)
				if err != nil {
					return err
				}
				meta.Keys = append(meta.Keys, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
			}
			if err := m.Check(layout.CheckOptions{Mode: md, MaxImgSectors: maxSectors}); err != nil {
				return verificationFailed(err)
			}
			var img []byte
			if image != "" {
				if img, err = os.ReadFile(image); err != nil {
					return err
				}
			}
			if _, err := os.Stat(flashPath); err == nil && !force {
				return fmt.Errorf("%s exists; use --force to replace the device", flashPath)
			}
			fd, err := flash.Create(flashPath, m.Flash)
			if err != nil {
				return err
			}
			defer fd.Close()
			mb, _ := json.MarshalIndent(meta, "", "  ")
			if err := os.WriteFile(flashPath+".json", mb, 0o644); err != nil {
				return err
			}
			d, err := boot.OpenDevice(fd, m, boot.Config{Mode: md, MaxImgSectors: maxSectors})
			if err != nil {
				return err
			}
			if img != nil {
				if err := d.Loader.WritePrimary(img); err != nil {
					return err
				}
				if st, err := d.Loader.Status(); err == nil && st[boot.Primary].State.Magic == boot.MagicUnset {
					// A bare image: mark it confirmed, as --pad --confirm would.
					if err := d.Loader.MarkPrimaryConfirmed(); err != nil {
						return err
					}
				}
			}
			fmt.Fprintf(c.OutOrStdout(), "created %s (%d bytes, %s) and %s.json\n", flashPath, m.Flash.Size(), md, flashPath)
			return nil
		},
	}
	flashFlag(initCmd, &flashPath)
	initCmd.Flags().StringVar(&mapPath, "map", "", "partition map (JSON, YAML or .dts); default: the spec preset")
	initCmd.Flags().StringVar(&mode, "mode", "swap-scratch", "swap mode: swap-scratch, swap-move or overwrite-only")
	initCmd.Flags().StringVar(&image, "image", "", "factory image for the primary slot (a signed MCUboot image)")
	initCmd.Flags().StringArrayVar(&keyPaths, "key", nil, "public key the boot loader trusts (repeatable); none: hash-only validation")
	initCmd.Flags().IntVar(&maxSectors, "max-sectors", 128, "MCUboot's BOOT_MAX_IMG_SECTORS")
	initCmd.Flags().BoolVar(&force, "force", false, "replace an existing flash file")
	return initCmd
}

// deviceAction builds a subcommand that opens the simulated device and
// runs fn on it.
func deviceAction(use, short string, fn func(c *cobra.Command, d *simDevice) error) *cobra.Command {
	var flashPath string
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d, err := openSimDevice(flashPath)
			if err != nil {
				return err
			}
			defer d.Close()
			return fn(c, d)
		},
	}
	flashFlag(c, &flashPath)
	return c
}

func newDeviceBootCmd() *cobra.Command {
	return deviceAction("boot", "Reset the simulated device: run the boot loader (swap, revert or resume) and report what runs",
		func(c *cobra.Command, d *simDevice) error { return runBoot(c.OutOrStdout(), d) })
}

func newDeviceConfirmCmd() *cobra.Command {
	return deviceAction("confirm", "Confirm the running image (MCUboot image_ok), so a test image is kept",
		func(c *cobra.Command, d *simDevice) error {
			if err := d.Loader.Confirm(); err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), "confirmed")
			return nil
		})
}

func newDeviceRollbackCmd() *cobra.Command {
	return deviceAction("rollback", "Go back to the previous image: revert a test image now, or swap the image in slot B back in",
		func(c *cobra.Command, d *simDevice) error {
			trial, err := d.Loader.Trial()
			if err != nil {
				return err
			}
			if !trial {
				st, err := d.Loader.Status()
				if err != nil {
					return err
				}
				if st[boot.Secondary].Err != nil {
					return verificationFailed(fmt.Errorf("%w: no valid image in slot B to roll back to: %v", boot.ErrState, st[boot.Secondary].Err))
				}
				if err := d.Loader.SetPending(true); err != nil {
					return err
				}
			}
			return runBoot(c.OutOrStdout(), d)
		})
}

func newDeviceStatusCmd() *cobra.Command {
	var asJSON bool
	c := deviceAction("status", "Show each slot's trailer and image: magic, image_ok, copy_done, swap_type, version, crc32",
		func(c *cobra.Command, d *simDevice) error { return printStatus(c.OutOrStdout(), d, asJSON) })
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func runBoot(w io.Writer, d *simDevice) error {
	res, err := d.Loader.Boot()
	if err != nil {
		if errors.Is(err, boot.ErrNoBootable) {
			return verificationFailed(err)
		}
		return err
	}
	state := "confirmed"
	if !res.Confirmed {
		state = "testing (confirm it, or the next boot reverts)"
	}
	fmt.Fprintf(w, "swap: %v", res.SwapType)
	if res.Resumed {
		fmt.Fprint(w, " (resumed after a reset)")
	}
	fmt.Fprintf(w, "\nbooted: %v, %s\n", res.Image.Version, state)
	if res.Rejected != nil {
		fmt.Fprintf(w, "rejected slot B: %v\n", res.Rejected)
	}
	return nil
}

type slotJSON struct {
	Slot     string `json:"slot"`
	Magic    string `json:"magic"`
	ImageOK  string `json:"image_ok"`
	CopyDone string `json:"copy_done"`
	SwapType string `json:"swap_type"`
	Version  string `json:"version,omitempty"`
	CRC32    string `json:"crc32,omitempty"`
	Size     int    `json:"size,omitempty"`
	Valid    bool   `json:"valid"`
	Error    string `json:"error,omitempty"`
}

func printStatus(w io.Writer, d *simDevice, asJSON bool) error {
	st, err := d.Loader.Status()
	if err != nil {
		return err
	}
	var rows []slotJSON
	for _, s := range st {
		r := slotJSON{Slot: s.Slot.String(), Magic: s.State.Magic.String(), ImageOK: s.State.ImageOK.String(),
			CopyDone: s.State.CopyDone.String(), SwapType: s.State.SwapType.String(), Valid: s.Err == nil}
		if s.Image != nil {
			r.Version, r.CRC32, r.Size = s.Image.Version.String(), fmt.Sprintf("0x%08x", s.Image.CRC32), s.Image.Size
		}
		if s.Err != nil {
			r.Error = s.Err.Error()
		}
		rows = append(rows, r)
	}
	var counter uint64
	if d.Store != nil {
		counter, _ = d.Store.Counter(boot.SecurityCounterKey)
	}
	next := boot.DecideSwap(st[boot.Primary].State, st[boot.Secondary].State)
	if asJSON {
		b, _ := json.MarshalIndent(map[string]any{"mode": d.meta.Mode, "slots": rows, "security_counter": counter, "next_boot": next.String()}, "", "  ")
		fmt.Fprintln(w, string(b))
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "slot\tmagic\timage_ok\tcopy_done\tswap_type\tversion\tcrc32\tsize\tvalid")
	for _, r := range rows {
		valid := "yes"
		if !r.Valid {
			valid = "no: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Slot, r.Magic, r.ImageOK, r.CopyDone, r.SwapType, dash(r.Version), dash(r.CRC32), r.Size, valid)
	}
	tw.Flush()
	fmt.Fprintf(w, "mode: %s, security counter: %d, next boot: %v\n", d.meta.Mode, counter, next)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// loadPublicOrPrivate reads a PEM public key, or derives it from a
// private key (asking for its password if it is encrypted).
func loadPublicOrPrivate(cmd *cobra.Command, path string) (crypto.PublicKey, error) {
	if pub, err := keys.LoadPublic(path); err == nil {
		return pub, nil
	}
	priv, err := loadPrivateKeyPrompt(cmd, path)
	if err != nil {
		return nil, err
	}
	return keys.PublicOf(priv)
}
