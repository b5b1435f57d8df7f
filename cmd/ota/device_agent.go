package main

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/otakit/otakit/agent"
	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/manifest"
	"github.com/otakit/otakit/update"
)

// deviceSubcommands are the constructors of the `ota device` subcommands.
// Each command file of the device group appends to it from init (this file:
// install and run; device.go: status, boot, confirm, rollback), and
// newDeviceCmd adds them all, so the files stay independent.
var deviceSubcommands []func() *cobra.Command

func init() {
	commands = append(commands, newDeviceCmd)
	deviceSubcommands = append(deviceSubcommands, newDeviceInstallCmd, newDeviceRunCmd)
}

// newDeviceCmd is the `ota device` group: a simulated device (MCUboot
// flash) or a Linux gateway's slots, and the update agent that drives them.
func newDeviceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Simulated devices and the update agent: install, run, status, boot, confirm, rollback",
	}
	for _, newCmd := range deviceSubcommands {
		cmd.AddCommand(newCmd())
	}
	return cmd
}

// agentFlags are the flags that build an agent.
type agentFlags struct {
	flash          string
	slots          []string
	slotState      string
	hook           string
	stateDir       string
	imageKeys      []string
	manifestKeys   []string
	threshold      int
	packageKey     string
	confirmTimeout time.Duration
	hardware       string
	bootloader     string
	patch          bool
}

func (f *agentFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.flash, "flash", "", "simulated device: file-backed MCUboot flash image")
	fl.StringSliceVar(&f.slots, "slots", nil, "Linux gateway: the two slot files or block devices, A,B (A runs first)")
	fl.StringVar(&f.slotState, "slot-state", "", "Linux gateway: slot state file (default: slots.json in --state)")
	fl.StringVar(&f.hook, "hook", "", "Linux gateway: boot-switch command, run as: HOOK SLOT, with OTA_ACTION=test|confirm|revert|cancel")
	fl.StringVar(&f.stateDir, "state", "", "agent state directory (default: FLASH.agent, or .ota-agent beside slot A)")
	fl.StringArrayVarP(&f.imageKeys, "key", "k", nil, "trusted image-signing public key PEM; repeat for several")
	fl.StringArrayVar(&f.manifestKeys, "manifest-key", nil, "trusted manifest-signing public key PEM; repeat for several")
	fl.IntVar(&f.threshold, "threshold", 1, "manifest signatures required from --manifest-key keys")
	fl.StringVar(&f.packageKey, "package-key", "", "AES key file that decrypts encrypted update packages")
	fl.DurationVar(&f.confirmTimeout, "confirm-timeout", agent.DefaultConfirmTimeout, "how long a new image may run unconfirmed before it is reverted")
	fl.StringVar(&f.hardware, "hardware", "", "hardware revision reported to the server and checked against manifests")
	fl.StringVar(&f.bootloader, "bootloader-version", "", "bootloader version reported and checked against manifests")
	fl.BoolVar(&f.patch, "delta", true, "accept delta updates")
}

// device is an opened device: its agent configuration and what to close.
type device struct {
	cfg   agent.Config
	close func() error
}

