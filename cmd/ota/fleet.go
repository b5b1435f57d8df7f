package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/spf13/cobra"
)

func init() {
	commands = append(commands, newPublishCmd, newDeploymentsCmd, newDevicesCmd)
}

// clientFlags are shared by the fleet client commands.
type clientFlags struct {
	server, token, ca string
	json              bool
}

func (c *clientFlags) add(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.server, "server", "", "fleet server URL (default $OTA_SERVER or http://127.0.0.1:8080)")
	f.StringVar(&c.token, "token", "", "admin API token (default $OTA_ADMIN_TOKEN)")
	f.StringVar(&c.ca, "ca", "", "PEM certificate to trust for https (e.g. the --dev-tls cert)")
	f.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *clientFlags) client() (*fleethttp.Client, error) {
	server, token := c.server, c.token
	if server == "" {
		server = os.Getenv("OTA_SERVER")
	}
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	if token == "" {
		token = os.Getenv("OTA_ADMIN_TOKEN")
	}
	if token == "" {
		return nil, fmt.Errorf("no admin token: give --token or set OTA_ADMIN_TOKEN")
	}
	hc := &http.Client{Timeout: 0}
	if c.ca != "" {
		pem, err := os.ReadFile(c.ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", c.ca)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	return fleethttp.NewClient(server, token, hc), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newPublishCmd() *cobra.Command {
	var cf clientFlags
	var version string
	cmd := &cobra.Command{
		Use:   "publish DIR | publish --version V FILE",
		Short: "Upload a release folder (from ota release), or one file as a release, to the fleet server",
		Long: `Upload a release folder (from ota release) to the fleet server. With --version,
upload a single file (such as a SWUpdate .swu for hawkBit DDI devices) as
that release's full image, with a generated unsigned manifest.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var rel *fleet.Release
			if version != "" {
				rel, err = c.PublishFile(cmd.Context(), version, args[0])
			} else {
				rel, err = c.Publish(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), rel)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published release %s (%d artifacts)\n", rel.Version, len(rel.Artifacts))
			for _, a := range rel.Artifacts {
				from := ""
				if a.FromVersion != "" {
					from = " from " + a.FromVersion
				}
				fmt.Fprintf(cmd.OutOrStdout(), "  %-6s %-40s %10d  %s%s\n", a.Kind, a.Name, a.Size, a.SHA256[:16], from)
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&version, "version", "", "publish one FILE as this release version (e.g. a .swu)")
	return cmd
}

// parsePhases reads "10%,30%,60%" (shares) or "5,20,100" (batch sizes).
func parsePhases(s string) ([]fleet.Phase, error) {
	if s == "" {
		return nil, nil
	}
	var out []fleet.Phase
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if v, ok := strings.CutSuffix(p, "%"); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 || f > 100 {
				return nil, fmt.Errorf("--phases: %q is not a percentage in (0,100]", p)
			}
			out = append(out, fleet.Phase{Percent: f})
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--phases: %q is neither N%% nor a batch size", p)
		}
		out = append(out, fleet.Phase{Count: n})
	}
	return out, nil
}

func newDeploymentsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "deployments", Aliases: []string{"deployment"}, Short: "Create and steer phased rollouts"}
	cf.add(cmd)

	var nd fleethttp.NewDeployment
	var phases, start string
	var advance, pause float64
	create := &cobra.Command{
		Use:   "create",
		Short: "Roll a release out to a group, tags or devices",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if nd.Phases, err = parsePhases(phases); err != nil {
				return err
			}
			if start != "" {
				if nd.StartAt, err = time.Parse(time.RFC3339, start); err != nil {
					return fmt.Errorf("--start: %w", err)
				}
			}
			nd.AdvanceAt, nd.PauseAt = advance/100, pause/100
			c, err := cf.client()
			if err != nil {
				return err
			}
			d, err := c.CreateDeployment(cmd.Context(), nd)
			if err != nil {
				return err
			}
			return showDeployment(cmd.OutOrStdout(), d, cf.json)
		},
	}
	f := create.Flags()
	f.StringVar(&nd.Release, "release", "", "release version (required)")
	f.StringVar(&nd.Name, "name", "", "deployment name")
	f.StringVar(&nd.Target.Group, "group", "", "target devices in this group")
	f.StringSliceVar(&nd.Target.Tags, "tag", nil, "target devices carrying every given tag")
	f.StringSliceVar(&nd.Target.Devices, "device", nil, "target these device ids")
	f.StringVar(&phases, "phases", "", `rollout phases: shares "10%,40%,50%" or batch sizes "5,50,500"`)
	f.Float64Var(&advance, "advance-at", 100, "start the next phase at this phase success rate, percent")
	f.Float64Var(&pause, "pause-at", 0, "pause when the failure rate exceeds this, percent (0: never)")
	f.StringVar(&start, "start", "", "scheduled start, RFC 3339")
	create.MarkFlagRequired("release")

	list := &cobra.Command{
		Use: "list", Short: "List deployments", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ds, err := c.Deployments(cmd.Context())
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), ds)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRELEASE\tSTATE\tPHASE\tDEVICES\tSUCCESS\tFAILURE\tCREATED")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%s\n", d.ID, d.ReleaseID, d.State, d.CurrentPhase+1,
					len(d.Stats.Phases), d.Stats.Total, d.Stats.States[fleet.ExecSuccess], d.Stats.States[fleet.ExecFailure],
					d.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	show := &cobra.Command{
		Use: "show ID", Short: "Show a deployment with per-phase statistics", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			d, err := c.Deployment(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return showDeployment(cmd.OutOrStdout(), d, cf.json)
		},
	}
	cmd.AddCommand(create, list, show)
	for _, action := range []string{"pause", "resume", "cancel"} {
		cmd.AddCommand(&cobra.Command{
			Use: action + " ID", Short: strings.ToUpper(action[:1]) + action[1:] + " a deployment", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cf.client()
				if err != nil {
					return err
				}
				d, err := c.DeploymentAction(cmd.Context(), args[0], action)
				if err != nil {
					return err
				}
				return showDeployment(cmd.OutOrStdout(), d, cf.json)
			},
		})
	}
	return cmd
}

func showDeployment(w io.Writer, d *fleet.Deployment, asJSON bool) error {
	if asJSON {
		return printJSON(w, d)
	}
	fmt.Fprintf(w, "deployment %s: release %s, %s, phase %d of %d\n", d.ID, d.ReleaseID, d.State, d.CurrentPhase+1, len(d.Stats.Phases))
	if d.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", d.Reason)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PHASE\tDEVICES\tPENDING\tIN PROGRESS\tSUCCESS\tFAILURE\tCANCELED\tSKIPPED")
	for _, p := range d.Stats.Phases {
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", p.Phase+1, p.Total, p.Pending, p.InProgress, p.Success, p.Failure, p.Canceled, p.Skipped)
	}
	return tw.Flush()
}

func newDevicesCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "devices", Short: "Provision and inspect devices on the fleet server"}
	cf.add(cmd)
	addAuthSetCmds(cmd, &cf)

	var nd fleethttp.NewDevice
	add := &cobra.Command{
		Use: "add ID", Short: "Provision a device and print its token (shown only once)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			nd.ID = args[0]
			p, err := c.CreateDevice(cmd.Context(), nd)
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "device %s provisioned\ntoken: %s\n", p.ID, p.Token)
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&nd.Group, "group", "", "group")
	f.StringSliceVar(&nd.Tags, "tag", nil, "tags")
	f.StringVar(&nd.HardwareRevision, "hw", "", "hardware revision")
	f.StringVar(&nd.BootloaderVersion, "bootloader", "", "bootloader version")
	f.StringVar(&nd.CurrentVersion, "version", "", "firmware version it runs")

	var group, tag string
	list := &cobra.Command{
		Use: "list", Short: "List devices", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ds, err := c.Devices(cmd.Context(), group, tag)
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), ds)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tGROUP\tTAGS\tVERSION\tHW\tSTATE\tLAST SEEN")
			for _, d := range ds {
				seen := "never"
				if !d.LastSeen.IsZero() {
					seen = d.LastSeen.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Group, strings.Join(d.Tags, ","), d.CurrentVersion,
					d.HardwareRevision, d.State, seen)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&group, "group", "", "only this group")
	list.Flags().StringVar(&tag, "tag", "", "only devices with this tag")
	show := &cobra.Command{
		Use: "show ID", Short: "Show a device and its update history", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			d, err := c.Device(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			es, err := c.DeviceExecutions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"device": d, "executions": es})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "device %s: version %s, hw %s, bootloader %s, group %q, tags %v, state %s, last seen %s\n",
				d.ID, d.CurrentVersion, d.HardwareRevision, d.BootloaderVersion, d.Group, d.Tags, d.State, d.LastSeen.Format(time.RFC3339))
			for _, e := range es {
				fmt.Fprintf(w, "  deployment %s: %s %d%% %s %s\n", e.DeploymentID, e.State, e.Progress, e.Artifact, e.Error)
				for _, ev := range e.History {
					fmt.Fprintf(w, "    %s  %-15s %s\n", ev.Time.Format(time.RFC3339), ev.State, ev.Message)
				}
			}
			return nil
		},
	}
	cmd.AddCommand(add, list, show)
	return cmd
}
