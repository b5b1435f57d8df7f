package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/otakit/otakit/demo"
)

func init() { commands = append(commands, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "The whole update chain in one command: server, releases, simulated devices, phased rollout",
		Long: `Run the fleet server on loopback with fresh keys, build releases ` + demo.From + ` and
` + demo.To + ` (with a delta) from generated firmware, publish them, start simulated
MCUboot devices on ` + demo.From + ` running the real update agent, and deploy ` + demo.To + `
in two phases. A share of the devices (--fail-rate) fail their health check on
the new image and roll back. The summary gives the outcome per phase and per
device, the bytes the delta saved, and the dashboard's URL; --keep keeps the
server and devices up until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Devices < 1 {
				return fmt.Errorf("--devices %d: at least one device", o.Devices)
			}
			if o.FailRate == 0 {
				o.FailRate = -1 // the package reads 0 as its default
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Out, o.Status = cmd.OutOrStdout(), cmd.ErrOrStderr()
			_, err := demo.Run(ctx, o)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Devices, "devices", 20, "simulated devices")
	f.Float64Var(&o.FailRate, "fail-rate", 0.1, "share of devices whose health check fails on the new image (they roll back)")
	f.BoolVar(&o.Keep, "keep", false, "keep the server and devices running after the rollout, until Ctrl-C")
	f.StringVar(&o.Addr, "addr", "127.0.0.1:0", "server listen address (port 0 picks a free one)")
	f.StringVar(&o.Dir, "dir", "", "folder for keys, releases, server data and device state (default: a temporary folder, removed at the end)")
	return cmd
}
