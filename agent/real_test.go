package agent

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/internal/testutil"
	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/manifest"
	"github.com/otakit/otakit/mcuboot"
	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

// realKit signs firmware with MCUboot and publishes releases as otakit
// does: update packages and a signed manifest in a directory that a plain
// HTTP file server serves.
type realKit struct {
	t                *testing.T
	imgKey, manKey   crypto.Signer
	rogueKey         crypto.Signer
	pkgKey           []byte
	dir              string
	now              time.Time
	images           MCUbootImages
	manifests        ManifestKeys
	slotSize         int64
	headerSize       int
	firmwareSize     int
	mcubootAlignment int
}

func loadSigner(t *testing.T, name string) crypto.Signer {
	t.Helper()
	k, err := keys.LoadPrivate(filepath.Join(testutil.SharedDir(t), "testdata/imgtool/keys", name), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		t.Fatalf("%s is not a signing key", name)
	}
	return s
}

func newRealKit(t *testing.T) *realKit {
	k := &realKit{t: t, imgKey: loadSigner(t, "ed25519.pem"), manKey: loadSigner(t, "ecdsa-p256.pem"),
		rogueKey: loadSigner(t, "ecdsa-p384.pem"), pkgKey: bytes.Repeat([]byte{0x42}, 16),
		dir: t.TempDir(), now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
		slotSize: 240 << 10, headerSize: 0x200, firmwareSize: 96 << 10}
	ks, err := manifest.NewKeySet(1, k.manKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	k.images = MCUbootImages{Keys: []crypto.PublicKey{k.imgKey.Public()}}
	k.manifests = ManifestKeys{Keys: ks, Clock: NewManualClock(k.now)}
	return k
}

// firmware returns a deterministic application binary for ver: the same
// base code with a version-specific patch, as consecutive releases are.
func (k *realKit) firmware(ver string) []byte {
	b := randomBytes(42, k.firmwareSize)
	r := rand.New(rand.NewPCG(uint64(len(ver)), uint64(ver[len(ver)-1])))
	for range 40 {
		off := r.IntN(len(b) - 64)
		copy(b[off:], strings.Repeat(ver, 8))
	}
	return b
}

// sign makes the signed MCUboot image of ver with security counter sc.
func (k *realKit) sign(ver string, sc uint32, signer crypto.Signer) []byte {
	k.t.Helper()
	v, err := mcuboot.ParseVersion(ver)
	if err != nil {
		k.t.Fatal(err)
	}
	fw := k.firmware(ver)
	var out bytes.Buffer
	if _, err := mcuboot.Sign(&out, bytes.NewReader(fw), int64(len(fw)), &mcuboot.SignOptions{
		Version: v, HeaderSize: k.headerSize, PadHeader: true, SlotSize: k.slotSize, SecurityCounter: &sc, Signer: signer,
		Align: max(k.mcubootAlignment, 1),
	}); err != nil {
		k.t.Fatal(err)
	}
	return out.Bytes()
}

// publish writes a release folder for img (and optional delta patches
// from base versions) with packages and a signed manifest, and returns
// the manifest's path relative to the kit's directory.
func (k *realKit) publish(ver string, seq uint64, img []byte, patches map[string][]byte) string {
	k.t.Helper()
	dir := filepath.Join(k.dir, ver)
	os.MkdirAll(dir, 0o755)
	raw := filepath.Join(k.dir, ver+".img")
	if err := os.WriteFile(raw, img, 0o644); err != nil {
		k.t.Fatal(err)
	}
	v := version.MustParse(ver)
	zstd, _ := codec.Lookup("zstd")
	pack := func(name, input string, h update.Header) string {
		out := filepath.Join(dir, name)
		h.Version, h.Compression, h.Encryption = v, zstd.ID(), update.EncryptAES128CTR
		if _, err := update.PackFile(out, input, h, k.pkgKey); err != nil {
			k.t.Fatal(err)
		}
		return out
	}
	opts := manifest.Options{Dir: dir, Sequence: seq, Now: k.now,
		Image: pack("app-"+ver+".update", raw, update.Header{Type: update.TypeFull}), Patches: map[string]string{}}
	for base, p := range patches {
		in := filepath.Join(k.dir, base+"-"+ver+".patch")
		os.WriteFile(in, p, 0o644)
		opts.Patches[base] = pack("app-"+base+"-"+ver+".update", in, update.Header{Type: update.TypeDelta, BaseVersion: version.MustParse(base)})
	}
	m, err := manifest.New(opts)
	if err != nil {
		k.t.Fatal(err)
	}
	if err := m.WriteFile(filepath.Join(dir, "manifest.json"), k.manKey); err != nil {
		k.t.Fatal(err)
	}
	return ver + "/manifest.json"
}

// fileServer serves the kit's directory, cutting connections on demand.
func (k *realKit) fileServer(cuts int) *cuttingServer {
	files := map[string][]byte{}
	filepath.Walk(k.dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(k.dir, p)
			files[filepath.ToSlash(rel)], _ = os.ReadFile(p)
		}
		return nil
	})
	return newCuttingServer(k.t, cuts, files)
}

