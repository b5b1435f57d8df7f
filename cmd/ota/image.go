package main

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/otakit/otakit/ihex"
	"github.com/otakit/otakit/internal/atomicfile"
	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/mcuboot"
	"github.com/spf13/cobra"
)

func init() {
	commands = append(commands, newSignCmd, newVerifyCmd, newDecryptCmd, newDumpinfoCmd)
}

// parseInt reads an integer as imgtool does (Python int(x, 0)): decimal or
// 0x/0o/0b prefixed.
func parseInt(s string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("%s is not a valid integer; use 0x/0o/0b prefixes as needed", s)
	}
	return n, nil
}

func isHexPath(p string) bool { return strings.EqualFold(filepath.Ext(p), ".hex") }

// readEncryptKey loads an encryption recipient: a PEM public (or private)
// key, or a raw AES key-wrap key (16/24/32 bytes, raw or hex) for ENC_KW.
func readEncryptKey(cmd *cobra.Command, path string) (any, error) {
	if kek, ok, err := readKEK(path); err != nil || ok {
		return kek, err
	}
	return loadPublicKeyAny(cmd, path)
}

// readDecryptKey loads a decryption key: a PEM private key or a raw AES
// key-wrap key.
func readDecryptKey(cmd *cobra.Command, path string) (any, error) {
	if kek, ok, err := readKEK(path); err != nil || ok {
		return kek, err
	}
	return loadPrivateKeyPrompt(cmd, path)
}

func readKEK(path string) (mcuboot.KEK, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return nil, false, nil
	}
	raw := data
	if t := bytes.TrimSpace(data); len(t)%2 == 0 {
		if d, err := hex.DecodeString(string(t)); err == nil {
			raw = d
		}
	}
	switch len(raw) {
	case 16, 24, 32:
		return mcuboot.KEK(raw), true, nil
	}
	return nil, false, fmt.Errorf("%s: neither a PEM key nor a 16/24/32-byte AES key", path)
}

// atomicFile is a buffered atomicfile.File, so a failed command never
// leaves a partial output.
type atomicFile struct {
	f *atomicfile.File
	w *bufio.Writer
}

