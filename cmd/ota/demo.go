package main

// The demo runs the image chain on a generated sample. The fleet work will
// replace it with the whole update chain; until then it shows keygen →
// sign → verify → dumpinfo → encrypt/decrypt as the exact ota commands.

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/otakit/otakit/keys"
)

func init() { commands = append(commands, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the image chain on a generated sample: keygen, sign, verify, dumpinfo, encrypt, decrypt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "ota-demo-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			return runDemo(cmd, dir)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo directory")
	return cmd
}

func runDemo(cmd *cobra.Command, dir string) error {
	out := cmd.OutOrStdout()
	p := func(name string) string { return filepath.Join(dir, name) }
	step := func(title string) { fmt.Fprintf(out, "\n== %s\n", title) }

	step("keygen: an Ed25519 signing key and an X25519 encryption key")
	for _, k := range []struct {
		t    keys.Type
		file string
	}{{keys.Ed25519, "signing.pem"}, {keys.X25519, "encryption.pem"}} {
		priv, err := keys.Generate(k.t)
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p(k.file), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return err
		}
		pub, err := keys.PublicOf(priv)
		if err != nil {
			return err
		}
		pubPEM, err := keys.PublicPEM(pub)
		if err != nil {
			return err
		}
		pubFile := strings.TrimSuffix(k.file, ".pem") + ".pub.pem"
		if err := os.WriteFile(p(pubFile), pubPEM, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s and %s (%s)\n", p(k.file), p(pubFile), k.t)
	}

	step("firmware: a 96 KiB sample application")
	fw := make([]byte, 96<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range fw {
		fw[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(p("app.bin"), fw, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s\n", p("app.bin"))

	commands := [][]string{
		{"sign", "-k", p("signing.pem"), "-v", "1.2.3+4", "-H", "0x200", "--pad-header", "-S", "0x60000",
			"--align", "4", "--confirm", "-s", "auto", p("app.bin"), p("app-signed.bin")},
		{"verify", "-k", p("signing.pub.pem"), p("app-signed.bin")},
		{"dumpinfo", p("app-signed.bin")},
		{"sign", "-k", p("signing.pem"), "-v", "1.2.4", "-H", "0x200", "--pad-header", "-S", "0x60000",
			"-E", p("encryption.pub.pem"), p("app.bin"), p("app-encrypted.bin")},
		{"verify", "-k", p("signing.pub.pem"), "--decrypt-key", p("encryption.pem"), p("app-encrypted.bin")},
		{"decrypt", "-k", p("encryption.pem"), p("app-encrypted.bin"), p("app-decrypted.bin")},
		{"verify", "-k", p("signing.pub.pem"), p("app-decrypted.bin")},
	}
	for _, args := range commands {
		step("ota " + strings.Join(args, " "))
		root := newRootCmd(out, cmd.ErrOrStderr())
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			return fmt.Errorf("demo step %q: %w", args[0], err)
		}
		if args[0] == "sign" || args[0] == "decrypt" {
			fi, err := os.Stat(args[len(args)-1])
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %s (%d bytes)\n", args[len(args)-1], fi.Size())
		}
	}
	fmt.Fprintln(out, "\ndemo finished: the image chain works end to end")
	return nil
}
