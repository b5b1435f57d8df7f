package main

import (
	"bytes"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/otakit/otakit/keys"
)

func init() {
	commands = append(commands, newKeygenCmd, newGetpubCmd, newGetpubhashCmd, newGetprivCmd, newKeyinfoCmd)
}

// keyPasswordEnv holds a key password for non-interactive use.
const keyPasswordEnv = "OTA_KEY_PASSWORD"

// readKeyPasswordFile returns the first line of path (a trailing newline, as
// `echo pw > file` leaves, is not part of the password).
func readKeyPasswordFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return bytes.TrimRight(line, "\r"), nil
}

// promptKeyPassword reads a password from the terminal without echo; with
// confirm it asks twice, as imgtool's keygen -p does.
func promptKeyPassword(cmd *cobra.Command, confirm bool) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("a key password is needed and there is no terminal to ask: set %s or use --password-file", keyPasswordEnv)
	}
	for {
		fmt.Fprint(cmd.ErrOrStderr(), "Enter key passphrase: ")
		pw, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return nil, err
		}
		if !confirm {
			return pw, nil
		}
		fmt.Fprint(cmd.ErrOrStderr(), "Reenter passphrase: ")
		pw2, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return nil, err
		}
		if bytes.Equal(pw, pw2) {
			return pw, nil
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "Passwords do not match, try again")
	}
}

// askKeyPassword returns the password for an encrypted key: from
// --password-file if the command has it set, else $OTA_KEY_PASSWORD, else
// the terminal.
func askKeyPassword(cmd *cobra.Command, confirm bool) ([]byte, error) {
	if f := cmd.Flags().Lookup("password-file"); f != nil && f.Value.String() != "" {
		return readKeyPasswordFile(f.Value.String())
	}
	if pw, ok := os.LookupEnv(keyPasswordEnv); ok {
		return []byte(pw), nil
	}
	return promptKeyPassword(cmd, confirm)
}

// loadPrivateKeyPrompt reads a private key file, asking for the password (see
// askKeyPassword) only if the key is encrypted, as imgtool's load_key does.
func loadPrivateKeyPrompt(cmd *cobra.Command, path string) (crypto.PrivateKey, error) {
	k, err := keys.LoadPrivate(path, nil)
	if !errors.Is(err, keys.ErrPasswordRequired) {
		return k, err
	}
	pw, err := askKeyPassword(cmd, false)
	if err != nil {
		return nil, err
	}
	return keys.LoadPrivate(path, pw)
}

// loadKeyAny reads a private key (asking for its password if it is
// encrypted) or a public key from path.
func loadKeyAny(cmd *cobra.Command, path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil && strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return loadPrivateKeyPrompt(cmd, path)
	}
	k, err := keys.ParsePublic(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// loadPublicKeyAny reads the public key of a public or private key file.
func loadPublicKeyAny(cmd *cobra.Command, path string) (crypto.PublicKey, error) {
	k, err := loadKeyAny(cmd, path)
	if err != nil {
		return nil, err
	}
	if _, err := keys.TypeOf(k); err != nil {
		return nil, err
	}
	if pub, err := keys.PublicOf(k); err == nil {
		return pub, nil
	}
	return k, nil
}

// openSignerPrompt opens a signing key file or pkcs11: URI for the signing
// commands, asking for a file key's password only if it is encrypted (or
// for a token's PIN if the URI gives none).
func openSignerPrompt(cmd *cobra.Command, ref string) (keys.Signer, error) {
	s, err := keys.Open(ref, nil)
	if !errors.Is(err, keys.ErrPasswordRequired) && !errors.Is(err, keys.ErrPINRequired) {
		return s, err
	}
	pw, err := askKeyPassword(cmd, false)
	if err != nil {
		return nil, err
	}
	return keys.Open(ref, pw)
}

// writeKeyOutput runs write against -o's file, or stdout when -o is empty.
func writeKeyOutput(cmd *cobra.Command, path string, write func(io.Writer) error) error {
	if path == "" {
		return write(cmd.OutOrStdout())
	}
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func newKeygenCmd() *cobra.Command {
	var keyPath, typ, pwFile string
	var password bool
	c := &cobra.Command{
		Use:   "keygen -k FILE -t TYPE [-p]",
		Short: "Generate a private key (PKCS#8 PEM, as imgtool keygen)",
		Long: "Generate a private key of TYPE (" + keyTypeList() + ") and write it as PKCS#8 PEM to a new file.\n" +
			"With -p it is encrypted (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC) with a password from\n" +
			"--password-file, $" + keyPasswordEnv + " or the terminal. An existing file is never overwritten.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := keys.ParseType(typ)
			if err != nil {
				return err
			}
			if _, err := os.Lstat(keyPath); err == nil {
				return fmt.Errorf("%s already exists, refusing to overwrite it", keyPath)
			}
			var pw []byte
			if password || pwFile != "" {
				if pw, err = askKeyPassword(cmd, true); err != nil {
					return err
				}
				if len(pw) == 0 {
					return errors.New("empty password: leave out -p for an unencrypted key")
				}
			}
			priv, err := keys.Generate(t)
			if err != nil {
				return err
			}
			return keys.SavePrivate(keyPath, priv, pw)
		},
	}
	f := c.Flags()
	f.StringVarP(&keyPath, "key", "k", "", "private key file to create (required)")
	f.StringVarP(&typ, "type", "t", "", "key type: "+keyTypeList()+" (required)")
	f.BoolVarP(&password, "password", "p", false, "encrypt the key with a password")
	f.StringVar(&pwFile, "password-file", "", "read the password from this file (implies -p)")
	c.MarkFlagRequired("key")
	c.MarkFlagRequired("type")
	return c
}

func keyTypeList() string {
	var s []string
	for _, t := range keys.Types() {
		s = append(s, string(t))
	}
	return strings.Join(s, ", ")
}

func newGetpubCmd() *cobra.Command {
	var keyPath, enc, lang, out, pwFile string
	c := &cobra.Command{
		Use:   "getpub -k FILE [-e pem|lang-c|lang-rust|raw] [-o OUT]",
		Short: "Print the public key as imgtool getpub does (C array by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if enc != "" && lang != "" {
				return errors.New("use only one of --encoding/-e or --lang/-l")
			}
			switch lang {
			case "c", "":
			case "rust":
				enc = string(keys.LangRust)
			default:
				return fmt.Errorf("--lang %q: want c or rust", lang)
			}
			if enc == "" {
				enc = string(keys.LangC)
			}
			pub, err := loadPublicKeyAny(cmd, keyPath)
			if err != nil {
				return err
			}
			return writeKeyOutput(cmd, out, func(w io.Writer) error { return keys.WritePublic(w, pub, keys.Encoding(enc)) })
		},
	}
	f := c.Flags()
	f.StringVarP(&keyPath, "key", "k", "", "private or public key file (required)")
	f.StringVarP(&enc, "encoding", "e", "", "lang-c (default), lang-rust, pem or raw")
	f.StringVarP(&lang, "lang", "l", "", "deprecated: c or rust (use -e)")
	f.StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	f.StringVar(&pwFile, "password-file", "", "password of an encrypted key")
	c.MarkFlagRequired("key")
	return c
}

