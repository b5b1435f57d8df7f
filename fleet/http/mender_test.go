package http_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
)

// menderDev is a hand-driven device for protocol edge cases; the real
// client is exercised in TestMenderClient.
type menderDev struct {
	t      *testing.T
	url    string
	mac    string
	signer crypto.Signer
	token  string
}

func newMenderDev(t *testing.T, url, mac, kind string) *menderDev {
	var k crypto.Signer
	switch kind {
	case "rsa":
		k, _ = rsa.GenerateKey(rand.Reader, 2048)
	case "ecdsa":
		k, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, k, _ = ed25519.GenerateKey(rand.Reader)
	}
	return &menderDev{t: t, url: url, mac: mac, signer: k}
}

func (d *menderDev) id() string {
	id, _, err := fleethttp.MenderDeviceID(fmt.Sprintf(`{"mac":%q}`, d.mac))
	if err != nil {
		d.t.Fatal(err)
	}
	return id
}

func (d *menderDev) authBody() []byte {
	der, _ := x509.MarshalPKIXPublicKey(d.signer.Public())
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	b, _ := json.Marshal(map[string]string{"id_data": fmt.Sprintf(`{"mac":%q}`, d.mac), "pubkey": string(pub), "tenant_token": ""})
	return b
}

func (d *menderDev) sign(body []byte) string {
	var sig []byte
	var err error
	if _, ok := d.signer.(ed25519.PrivateKey); ok {
		sig, err = d.signer.Sign(rand.Reader, body, crypto.Hash(0))
	} else {
		h := sha256.Sum256(body)
		sig, err = d.signer.Sign(rand.Reader, h[:], crypto.SHA256)
	}
	if err != nil {
		d.t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// auth posts a signed auth request and keeps the token on 200.
func (d *menderDev) auth() int {
	body := d.authBody()
	code, resp := d.raw("POST", "/api/devices/v1/authentication/auth_requests", body, map[string]string{"X-MEN-Signature": d.sign(body)})
	if code == 200 {
		d.token = string(resp)
	}
	return code
}

func (d *menderDev) raw(method, path string, body []byte, hdr map[string]string) (int, []byte) {
	d.t.Helper()
	req, _ := http.NewRequest(method, d.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (d *menderDev) call(method, path string, body []byte) (int, []byte) {
	return d.raw(method, path, body, map[string]string{"Authorization": "Bearer " + d.token})
}

const statusPath = "/api/devices/v1/deployments/device/deployments/%s/status"

func TestMenderAuthRequests(t *testing.T) {
	me := newMenderEnv(t, false)
	ctx := context.Background()
	d := newMenderDev(t, me.url, "00:11:22:33:44:55", "rsa")
	body := d.authBody()
	other := newMenderDev(t, me.url, "00:11:22:33:44:55", "rsa")
	big := append([]byte(`{"id_data":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	bad := []struct {
		name string
		body []byte
		sig  string
		code int
	}{
		{"no signature", body, "", 401},
		{"signature not base64", body, "!!!", 401},
		{"signature by another key", body, other.sign(body), 401},
		{"signature of other bytes", body, d.sign(append(body, ' ')), 401},
		{"malformed JSON", []byte(`{"id_data":`), d.sign([]byte(`{"id_data":`)), 400},
		{"id_data not an object", []byte(`{"id_data":"[1]","pubkey":"x"}`), "c2ln", 400},
		{"no pubkey", []byte(`{"id_data":"{\"mac\":\"1\"}"}`), "c2ln", 400},
		{"oversize", big, "c2ln", 413},
	}
	for _, c := range bad {
		code, _ := d.raw("POST", "/api/devices/v1/authentication/auth_requests", c.body, map[string]string{"X-MEN-Signature": c.sig})
		if code != c.code {
			t.Errorf("%s: %d, want %d", c.name, code, c.code)
		}
	}
	if as, _ := me.admin.AuthSets(ctx, ""); len(as) != 0 {
		t.Fatalf("refused requests stored auth sets: %+v", as)
	}

	// A good request waits for acceptance, then gets a JWT.
	if code := d.auth(); code != 401 {
		t.Fatalf("pending device: %d", code)
	}
	if code := d.auth(); code != 401 {
		t.Fatalf("pending device again: %d", code)
	}
	as, _ := me.admin.AuthSets(ctx, fleet.AuthPending)
	if len(as) != 1 || as[0].DeviceID != d.id() {
		t.Fatalf("pending: %+v", as)
	}
	if _, err := me.admin.SetAuthStatus(ctx, "mender-unknown", "accept"); err == nil {
		t.Error("accepting an unknown device succeeded")
	}
	if _, err := me.admin.SetAuthStatus(ctx, d.id(), "accept"); err != nil {
		t.Fatal(err)
	}
	if code := d.auth(); code != 200 || strings.Count(d.token, ".") != 2 {
		t.Fatalf("accepted device: %d %q", code, d.token)
	}
	if _, err := me.admin.Device(ctx, d.id()); err != nil {
		t.Fatalf("accepting did not provision the device: %v", err)
	}
	code, _ := d.call("GET", "/api/devices/v1/deployments/device/deployments/next?artifact_name=a&device_type=b", nil)
	if code != 204 {
		t.Fatalf("next with the JWT: %d", code)
	}
	// Tampered, foreign and missing tokens are refused.
	good := d.token
	for _, tok := range []string{"", "x.y.z", good[:len(good)-2] + "AA", strings.Replace(good, ".", "x.", 1)} {
		d.token = tok
		if code, _ := d.call("GET", "/api/devices/v1/deployments/device/deployments/next?artifact_name=a&device_type=b", nil); code != 401 {
			t.Errorf("token %q: %d, want 401", tok, code)
		}
	}
	d.token = good
	// A new key for the same identity is pending again; the old JWT dies
	// with the rejection.
	if code := other.auth(); code != 401 {
		t.Fatalf("new key: %d", code)
	}
	if _, err := me.admin.SetAuthStatus(ctx, d.id(), "reject"); err != nil {
		t.Fatal(err)
	}
	if code, _ := d.call("GET", "/api/devices/v1/deployments/device/deployments/next?artifact_name=a&device_type=b", nil); code != 401 {
		t.Errorf("rejected device's token: %d", code)
	}

	// Auto-accept, and the other key types.
	auto := newMenderEnv(t, true)
	for _, kind := range []string{"rsa", "ecdsa", "ed25519"} {
		d := newMenderDev(t, auto.url, "mac-"+kind, kind)
		if code := d.auth(); code != 200 {
			t.Errorf("%s auto-accept: %d", kind, code)
		}
	}
}

// acceptedDev returns an accepted device with a token.
func (me *menderEnv) acceptedDev(t *testing.T, mac string) *menderDev {
	d := newMenderDev(t, me.url, mac, "ed25519")
	d.auth()
	if _, err := me.admin.SetAuthStatus(context.Background(), d.id(), "accept"); err != nil {
		t.Fatal(err)
	}
	if code := d.auth(); code != 200 {
		t.Fatalf("auth: %d", code)
	}
	return d
}

func TestMenderDeploymentAPI(t *testing.T) {
	me := newMenderEnv(t, false)
	ctx := context.Background()
	a, b := me.acceptedDev(t, "aa"), me.acceptedDev(t, "bb")
	art := writeSingleFile(t, "2.0.0", "board", t.TempDir(), bytes.Repeat([]byte("x"), 8000))
	rel := me.publishMender(art)
	if rel.Compatibility.HardwareRevision[0] != "board" {
		t.Fatalf("compatibility %+v", rel.Compatibility)
	}
	dep := me.deploy(rel.ID, a.id())

	// B has no deployment; A gets it from each of the three endpoints.
	if code, _ := b.call("POST", "/api/devices/v2/deployments/device/deployments/next",
		[]byte(`{"device_provides":{"artifact_name":"1.0.0","device_type":"board"},"update_control_map":true}`)); code != 204 {
		t.Fatalf("B next: %d", code)
	}
	var got []fleethttp.MenderDeploymentInstructions
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/api/devices/v2/deployments/device/deployments/next", `{"device_provides":{"artifact_name":"1.0.0","device_type":"board"}}`},
		{"POST", "/api/devices/v1/deployments/device/deployments/next", `{"artifact_name":"1.0.0","device_type":"board"}`},
		{"GET", "/api/devices/v1/deployments/device/deployments/next?artifact_name=1.0.0&device_type=board", ""},
	} {
		code, body := a.call(req.method, req.path, []byte(req.body))
		if code != 200 {
			t.Fatalf("%s %s: %d %s", req.method, req.path, code, body)
		}
		var di fleethttp.MenderDeploymentInstructions
		if err := json.Unmarshal(body, &di); err != nil {
			t.Fatal(err)
		}
		got = append(got, di)
	}
	di := got[0]
	if di.ID != dep || di.Artifact.ArtifactName != "2.0.0" || !reflect.DeepEqual(di.Artifact.DeviceTypesCompatible, []string{"board"}) ||
		di.Artifact.Source.Expire.IsZero() {
		t.Fatalf("instructions %+v", di)
	}
	for _, g := range got[1:] {
		if g.ID != di.ID || g.Artifact.ArtifactName != di.Artifact.ArtifactName {
			t.Errorf("endpoints disagree: %+v vs %+v", g, di)
		}
	}
	// The signed URL serves the artifact with Range; altered URLs are refused.
	want, _ := os.ReadFile(art)
	req, _ := http.NewRequest("GET", di.Artifact.Source.URI, nil)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(part, want[100:200]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(part))
	}
	u, _ := url.Parse(di.Artifact.Source.URI)
	for name, mod := range map[string]func(q url.Values){
		"other device": func(q url.Values) { q.Set("device", b.id()) },
		"later expiry": func(q url.Values) { q.Set("expires", "99999999999") },
		"no signature": func(q url.Values) { q.Del("signature") },
	} {
		q := u.Query()
		mod(q)
		v := *u
		v.RawQuery = q.Encode()
		resp, err := http.Get(v.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	me.server.Mender.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if resp, _ := http.Get(di.Artifact.Source.URI); resp.StatusCode != 403 {
		t.Errorf("expired URL: %d", resp.StatusCode)
	}
	me.server.Mender.Now = nil

	// Bad status and log requests change nothing.
	before := me.execution(dep)
	big := append([]byte(`{"status":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	bad := []struct {
		name string
		d    *menderDev
		path string
		body string
		code int
	}{
		{"another device's deployment", b, fmt.Sprintf(statusPath, dep), `{"status":"success"}`, 404},
		{"unknown deployment", a, fmt.Sprintf(statusPath, "dep-nope"), `{"status":"success"}`, 404},
		{"malformed JSON", a, fmt.Sprintf(statusPath, dep), `{"status":`, 400},
		{"unknown status", a, fmt.Sprintf(statusPath, dep), `{"status":"done"}`, 400},
		{"status not a string", a, fmt.Sprintf(statusPath, dep), `{"status":1}`, 400},
		{"oversize", a, fmt.Sprintf(statusPath, dep), string(big), 413},
		{"log of another device", b, "/api/devices/v1/deployments/device/deployments/" + dep + "/log", `{"messages":[{"level":"error","message":"x"}]}`, 404},
		{"empty log", a, "/api/devices/v1/deployments/device/deployments/" + dep + "/log", `{"messages":[]}`, 400},
		{"log malformed", a, "/api/devices/v1/deployments/device/deployments/" + dep + "/log", `[`, 400},
	}
	for _, c := range bad {
		if code, body := c.d.call("PUT", c.path, []byte(c.body)); code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
	}
	if after := me.execution(dep); !reflect.DeepEqual(before, after) {
		t.Fatalf("bad requests changed the execution:\n%+v\n%+v", before, after)
	}
	// Good reports move the execution; after an abort they get 409.
	for _, st := range []string{"downloading", "installing"} {
		if code, _ := a.call("PUT", fmt.Sprintf(statusPath, dep), []byte(`{"status":"`+st+`"}`)); code != 204 {
			t.Fatalf("%s: %d", st, code)
		}
	}
	if e := me.execution(dep); e.State != fleet.ExecApplying || e.DeviceState != "APPLYING" {
		t.Fatalf("after installing: %+v", e)
	}
	if _, err := me.admin.DeploymentAction(ctx, dep, "cancel"); err != nil {
		t.Fatal(err)
	}
	if code, _ := a.call("PUT", fmt.Sprintf(statusPath, dep), []byte(`{"status":"success"}`)); code != 409 {
		t.Fatalf("status after abort: %d, want 409", code)
	}
	if resp, _ := http.Get(di.Artifact.Source.URI); resp.StatusCode != 409 {
		t.Errorf("download after abort: %d", resp.StatusCode)
	}
	if code, _ := a.call("GET", "/api/devices/v1/deployments/device/deployments/next?artifact_name=1.0.0&device_type=board", nil); code != 204 {
		t.Errorf("next after abort: %d", code)
	}

	// An incompatible device type is never offered the artifact.
	dep2 := me.deploy(rel.ID, b.id())
	if code, _ := b.call("GET", "/api/devices/v1/deployments/device/deployments/next?artifact_name=1.0.0&device_type=other", nil); code != 204 {
		t.Fatalf("incompatible next: %d", code)
	}
	if e := me.execution(dep2); e.State != fleet.ExecSkipped {
		t.Errorf("incompatible device: %s", e.State)
	}
	if code, _ := b.call("GET", "/api/devices/v1/deployments/device/deployments/next?device_type=board", nil); code != 400 {
		t.Errorf("next without artifact_name: %d", code)
	}
}

func TestMenderInventory(t *testing.T) {
	me := newMenderEnv(t, false)
	ctx := context.Background()
	d := me.acceptedDev(t, "cc")
	const p = "/api/devices/v1/inventory/device/attributes"
	if code, _ := d.call("PUT", p, []byte(`[{"name":"device_type","value":"board"},{"name":"artifact_name","value":"1.0.0"},
		{"name":"ipv4_eth0","value":["10.0.0.2/24","10.0.0.3/24"]},{"name":"mem_total_kB","value":1024}]`)); code != 200 {
		t.Fatalf("PUT: %d", code)
	}
	if code, _ := d.call("PATCH", p, []byte(`[{"name":"hostname","value":"dev-cc"}]`)); code != 200 {
		t.Fatalf("PATCH: %d", code)
	}
	dev, _ := me.admin.Device(ctx, d.id())
	want := map[string]string{"device_type": "board", "artifact_name": "1.0.0", "ipv4_eth0": "10.0.0.2/24,10.0.0.3/24",
		"mem_total_kB": "1024", "hostname": "dev-cc"}
	if !reflect.DeepEqual(dev.Attributes, want) || dev.CurrentVersion != "1.0.0" || dev.HardwareRevision != "board" {
		t.Fatalf("device %+v", dev)
	}
	for name, body := range map[string]string{
		"malformed": `[{"name":`, "no name": `[{"value":"x"}]`, "object value": `[{"name":"a","value":{"x":1}}]`,
		"no value": `[{"name":"a"}]`, "not a list": `{"name":"a","value":"b"}`,
	} {
		if code, _ := d.call("PATCH", p, []byte(body)); code != 400 {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
	if after, _ := me.admin.Device(ctx, d.id()); !reflect.DeepEqual(after.Attributes, want) {
		t.Fatalf("bad inventory changed attributes: %v", after.Attributes)
	}
}

func TestMenderArtifactUpload(t *testing.T) {
	me := newMenderEnv(t, false)
	art := writeSingleFile(t, "3.0.0", "board", t.TempDir(), bytes.Repeat([]byte("y"), 8000))
	b, _ := os.ReadFile(art)
	i := bytes.Index(b, []byte("data/0000.tar"))
	b[i+512+30] ^= 0x55
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.mender"), b, 0o644)
	_, err := me.admin.Publish(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "bad.mender") {
		t.Fatalf("corrupt artifact upload: %v", err)
	}
	if rs, _ := me.admin.Releases(context.Background()); len(rs) != 0 {
		t.Fatalf("a corrupt artifact made a release: %+v", rs)
	}
	if n := countFiles(t, me.blobs+"/sha256"); n != 0 {
		t.Errorf("%d blobs left behind by a refused upload", n)
	}
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	return n
}