// realDevice is a device under test: its slots and how to build its agent.
type realDevice struct {
	t     *testing.T
	slots Slots
	cfg   Config
	clock *ManualClock
}

func (k *realKit) linuxDevice(running []byte) *realDevice {
	ls, _ := newLinuxSlots(k.t, running)
	return k.device(ls)
}

func (k *realKit) device(s Slots) *realDevice {
	dir := k.t.TempDir()
	clock := NewManualClock(k.now)
	return &realDevice{t: k.t, slots: s, clock: clock, cfg: Config{
		Slots: s, Store: FileStore{Path: filepath.Join(dir, "state.json")}, WorkDir: filepath.Join(dir, "work"),
		Images: k.images, Manifests: k.manifests, Unpacker: Packages{Key: k.pkgKey},
		Clock: clock, ConfirmTimeout: time.Minute, Logger: quiet, CheckpointBytes: 8 << 10,
	}}
}

// boot starts the agent, as after power-on.
func (d *realDevice) boot(server Server) *Agent {
	d.t.Helper()
	cfg := d.cfg
	cfg.Server = server
	a, err := New(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		d.t.Fatal(err)
	}
	return a
}

func wantRunning(t *testing.T, a *Agent, want string) {
	t.Helper()
	info, err := a.Running()
	if err != nil {
		t.Fatal(err)
	}
	if !sameVersion(info.Version, want) {
		t.Fatalf("running %s, want %s", info.Version, want)
	}
}

func (d *realDevice) server(cs *cuttingServer, manifest string) Server {
	return &HTTPServer{ManifestURL: cs.srv.URL + "/" + manifest}
}