func (f *agentFlags) open(stderr io.Writer, progress func(agent.Status)) (*device, error) {
	if len(f.imageKeys) == 0 {
		return nil, errors.New("at least one --key (trusted image key) is needed")
	}
	var pubs []crypto.PublicKey
	for _, p := range f.imageKeys {
		k, err := keys.LoadPublic(p)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, k)
	}
	cfg := agent.Config{
		Device:         agent.Device{HardwareRevision: f.hardware, BootloaderVersion: f.bootloader},
		Images:         agent.MCUbootImages{Keys: pubs},
		ConfirmTimeout: f.confirmTimeout,
		Progress:       progress,
		RetryDelay:     time.Second,
		Logger:         slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if len(f.manifestKeys) > 0 {
		var mpubs []crypto.PublicKey
		for _, p := range f.manifestKeys {
			k, err := keys.LoadPublic(p)
			if err != nil {
				return nil, err
			}
			mpubs = append(mpubs, k)
		}
		ks, err := manifest.NewKeySet(f.threshold, mpubs...)
		if err != nil {
			return nil, err
		}
		cfg.Manifests = agent.ManifestKeys{Keys: ks}
	}
	var pkgKey []byte
	if f.packageKey != "" {
		k, err := update.LoadKey(f.packageKey)
		if err != nil {
			return nil, err
		}
		pkgKey = k
	}
	cfg.Unpacker = agent.Packages{Key: pkgKey}
	if f.patch {
		cfg.Patcher = deltaPatcher()
	}
	d := &device{cfg: cfg, close: func() error { return nil }}
	switch {
	case f.flash != "" && len(f.slots) > 0:
		return nil, errors.New("--flash and --slots exclude each other")
	case f.flash != "":
		if err := openFlashDevice(f.flash, d); err != nil {
			return nil, err
		}
		if f.stateDir == "" {
			f.stateDir = f.flash + ".agent"
		}
	case len(f.slots) == 2:
		if f.stateDir == "" {
			f.stateDir = filepath.Join(filepath.Dir(f.slots[0]), ".ota-agent")
		}
		if f.slotState == "" {
			f.slotState = filepath.Join(f.stateDir, "slots.json")
		}
		ls := &agent.LinuxSlots{A: f.slots[0], B: f.slots[1], StatePath: f.slotState}
		if f.hook != "" {
			ls.Hook = strings.Fields(f.hook)
		}
		d.cfg.Slots = ls
	default:
		return nil, errors.New("give the device: --flash FILE, or --slots A,B")
	}
	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		return nil, err
	}
	if d.cfg.Store == nil {
		d.cfg.Store = agent.FileStore{Path: filepath.Join(f.stateDir, "state.json")}
	}
	d.cfg.WorkDir = filepath.Join(f.stateDir, "work")
	return d, nil
}

// printProgress writes one line per state change and per 10% of download.
func printProgress(w io.Writer) func(agent.Status) {
	last := ""
	return func(st agent.Status) {
		line := fmt.Sprintf("%-14s %3d%%", st.State, st.Progress)
		if st.State == agent.Downloading && st.Details.TotalBytes > 0 {
			if st.Progress%10 != 0 && st.Details.BytesReceived != st.Details.TotalBytes {
				return
			}
			line += fmt.Sprintf("  %d/%d bytes", st.Details.BytesReceived, st.Details.TotalBytes)
		}
		if st.Version != "" {
			line += "  " + st.Version
		}
		if st.Error != "" {
			line += "  error: " + st.Error
		}
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
	}
}

// agentError maps refusals to exit code 1.
func agentError(err error) error {
	for _, e := range []error{agent.ErrImage, agent.ErrDowngrade, agent.ErrDigest, agent.ErrManifest} {
		if errors.Is(err, e) {
			return verificationFailed(err)
		}
	}
	return err
}

