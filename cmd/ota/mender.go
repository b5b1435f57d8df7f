package main

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// menderOptions wires the Mender device API of `ota serve`: auth sets in
// the fleet database, the HMAC secret for JWTs and download URLs in
// DATA/mender-secret (made on first use, so tokens survive restarts).
func menderOptions(f *pflag.FlagSet, auth fleet.AuthSetService, data string) (*fleethttp.MenderOptions, error) {
	if on, _ := f.GetBool("mender"); !on {
		return nil, nil
	}
	auto, _ := f.GetBool("mender-auto-accept")
	hexSecret, err := adminTokenFile(filepath.Join(data, "mender-secret"))
	if err != nil {
		return nil, err
	}
	secret, err := hex.DecodeString(strings.TrimPrefix(hexSecret, "ota_"))
	if err != nil || len(secret) < 16 {
		return nil, fmt.Errorf("%s: not a hex secret", filepath.Join(data, "mender-secret"))
	}
	return &fleethttp.MenderOptions{AuthSets: auth, AutoAccept: auto, Secret: secret}, nil
}

// addAuthSetCmds adds `ota devices pending|accept|reject` for devices that
// join with a key (Mender clients).
func addAuthSetCmds(cmd *cobra.Command, cf *clientFlags) {
	pending := &cobra.Command{
		Use: "pending", Short: "List devices waiting for acceptance (Mender auth requests)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			status, _ := cmd.Flags().GetString("status")
			as, err := c.AuthSets(cmd.Context(), status)
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), as)
			}
			for _, a := range as {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", a.DeviceID, a.Status, a.IdentityData)
			}
			return nil
		},
	}
	pending.Flags().String("status", fleet.AuthPending, "pending, accepted, rejected, or empty for all")
	cmd.AddCommand(pending)
	for _, action := range []string{"accept", "reject"} {
		cmd.AddCommand(&cobra.Command{
			Use: action + " ID", Short: strings.ToUpper(action[:1]) + action[1:] + " a device's auth request", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cf.client()
				if err != nil {
					return err
				}
				a, err := c.SetAuthStatus(cmd.Context(), args[0], action)
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), a)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", a.DeviceID, a.Status)
				return nil
			},
		})
	}
}