func createAtomic(path string) (*atomicFile, error) {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, err
	}
	return &atomicFile{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (a *atomicFile) Write(p []byte) (int, error) { return a.w.Write(p) }

func (a *atomicFile) Commit() error {
	if err := a.w.Flush(); err != nil {
		a.f.Abort()
		return err
	}
	return a.f.Commit()
}

func (a *atomicFile) Abort() { a.f.Abort() }

type signFlags struct {
	key, version, dependencies, securityCounter, encrypt, endian, erasedVal string
	publicKeyFormat, sha, vectorToSign, fixSig, fixSigPubkey, sigOut        string
	bootRecord, vid, cid, headerSize, slotSize, hexAddr, loadAddr, romFixed string
	align, maxAlign, encryptKeylen                                          string
	customTLVs                                                              []string
	maxSectors                                                              int
	padHeader, pad, confirm, test, overwriteOnly, clear, saveEncTLV         bool
	padSig, nonBootable                                                     bool
}

func newSignCmd() *cobra.Command {
	var f signFlags
	cmd := &cobra.Command{
		Use:     "sign [flags] INFILE OUTFILE",
		Aliases: []string{"create"},
		Short:   "Create a signed or unsigned MCUboot image (imgtool sign)",
		Long: `Create a signed or unsigned MCUboot image, with imgtool's flags and defaults.
INFILE and OUTFILE are Intel HEX when they end in .hex, raw binary otherwise.
-k also accepts a pkcs11: URI. The password of an encrypted key comes from
$OTA_KEY_PASSWORD or the terminal.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSign(cmd, &f, args[0], args[1])
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.key, "key", "k", "", "signing key: PEM file or pkcs11: URI (none: hash-only image)")
	fl.StringVarP(&f.version, "version", "v", "", "image version maj.min.rev+build (required)")
	fl.StringVarP(&f.headerSize, "header-size", "H", "", "header area size, at least 32 (required)")
	fl.BoolVar(&f.padHeader, "pad-header", false, "prepend header-size erased bytes to the payload")
	fl.StringVarP(&f.slotSize, "slot-size", "S", "", "slot size; image plus trailer must fit (required)")
	fl.StringVar(&f.align, "align", "1", "flash write alignment: 1, 2, 4, 8, 16 or 32")
	fl.StringVar(&f.maxAlign, "max-align", "", "maximum flash alignment: 8, 16 or 32 (default max(8, align))")
	fl.BoolVar(&f.pad, "pad", false, "pad to slot-size and add the trailer magic")
	fl.BoolVar(&f.confirm, "confirm", false, "mark the image confirmed (image_ok; implies --pad)")
	fl.BoolVar(&f.test, "test", false, "pad for a test swap, image_ok unset (implies --pad)")
	fl.IntVarP(&f.maxSectors, "max-sectors", "M", 0, "sectors the swap status has room for (default 128)")
	fl.BoolVar(&f.overwriteOnly, "overwrite-only", false, "trailer for overwrite-only upgrades")
	fl.StringVarP(&f.endian, "endian", "e", "little", "byte order: little or big")
	fl.StringVarP(&f.securityCounter, "security-counter", "s", "", "security counter value, or auto (from the version)")
	fl.StringVarP(&f.dependencies, "dependencies", "d", "", `dependencies "(image_id,maj.min.rev+build), ..."`)
	fl.StringVarP(&f.encrypt, "encrypt", "E", "", "encrypt for this public key (P-256, X25519, RSA) or raw AES key-wrap key")
	fl.StringVar(&f.encryptKeylen, "encrypt-keylen", "128", "AES key length: 128 or 256")
	fl.BoolVarP(&f.clear, "clear", "c", false, "keep the payload in clear but add the encryption key TLV")
	fl.BoolVar(&f.saveEncTLV, "save-enctlv", false, "size the trailer for saved encryption key TLVs")
	fl.StringVar(&f.publicKeyFormat, "public-key-format", "hash", "hash (KEYHASH) or full (PUBKEY)")
	fl.StringVar(&f.sha, "sha", "auto", "image hash: auto, 256, 384 or 512")
	fl.StringVarP(&f.hexAddr, "hex-addr", "x", "", "base address of a .hex output")
	fl.StringVarP(&f.loadAddr, "load-addr", "L", "", "RAM load address (sets RAM_LOAD)")
	fl.StringVarP(&f.romFixed, "rom-fixed", "F", "", "flash address the image is built for (sets ROM_FIXED)")
	fl.StringVarP(&f.erasedVal, "erased-val", "R", "0xff", "value of erased flash: 0 or 0xff")
	fl.StringVar(&f.bootRecord, "boot-record", "", "sw_type of a CBOR boot record TLV (max 12 characters)")
	fl.StringVar(&f.vid, "vid", "", "vendor UUID, or a domain name hashed to a UUIDv5")
	fl.StringVar(&f.cid, "cid", "", "image class UUID, or a name hashed to a UUIDv5 under the vendor UUID")
	fl.StringArrayVar(&f.customTLVs, "custom-tlv", nil, "protected vendor TLV TAG=VALUE (0x-prefixed VALUE is hex)")
	fl.BoolVar(&f.nonBootable, "non-bootable", false, "mark the image non-bootable")
	fl.BoolVar(&f.padSig, "pad-sig", false, "pad ECDSA signatures to a fixed length (MCUboot < 1.5)")
	fl.StringVar(&f.vectorToSign, "vector-to-sign", "", "write what to sign externally instead of the image: payload or digest")
	fl.StringVar(&f.fixSig, "fix-sig", "", "base64 signature made externally, used instead of signing")
	fl.StringVar(&f.fixSigPubkey, "fix-sig-pubkey", "", "public key of the --fix-sig signature")
	fl.StringVar(&f.sigOut, "sig-out", "", "write the image signature, base64, to this file")
	return cmd
}

func runSign(cmd *cobra.Command, f *signFlags, inPath, outPath string) error {
	var missing []string
	for _, r := range []struct{ flag, val string }{{"--version", f.version}, {"--header-size", f.headerSize}, {"--slot-size", f.slotSize}} {
		if r.val == "" {
			missing = append(missing, r.flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sign: missing %s (--version, --header-size and --slot-size are required)", strings.Join(missing, ", "))
	}
	var o mcuboot.SignOptions
	var err error
	if o.Version, err = mcuboot.ParseVersion(f.version); err != nil {
		return err
	}
	hs, err := parseInt(f.headerSize, 16)
	if err != nil {
		return fmt.Errorf("--header-size: %w", err)
	}
	o.HeaderSize = int(hs)
	slot, err := parseInt(f.slotSize, 63)
	if err != nil {
		return fmt.Errorf("--slot-size: %w", err)
	}
	o.SlotSize = int64(slot)
	o.PadHeader, o.Pad, o.Confirm, o.Test = f.padHeader, f.pad, f.confirm, f.test
	o.OverwriteOnly, o.Clear, o.SaveEncTLV = f.overwriteOnly, f.clear, f.saveEncTLV
	o.PadSig, o.NonBootable, o.MaxSectors = f.padSig, f.nonBootable, f.maxSectors
	if o.Align, err = choice("--align", f.align, "1", "2", "4", "8", "16", "32"); err != nil {
		return err
	}
	if f.maxAlign != "" {
		if o.MaxAlign, err = choice("--max-align", f.maxAlign, "8", "16", "32"); err != nil {
			return err
		}
	}
	switch f.endian {
	case "little":
		o.ByteOrder = binary.LittleEndian
	case "big":
		o.ByteOrder = binary.BigEndian
	default:
		return fmt.Errorf("--endian %q: want little or big", f.endian)
	}
	switch f.erasedVal {
	case "0":
		o.ErasedZero = true
	case "0xff":
	default:
		return fmt.Errorf("--erased-val %q: want 0 or 0xff", f.erasedVal)
	}
	for _, a := range []struct {
		flag, val string
		dst       *uint32
	}{{"--load-addr", f.loadAddr, &o.LoadAddr}, {"--rom-fixed", f.romFixed, &o.ROMFixed}} {
		if a.val != "" {
			n, err := parseInt(a.val, 32)
			if err != nil {
				return fmt.Errorf("%s: %w", a.flag, err)
			}
			*a.dst = uint32(n)
		}
	}
	if f.securityCounter != "" {
		var sc uint32
		if strings.EqualFold(f.securityCounter, "auto") {
			sc = o.Version.SecurityCounter()
		} else {
			n, err := parseInt(f.securityCounter, 32)
			if err != nil {
				return fmt.Errorf("--security-counter: %w", err)
			}
			sc = uint32(n)
		}
		o.SecurityCounter = &sc
	}
	if f.dependencies != "" {
		if o.Dependencies, err = mcuboot.ParseDependencies(f.dependencies); err != nil {
			return err
		}
	}
	o.BootRecord = f.bootRecord
	if f.vid != "" {
		vid := mcuboot.VendorUUID(f.vid)
		o.VendorID = vid[:]
	}
	if f.cid != "" {
		if f.vid == "" {
			return errors.New("--cid needs --vid (the class UUID is derived under the vendor UUID)")
		}
		cid := mcuboot.ClassUUID([16]byte(o.VendorID), f.cid)
		o.ClassID = cid[:]
	}
	for _, c := range f.customTLVs {
		tag, val, ok := strings.Cut(c, "=")
		if !ok {
			return fmt.Errorf("--custom-tlv %q: want TAG=VALUE", c)
		}
		t, err := parseInt(tag, 16)
		if err != nil {
			return fmt.Errorf("--custom-tlv tag: %w", err)
		}
		v := []byte(val)
		if strings.HasPrefix(val, "0x") {
			if v, err = hex.DecodeString(val[2:]); err != nil {
				return fmt.Errorf("--custom-tlv value %q: %v", val, err)
			}
		}
		o.CustomTLVs = append(o.CustomTLVs, mcuboot.TLV{Type: mcuboot.TLVType(t), Value: v})
	}
	switch f.publicKeyFormat {
	case "hash":
	case "full":
		o.FullPublicKey = true
	default:
		return fmt.Errorf("--public-key-format %q: want hash or full", f.publicKeyFormat)
	}
	switch f.sha {
	case "auto":
	case "256":
		o.Hash = crypto.SHA256
	case "384":
		o.Hash = crypto.SHA384
	case "512":
		o.Hash = crypto.SHA512
	default:
		return fmt.Errorf("--sha %q: want auto, 256, 384 or 512", f.sha)
	}
	o.VectorToSign = f.vectorToSign
	switch f.encryptKeylen {
	case "128", "256":
		o.EncryptKeyLen, _ = strconv.Atoi(f.encryptKeylen)
	default:
		return fmt.Errorf("--encrypt-keylen %q: want 128 or 256", f.encryptKeylen)
	}
	if f.encrypt != "" {
		if o.EncryptTo, err = readEncryptKey(cmd, f.encrypt); err != nil {
			return err
		}
	}
	if f.key != "" {
		s, err := openSignerPrompt(cmd, f.key)
		if err != nil {
			return err
		}
		defer s.Close()
		o.Signer = keys.Unwrap(s)
	}
	if f.fixSig != "" {
		data, err := os.ReadFile(f.fixSig)
		if err != nil {
			return err
		}
		if o.FixedSignature, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil {
			return fmt.Errorf("--fix-sig %s: not base64: %v", f.fixSig, err)
		}
		if f.fixSigPubkey == "" {
			return errors.New("--fix-sig needs --fix-sig-pubkey (public key of the fixed signature)")
		}
		if o.FixedSigPublicKey, err = loadPublicKeyAny(cmd, f.fixSigPubkey); err != nil {
			return err
		}
	}

	// Input: raw binary streams from the file; Intel HEX is flattened
	// (gaps filled with 0xff) and its lowest address becomes the base.
	var payload io.Reader
	var size int64
	var baseAddr *uint32
	if isHexPath(inPath) {
		base, data, err := readHexFile(inPath)
		if err != nil {
			return err
		}
		// imgtool moves a non-zero base down to make room for the header.
		if o.PadHeader && base != 0 {
			if base < uint32(o.HeaderSize) {
				return fmt.Errorf("%s: base address 0x%x leaves no room for a 0x%x-byte header", inPath, base, o.HeaderSize)
			}
			base -= uint32(o.HeaderSize)
		}
		baseAddr = &base
		payload, size = bytes.NewReader(data), int64(len(data))
	} else {
		in, err := os.Open(inPath)
		if err != nil {
			return err
		}
		defer in.Close()
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		payload, size = bufio.NewReaderSize(in, 1<<20), fi.Size()
	}
	if f.hexAddr != "" {
		n, err := parseInt(f.hexAddr, 32)
		if err != nil {
			return fmt.Errorf("--hex-addr: %w", err)
		}
		a := uint32(n)
		baseAddr = &a
	}

	out, err := createAtomic(outPath)
	if err != nil {
		return err
	}
	var res *mcuboot.SignResult
	if isHexPath(outPath) && o.VectorToSign == "" {
		if baseAddr == nil {
			out.Abort()
			return errors.New("no address exists in the input file and none was given with --hex-addr")
		}
		res, err = signToHex(out, payload, size, &o, *baseAddr)
	} else {
		res, err = mcuboot.Sign(out, payload, size, &o)
	}
	if err != nil {
		out.Abort()
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	if f.sigOut != "" && res.Signature != nil {
		if err := os.WriteFile(f.sigOut, []byte(base64.StdEncoding.EncodeToString(res.Signature)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// signToHex signs into memory (hex images are small) and writes Intel HEX
// the way imgtool does: the image at base, and when padding only the
// trailer's image_ok and magic, not the erased bytes between.
func signToHex(w io.Writer, payload io.Reader, size int64, o *mcuboot.SignOptions, base uint32) (*mcuboot.SignResult, error) {
	padded := o.Pad || o.Confirm || o.Test
	img := *o
	img.Pad, img.Confirm, img.Test = false, false, false
	var buf bytes.Buffer
	res, err := mcuboot.Sign(&buf, payload, size, &img)
	if err != nil {
		return nil, err
	}
	f := ihex.FromBinary(base, buf.Bytes())
	if padded {
		for off, data := range o.TrailerRecords() {
			f.Segments = append(f.Segments, ihex.Segment{Addr: base + uint32(off), Data: data})
		}
	}
	return res, ihex.Write(w, f)
}

// readHexFile reads an Intel HEX file flattened as imgtool does: from the
// lowest to the highest address, gaps filled with 0xff.
func readHexFile(path string) (uint32, []byte, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer in.Close()
	f, err := ihex.Read(bufio.NewReader(in))
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Segments) == 0 {
		return 0, nil, fmt.Errorf("%s: Intel HEX file holds no data", path)
	}
	base, data, err := f.Flatten(0xff)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	return base, data, nil
}

func choice(flag, v string, allowed ...string) (int, error) {
	for _, a := range allowed {
		if v == a {
			n, _ := strconv.Atoi(v)
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s %q: want one of %s", flag, v, strings.Join(allowed, ", "))
}

// openImage parses an image file; Intel HEX is flattened into memory,
// binaries are read through the file.
func openImage(path string) (*mcuboot.Image, func(), error) {
	if isHexPath(path) {
		_, data, err := readHexFile(path)
		if err != nil {
			return nil, nil, err
		}
		img, err := mcuboot.Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return img, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	img, err := mcuboot.Parse(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, func() { f.Close() }, nil
}

func newVerifyCmd() *cobra.Command {
	var keyPaths []string
	var decryptKey string
	cmd := &cobra.Command{
		Use:   "verify [-k KEY]... [--decrypt-key PRIV] IMAGE",
		Short: "Check an MCUboot image's hash and signature (imgtool verify)",
		Long: `Check that an MCUboot image's hash matches and that it is signed by KEY
(any of several -k). Without -k only the hash is checked. For an encrypted
image, --decrypt-key decrypts the payload to check the hash of its plaintext.
Exit code 1 means the image failed verification.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts mcuboot.VerifyOptions
			for _, p := range keyPaths {
				k, err := loadPublicKeyAny(cmd, p)
				if err != nil {
					return err
				}
				opts.Keys = append(opts.Keys, k)
			}
			if decryptKey != "" {
				k, err := readDecryptKey(cmd, decryptKey)
				if err != nil {
					return err
				}
				opts.DecryptKey = k
			}
			if _, err := os.Stat(args[0]); err != nil {
				return err
			}
			img, closeFn, err := openImage(args[0])
			if err != nil {
				return verificationFailed(err) // a malformed image fails verification
			}
			defer closeFn()
			res, err := img.Verify(&opts)
			if err != nil {
				return verificationFailed(fmt.Errorf("%s: %w", args[0], err))
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, "Image was correctly validated")
			fmt.Fprintf(w, "Image version: %v\n", img.Header.Version)
			fmt.Fprintf(w, "Image digest: %x (%v)\n", res.Digest, res.HashType)
			if res.Signed {
				fmt.Fprintf(w, "Signature: %v, valid\n", res.SignatureType)
			} else {
				fmt.Fprintln(w, "Signature: not checked (no key given)")
			}
			if res.Decrypted {
				fmt.Fprintln(w, "Payload: decrypted, plaintext hash matches")
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&keyPaths, "key", "k", nil, "trusted public (or private) key PEM; repeat for several")
	cmd.Flags().StringVar(&decryptKey, "decrypt-key", "", "private key (or raw AES key-wrap key) to decrypt an encrypted image")
	return cmd
}

func newDecryptCmd() *cobra.Command {
	var keyPath string
	cmd := &cobra.Command{
		Use:   "decrypt -k PRIV IN OUT",
		Short: "Decrypt the payload of an encrypted MCUboot image",
		Long: `Decrypt an encrypted MCUboot image (ENC_EC256, ENC_X25519, ENC_RSA2048, or
ENC_KW with a raw AES key file) into the image MCUboot installs: payload in
clear, header, TLVs and trailer unchanged, so the result verifies.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return errors.New("decrypt: -k/--key is required")
			}
			k, err := readDecryptKey(cmd, keyPath)
			if err != nil {
				return err
			}
			img, closeFn, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer closeFn()
			out, err := createAtomic(args[1])
			if err != nil {
				return err
			}
			if err := img.Decrypt(out, k); err != nil {
				out.Abort()
				if errors.Is(err, mcuboot.ErrDecrypt) || errors.Is(err, mcuboot.ErrHashMismatch) {
					return verificationFailed(err)
				}
				return err
			}
			return out.Commit()
		},
	}
	cmd.Flags().StringVarP(&keyPath, "key", "k", "", "private key PEM, or raw AES key-wrap key (required)")
	return cmd
}

func newDumpinfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dumpinfo IMAGE",
		Short: "Print an MCUboot image's header, TLVs and trailer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, closeFn, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer closeFn()
			info := mcuboot.Describe(img)
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return info.WriteText(w)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	return cmd
}