func newDeviceInstallCmd() *cobra.Command {
	var f agentFlags
	var reboot, confirm bool
	cmd := &cobra.Command{
		Use:   "install (--flash DEV | --slots A,B) -k KEY [--reboot [--confirm]] PACKAGE|IMAGE",
		Short: "Install an update package or signed image into the secondary slot, as the agent would",
		Long: `Install runs the agent's local update: the package (or raw MCUboot image)
is copied in, its digests and the image's signature and security counter are
checked, the image goes into the secondary slot (a delta package is applied
against the running image) and is marked for a test boot. The device then
waits in PENDING_REBOOT; --reboot resets it so that the new image runs on trial
(TESTING), and --confirm confirms it. Exit code 1 means the update was refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if confirm {
				reboot = true
			}
			out := cmd.OutOrStdout()
			d, err := f.open(cmd.ErrOrStderr(), printProgress(out))
			if err != nil {
				return err
			}
			defer d.close()
			a, err := agent.New(d.cfg)
			if err != nil {
				return err
			}
			if err := a.Start(); err != nil {
				return err
			}
			if err := a.InstallFile(cmd.Context(), args[0]); err != nil {
				return agentError(err)
			}
			if reboot {
				if err := a.Reboot(); err != nil {
					return err
				}
			}
			if confirm {
				if err := a.Confirm(0); err != nil {
					return err
				}
			}
			info, err := a.Running()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "state %s, running %s\n", a.State(), info.Version)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reset the device after the install, starting the trial boot")
	cmd.Flags().BoolVar(&confirm, "confirm", false, "reboot and confirm the new image")
	return cmd
}

func newDeviceRunCmd() *cobra.Command {
	var f agentFlags
	var server, manifestURL, token, tokenFile, health, healthCmd, id string
	var poll time.Duration
	var once bool
	cmd := &cobra.Command{
		Use:   "run (--server URL --token T | --manifest-url URL) (--flash DEV | --slots A,B) -k KEY --manifest-key KEY",
		Short: "Run the update agent of a simulated device against a server",
		Long: `Run checks in with the fleet server (--server, the device API of 'ota serve',
authenticated by the device's --token) or polls a signed manifest on a plain
HTTP file server (--manifest-url). An offered update is downloaded (resuming
after drops), verified, applied to the secondary slot and marked for test; the
simulated device then resets, runs its health check (--health pass|fail, or
the command --health-cmd, for gateways) and
confirms the new image, or lets it revert when the confirmation deadline passes.
Progress is printed and reported to the server in the updateStatus shape.
--once stops after one update cycle.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if (server == "") == (manifestURL == "") {
				return errors.New("give exactly one of --server and --manifest-url")
			}
			if health != "pass" && health != "fail" {
				return fmt.Errorf("--health %q: want pass or fail", health)
			}
			d, err := f.open(cmd.ErrOrStderr(), printProgress(out))
			if err != nil {
				return err
			}
			defer d.close()
			if d.cfg.Manifests == nil {
				return errors.New("at least one --manifest-key is needed to verify manifests")
			}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return err
				}
				token = strings.TrimSpace(string(b))
			}
			var fleet *agent.FleetServer
			if server != "" {
				fleet = &agent.FleetServer{URL: server, Token: token}
				d.cfg.Server = fleet
			} else {
				d.cfg.Server = &agent.HTTPServer{ManifestURL: manifestURL, Token: token}
			}
			d.cfg.Device.ID = id
			a, err := agent.New(d.cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			healthy := func() bool { return health == "pass" }
			if healthCmd != "" {
				// The application's own self-test decides: exit status 0 is healthy.
				healthy = func() bool {
					args := strings.Fields(healthCmd)
					c := exec.CommandContext(ctx, args[0], args[1:]...)
					c.Stdout, c.Stderr = out, cmd.ErrOrStderr()
					return c.Run() == nil
				}
			}
			loop := &agent.Loop{Agent: a, Log: out, Healthy: healthy,
				Poll: func() time.Duration {
					if fleet != nil && fleet.PollSeconds > 0 {
						return time.Duration(fleet.PollSeconds) * time.Second
					}
					return poll
				}}
			return agentError(loop.Run(ctx, once))
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&server, "server", "", "fleet server base URL (device API)")
	cmd.Flags().StringVar(&manifestURL, "manifest-url", "", "signed manifest on a plain HTTP file server; artifacts are fetched relative to it")
	cmd.Flags().StringVar(&token, "token", "", "device token")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the device token")
	cmd.Flags().StringVar(&id, "id", "", "device id (for logs)")
	cmd.Flags().StringVar(&health, "health", "pass", "outcome of the simulated health check after an update: pass or fail")
	cmd.Flags().StringVar(&healthCmd, "health-cmd", "", "health check command run on a new image (exit 0: confirm); overrides --health")
	cmd.Flags().DurationVar(&poll, "poll", 30*time.Second, "check-in interval when the server does not set one")
	cmd.Flags().BoolVar(&once, "once", false, "stop after one check-in and update cycle")
	return cmd
}
