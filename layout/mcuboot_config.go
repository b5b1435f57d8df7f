package layout

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"strings"
)

// Signature types for MCUbootConfig, named as in MCUboot's Kconfig.
const (
	SigECDSAP256 = "ECDSA_P256"
	SigED25519   = "ED25519"
	SigRSA       = "RSA"
)

// SignatureType returns the MCUboot signature type of a public or private
// key, and the RSA length in bits (0 for other types).
func SignatureType(key crypto.PublicKey) (string, int, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return SigECDSAP256, 0, nil
		}
		return "", 0, fmt.Errorf("layout: Zephyr's sysbuild supports only ECDSA P-256, not %s", k.Curve.Params().Name)
	case *ecdsa.PrivateKey:
		return SignatureType(&k.PublicKey)
	case ed25519.PublicKey, ed25519.PrivateKey:
		return SigED25519, 0, nil
	case *rsa.PublicKey:
		return SigRSA, k.N.BitLen(), nil
	case *rsa.PrivateKey:
		return SigRSA, k.N.BitLen(), nil
	}
	return "", 0, fmt.Errorf("layout: unsupported key type %T", key)
}

// MCUbootConfig returns the Kconfig lines that build a Zephyr application
// and MCUboot for the given swap mode and signature: sysbuild.conf
// (SB_CONFIG_*), and, for builds without sysbuild, the application's
// prj.conf and MCUboot's own configuration. keyFile is the signing key's
// path as the build should see it; rsaBits is 2048 or 3072 for RSA. The
// names follow Zephyr's share/sysbuild/images/bootloader/Kconfig and
// MCUboot's boot/zephyr/Kconfig.
func MCUbootConfig(mode Mode, sig, keyFile string, rsaBits, maxImgSectors int) (string, error) {
	var sbMode, appMode, bootMode string
	switch mode {
	case SwapScratch:
		sbMode, appMode, bootMode = "SWAP_SCRATCH", "SWAP_SCRATCH", "BOOT_SWAP_USING_SCRATCH"
	case SwapMove:
		sbMode, appMode, bootMode = "SWAP_USING_MOVE", "SWAP_USING_MOVE", "BOOT_SWAP_USING_MOVE"
	case OverwriteOnly:
		sbMode, appMode, bootMode = "OVERWRITE_ONLY", "OVERWRITE_ONLY", "BOOT_UPGRADE_ONLY"
	default:
		return "", fmt.Errorf("layout: unknown swap mode %q", mode)
	}
	switch sig {
	case SigECDSAP256, SigED25519, SigRSA:
	default:
		return "", fmt.Errorf("layout: unknown signature type %q (ECDSA_P256, ED25519, RSA)", sig)
	}
	if strings.ContainsAny(keyFile, "\"\n\\") {
		return "", fmt.Errorf("layout: key path %q contains characters Kconfig strings cannot hold", keyFile)
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# sysbuild.conf")
	w("SB_CONFIG_BOOTLOADER_MCUBOOT=y")
	w("SB_CONFIG_MCUBOOT_MODE_%s=y", sbMode)
	w("SB_CONFIG_BOOT_SIGNATURE_TYPE_%s=y", sig)
	if keyFile != "" {
		w("SB_CONFIG_BOOT_SIGNATURE_KEY_FILE=%q", keyFile)
	}
	w("")
	w("# prj.conf of the application (builds without sysbuild)")
	w("CONFIG_BOOTLOADER_MCUBOOT=y")
	w("CONFIG_MCUBOOT_BOOTLOADER_MODE_%s=y", appMode)
	if keyFile != "" {
		w("CONFIG_MCUBOOT_SIGNATURE_KEY_FILE=%q", keyFile)
	}
	w("")
	w("# MCUboot image configuration (builds without sysbuild)")
	w("CONFIG_%s=y", bootMode)
	w("CONFIG_BOOT_SIGNATURE_TYPE_%s=y", sig)
	if sig == SigRSA && rsaBits != 0 {
		w("CONFIG_BOOT_SIGNATURE_TYPE_RSA_LEN=%d", rsaBits)
	}
	if keyFile != "" {
		w("CONFIG_BOOT_SIGNATURE_KEY_FILE=%q", keyFile)
	}
	if maxImgSectors > 0 {
		w("CONFIG_BOOT_MAX_IMG_SECTORS=%d", maxImgSectors)
	}
	return b.String(), nil
}