func newGetpubhashCmd() *cobra.Command {
	var keyPath, enc, out, pwFile string
	c := &cobra.Command{
		Use:   "getpubhash -k FILE [-e lang-c|raw] [-o OUT]",
		Short: "Print the SHA-256 of the public key (MCUboot's KEYHASH) as imgtool getpubhash does",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := loadPublicKeyAny(cmd, keyPath)
			if err != nil {
				return err
			}
			return writeKeyOutput(cmd, out, func(w io.Writer) error { return keys.WritePublicHash(w, pub, keys.Encoding(enc)) })
		},
	}
	f := c.Flags()
	f.StringVarP(&keyPath, "key", "k", "", "private or public key file (required)")
	f.StringVarP(&enc, "encoding", "e", string(keys.LangC), "lang-c or raw")
	f.StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	f.StringVar(&pwFile, "password-file", "", "password of an encrypted key")
	c.MarkFlagRequired("key")
	return c
}

func newGetprivCmd() *cobra.Command {
	var keyPath, format, enc, out, pwFile string
	var minimal bool
	c := &cobra.Command{
		Use:   "getpriv -k FILE [--minimal] [-f pkcs8|openssl]",
		Short: "Print the private key bytes as a C array (imgtool getpriv), for encryption keys built into the bootloader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "" && format != string(keys.PKCS8) && format != string(keys.OpenSSL) {
				return fmt.Errorf("--format %q: want pkcs8 or openssl", format)
			}
			priv, err := loadPrivateKeyPrompt(cmd, keyPath)
			if err != nil {
				return err
			}
			return writeKeyOutput(cmd, out, func(w io.Writer) error {
				return keys.WritePrivateBytes(w, priv, keys.PrivateFormat(format), minimal, keys.Encoding(enc))
			})
		},
	}
	f := c.Flags()
	f.StringVarP(&keyPath, "key", "k", "", "private key file (required)")
	f.BoolVar(&minimal, "minimal", false, "only what the bootloader needs: no EC public key, no RSA CRT values")
	f.StringVarP(&format, "format", "f", "", "pkcs8 or openssl (default: pkcs8 for EC and X25519, openssl for RSA)")
	f.StringVarP(&enc, "encoding", "e", string(keys.LangC), "lang-c, lang-rust or raw")
	f.StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	f.StringVar(&pwFile, "password-file", "", "password of an encrypted key")
	c.MarkFlagRequired("key")
	return c
}

func newKeyinfoCmd() *cobra.Command {
	var keyPath, pwFile string
	var asJSON bool
	c := &cobra.Command{
		Use:   "keyinfo -k FILE|pkcs11:URI [--json]",
		Short: "Show a key's type, size and fingerprints (the MCUboot key hash and the SPKI SHA-256)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var k any
			if keys.IsPKCS11URI(keyPath) {
				s, err := openSignerPrompt(cmd, keyPath)
				if err != nil {
					return err
				}
				defer s.Close()
				k = s
			} else {
				var err error
				if k, err = loadKeyAny(cmd, keyPath); err != nil {
					return err
				}
			}
			info, err := keys.Describe(k)
			if err != nil {
				return err
			}
			if asJSON {
				e := json.NewEncoder(cmd.OutOrStdout())
				e.SetIndent("", "  ")
				return e.Encode(info)
			}
			return info.WriteText(cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVarP(&keyPath, "key", "k", "", "key file (private or public) or pkcs11: URI (required)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&pwFile, "password-file", "", "password of an encrypted key (or PIN of a PKCS#11 token)")
	c.MarkFlagRequired("key")
	return c
}