// lifecycleSuite runs the spec's lifecycle acceptance on devices made by
// newDevice (Linux slots, the MCUboot flash simulator).
func lifecycleSuite(t *testing.T, newDevice func(k *realKit, running []byte) *realDevice, patcher func() Patcher) {
	t.Run("full image update confirms", func(t *testing.T) {
		k := newRealKit(t)
		d := newDevice(k, k.sign("1.1.0", 1, k.imgKey))
		man := k.publish("1.2.0", 2, k.sign("1.2.0", 2, k.imgKey), nil)
		cs := k.fileServer(0)
		a := d.boot(d.server(cs, man))
		wantRunning(t, a, "1.1.0")
		if ok, err := a.CheckIn(context.Background()); !ok || err != nil {
			t.Fatalf("CheckIn = %v, %v", ok, err)
		}
		wantState(t, a, PendingReboot)
		if err := d.slots.Reset(); err != nil {
			t.Fatal(err)
		}
		a = d.boot(d.server(cs, man))
		wantState(t, a, Testing)
		wantRunning(t, a, "1.2.0")
		if err := a.Confirm(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		wantState(t, a, Confirmed)
		if err := d.slots.Reset(); err != nil {
			t.Fatal(err)
		}
		a = d.boot(d.server(cs, man))
		wantState(t, a, Confirmed)
		wantRunning(t, a, "1.2.0")
		if c, _ := d.slots.Counter(); c != 2 {
			t.Errorf("security counter %d after confirming 1.2.0, want 2", c)
		}
	})

	t.Run("bad signature fails and never boots", func(t *testing.T) {
		k := newRealKit(t)
		d := newDevice(k, k.sign("1.1.0", 1, k.imgKey))
		man := k.publish("1.2.0", 2, k.sign("1.2.0", 2, k.rogueKey), nil)
		cs := k.fileServer(0)
		a := d.boot(d.server(cs, man))
		if _, err := a.CheckIn(context.Background()); !errors.Is(err, ErrImage) {
			t.Fatalf("CheckIn = %v, want ErrImage", err)
		}
		wantState(t, a, Failed)
		if bi, _ := d.slots.Boot(); bi.Pending {
			t.Fatal("the bad image was marked for boot")
		}
		d.slots.Reset()
		a = d.boot(d.server(cs, man))
		wantRunning(t, a, "1.1.0")
		wantState(t, a, Failed)
	})

	t.Run("unconfirmed update reverts", func(t *testing.T) {
		k := newRealKit(t)
		d := newDevice(k, k.sign("1.1.0", 1, k.imgKey))
		man := k.publish("1.2.0", 2, k.sign("1.2.0", 2, k.imgKey), nil)
		cs := k.fileServer(0)
		a := d.boot(d.server(cs, man))
		if ok, err := a.CheckIn(context.Background()); !ok || err != nil {
			t.Fatalf("CheckIn = %v, %v", ok, err)
		}
		if err := a.Reboot(); err != nil {
			t.Fatal(err)
		}
		wantState(t, a, Testing)
		d.clock.Advance(time.Minute)
		if done, err := a.CheckDeadline(); !done || err != nil {
			t.Fatalf("CheckDeadline = %v, %v", done, err)
		}
		wantState(t, a, Failed)
		wantRunning(t, a, "1.1.0")
		if c, _ := d.slots.Counter(); c > 1 {
			t.Errorf("counter %d raised by an unconfirmed image", c)
		}
		// The failed release is not retried in a loop; a newer manifest is.
		if ok, err := a.CheckIn(context.Background()); ok || err != nil {
			t.Errorf("CheckIn of the reverted release = %v, %v", ok, err)
		}
		man = k.publish("1.2.0", 3, k.sign("1.2.0", 2, k.imgKey), nil)
		cs = k.fileServer(0)
		a = d.boot(d.server(cs, man))
		if ok, err := a.CheckIn(context.Background()); !ok || err != nil {
			t.Errorf("CheckIn of the re-published release = %v, %v", ok, err)
		}
		wantState(t, a, PendingReboot)
	})

	t.Run("downgrade below the security counter is refused", func(t *testing.T) {
		k := newRealKit(t)
		d := newDevice(k, k.sign("1.1.0", 5, k.imgKey))
		if err := d.slots.SetCounter(5); err != nil {
			t.Fatal(err)
		}
		// A newer version number but an older security counter: a
		// re-signed vulnerable build.
		man := k.publish("1.2.0", 2, k.sign("1.2.0", 4, k.imgKey), nil)
		cs := k.fileServer(0)
		a := d.boot(d.server(cs, man))
		if _, err := a.CheckIn(context.Background()); !errors.Is(err, ErrDowngrade) {
			t.Fatalf("CheckIn = %v, want ErrDowngrade", err)
		}
		wantState(t, a, Failed)
		if bi, _ := d.slots.Boot(); bi.Pending {
			t.Fatal("the downgrade was marked for boot")
		}
	})

	t.Run("cut download resumes", func(t *testing.T) {
		k := newRealKit(t)
		d := newDevice(k, k.sign("1.1.0", 1, k.imgKey))
		man := k.publish("1.2.0", 2, k.sign("1.2.0", 2, k.imgKey), nil)
		cs := k.fileServer(0)
		pkg := cs.files["1.2.0/app-1.2.0.update"]
		a := d.boot(d.server(cs, man))
		cs.mu.Lock()
		cs.cuts, cs.cutOnly = 6, ".update"
		cs.mu.Unlock()
		if _, err := a.CheckIn(context.Background()); err != nil {
			t.Fatal(err)
		}
		if cs.cuts != 0 {
			t.Fatalf("%d cuts left unused", cs.cuts)
		}
		wantState(t, a, PendingReboot)
		if a.BytesReceived() >= 2*int64(len(pkg)) {
			t.Errorf("received %d bytes for a %d-byte package", a.BytesReceived(), len(pkg))
		}
		t.Logf("%d cuts: received %d bytes for a %d-byte package (%.3f×)", 6, a.BytesReceived(), len(pkg), float64(a.BytesReceived())/float64(len(pkg)))
		for _, r := range cs.requests {
			if strings.HasPrefix(r, "1.2.0/app-1.2.0.update") && strings.Contains(r, "bytes=0-") {
				t.Errorf("download restarted from zero: %q", r)
			}
		}
		a.Reboot()
		wantState(t, a, Testing)
		wantRunning(t, a, "1.2.0")
	})

	t.Run("download resumes after a reboot", func(t *testing.T) {
		k := newRealKit(t)
		d := newDevice(k, k.sign("1.1.0", 1, k.imgKey))
		man := k.publish("1.2.0", 2, k.sign("1.2.0", 2, k.imgKey), nil)
		cs := k.fileServer(0)
		pkg := int64(len(cs.files["1.2.0/app-1.2.0.update"]))
		ctx, cancel := context.WithCancel(context.Background())
		d.cfg.Progress = func(st Status) {
			if st.State == Downloading && st.Details.BytesReceived > pkg/2 {
				cancel() // the power goes off half-way
			}
		}
		a := d.boot(d.server(cs, man))
		if _, err := a.CheckIn(ctx); err == nil {
			t.Fatal("the download survived the power cut")
		}
		wantState(t, a, Downloading)
		first := a.BytesReceived()
		d.cfg.Progress = nil
		cs.requests = nil
		d.slots.Reset()
		a = d.boot(d.server(cs, man))
		persisted := a.Record().Offset
		if persisted == 0 {
			t.Fatal("no download offset was persisted")
		}
		l := &Loop{Agent: a}
		if err := l.Run(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		wantState(t, a, Confirmed)
		wantRunning(t, a, "1.2.0")
		if len(cs.requests) == 0 || !strings.Contains(cs.requests[0], fmt.Sprintf("bytes=%d-", persisted)) {
			t.Errorf("requests after the reboot: %q, want the first from offset %d", cs.requests, persisted)
		}
		if got := first + a.BytesReceived(); got >= 2*pkg {
			t.Errorf("downloaded %d bytes in all for a %d-byte package", got, pkg)
		}
		t.Logf("cut after %d of %d bytes, %d persisted, %d fetched after the reboot", first, pkg, persisted, a.BytesReceived())
	})

	if patcher == nil {
		return
	}
	t.Run("delta update confirms", func(t *testing.T) {
		k := newRealKit(t)
		old := k.sign("1.1.0", 1, k.imgKey)
		d := newDevice(k, old)
		d.cfg.Patcher = patcher()
		img := k.sign("1.2.0", 2, k.imgKey)
		patch := makePatch(t, old, img)
		man := k.publish("1.2.0", 2, img, map[string][]byte{"1.1.0": patch})
		cs := k.fileServer(0)
		a := d.boot(d.server(cs, man))
		if ok, err := a.CheckIn(context.Background()); !ok || err != nil {
			t.Fatalf("CheckIn = %v, %v", ok, err)
		}
		if art := a.Record().Artifact; art.Type != TypeDelta {
			t.Fatalf("downloaded %s (%s), want the delta", art.Name, art.Type)
		}
		if a.BytesReceived() >= int64(len(img))/2 {
			t.Errorf("delta download %d bytes for a %d-byte image", a.BytesReceived(), len(img))
		}
		t.Logf("delta update: downloaded %d bytes for a %d-byte image", a.BytesReceived(), len(img))
		d.slots.Reset()
		a = d.boot(d.server(cs, man))
		wantState(t, a, Testing)
		wantRunning(t, a, "1.2.0")
		if err := a.Confirm(0); err != nil {
			t.Fatal(err)
		}
		wantState(t, a, Confirmed)
	})
}

func TestLifecycleLinuxSlots(t *testing.T) {
	lifecycleSuite(t, func(k *realKit, running []byte) *realDevice { return k.linuxDevice(running) }, realPatcher)
}
