package http

// The Mender device API, as unmodified mender-client 3.x speaks it, mapped
// onto the fleet's devices, deployments and executions:
//
//	POST  /api/devices/v1/authentication/auth_requests      signed auth request → JWT
//	POST  /api/devices/v2/deployments/device/deployments/next
//	POST  /api/devices/v1/deployments/device/deployments/next
//	GET   /api/devices/v1/deployments/device/deployments/next?artifact_name=…&device_type=…
//	PUT   /api/devices/v1/deployments/device/deployments/{id}/status
//	PUT   /api/devices/v1/deployments/device/deployments/{id}/log
//	PATCH /api/devices/v1/inventory/device/attributes (and PUT)
//	GET   /api/devices/v1/deployments/download/{id}/{sha256}?…  signed, short-lived artifact URL
//
// and for admins: GET /api/v1/mender/auth-sets, POST …/{device}/accept|reject.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otakit/otakit/fleet"
	"github.com/otakit/otakit/menderartifact"
)

// Defaults for MenderOptions.
const (
	DefaultMenderTokenTTL = 24 * time.Hour
	DefaultMenderURLTTL   = 15 * time.Minute
	// MenderArtifactExt marks release files that are Mender Artifacts.
	MenderArtifactExt = ".mender"
)

// Errors of the Mender API.
var (
	ErrBadSignature = fmt.Errorf("%w: auth request signature does not verify", fleet.ErrUnauthorized)
	ErrNotAccepted  = fmt.Errorf("%w: device is not accepted", fleet.ErrUnauthorized)
)

// MenderOptions turn on the Mender device API.
type MenderOptions struct {
	// AuthSets stores device keys and their acceptance.
	AuthSets fleet.AuthSetService
	// AutoAccept accepts new devices at their first auth request instead of
	// leaving them pending for an admin.
	AutoAccept bool
	// Secret keys the HMAC of device JWTs and download URLs (≥ 32 bytes);
	// empty makes a random one, so tokens die with the process.
	Secret []byte
	// TokenTTL is the JWT lifetime; URLTTL that of download URLs.
	TokenTTL, URLTTL time.Duration
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time

	headers sync.Map // blob sha256 → *menderartifact.Artifact
}

func (o *MenderOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (s *Server) routeMender(mux *http.ServeMux) {
	o := s.Mender
	if len(o.Secret) == 0 {
		o.Secret = make([]byte, 32)
		rand.Read(o.Secret)
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultMenderTokenTTL
	}
	if o.URLTTL <= 0 {
		o.URLTTL = DefaultMenderURLTTL
	}
	dev := func(pattern string, h deviceHandler) { mux.Handle(pattern, s.instrument(s.requireMender(h))) }
	admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.instrument(s.requireAdmin(h))) }
	mux.Handle("POST /api/devices/v1/authentication/auth_requests", s.instrument(http.HandlerFunc(s.menderAuth)))
	dev("POST /api/devices/v2/deployments/device/deployments/next", s.menderNext)
	dev("POST /api/devices/v1/deployments/device/deployments/next", s.menderNext)
	dev("GET /api/devices/v1/deployments/device/deployments/next", s.menderNext)
	dev("PUT /api/devices/v1/deployments/device/deployments/{id}/status", s.menderStatus)
	dev("PUT /api/devices/v1/deployments/device/deployments/{id}/log", s.menderLog)
	dev("PATCH /api/devices/v1/inventory/device/attributes", s.menderInventory)
	dev("PUT /api/devices/v1/inventory/device/attributes", s.menderInventory)
	mux.Handle("GET /api/devices/v1/deployments/download/{id}/{sha}", s.instrument(http.HandlerFunc(s.menderDownload)))
	mux.Handle("HEAD /api/devices/v1/deployments/download/{id}/{sha}", s.instrument(http.HandlerFunc(s.menderDownload)))
	admin("GET /api/v1/mender/auth-sets", s.listAuthSets)
	admin("POST /api/v1/mender/auth-sets/{device}/{action}", s.authSetAction)
}

// menderError answers in Mender's error shape, {"error": …}, which is ours.
func menderError(w http.ResponseWriter, err error) { writeError(w, err) }

// readBody reads a whole request body of at most MaxJSON bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxJSON))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: reading body: %v", fleet.ErrInvalid, err)
	}
	return b, nil
}

// authRequest is the body of an auth request.
type authRequest struct {
	IDData      string `json:"id_data"`
	PubKey      string `json:"pubkey"`
	TenantToken string `json:"tenant_token"`
}

// MenderDeviceID derives the fleet device id from Mender identity data
// (a JSON object): "mender-" and 16 hex digits of the SHA-256 of its
// canonical (sorted, compact) form, so the same identity always maps to the
// same device whatever its key order.
func MenderDeviceID(idData string) (id, canonical string, err error) {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(idData))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
		return "", "", fmt.Errorf("%w: id_data is not a JSON object", fleet.ErrInvalid)
	}
	if len(m) == 0 {
		return "", "", fmt.Errorf("%w: id_data is empty", fleet.ErrInvalid)
	}
	c, _ := json.Marshal(m) // maps marshal with sorted keys
	sum := sha256.Sum256(c)
	return "mender-" + hex.EncodeToString(sum[:8]), string(c), nil
}

// verifyMenderSignature checks sig over body with a PEM public key: RSA
// PKCS#1 v1.5 with SHA-256 (mender-client's default key), ECDSA with
// SHA-256 (ASN.1 or r‖s), or Ed25519 over the raw body.
func verifyMenderSignature(pubPEM string, body, sig []byte) error {
	blk, _ := pem.Decode([]byte(pubPEM))
	if blk == nil {
		return fmt.Errorf("%w: pubkey is not PEM", fleet.ErrInvalid)
	}
	var pub any
	var err error
	switch blk.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	default:
		return fmt.Errorf("%w: pubkey PEM type %q", fleet.ErrInvalid, blk.Type)
	}
	if err != nil {
		return fmt.Errorf("%w: pubkey: %v", fleet.ErrInvalid, err)
	}
	digest := sha256.Sum256(body)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key shorter than 2048 bits", fleet.ErrInvalid)
		}
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) != nil {
			return ErrBadSignature
		}
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, digest[:], sig) {
			return nil
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) == 2*n && ecdsa.Verify(k, digest[:], new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
			return nil
		}
		return ErrBadSignature
	case ed25519.PublicKey:
		if !ed25519.Verify(k, body, sig) {
			return ErrBadSignature
		}
	default:
		return fmt.Errorf("%w: unsupported key type %T", fleet.ErrInvalid, pub)
	}
	return nil
}

// menderAuth answers an auth request: 401 until the device is accepted,
// then a JWT as text. The body must verify against its own pubkey, so
// only the key's holder can ask for that key; nothing is stored otherwise.
func (s *Server) menderAuth(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		menderError(w, err)
		return
	}
	var req authRequest
	if err := strictUnmarshal(body, &req); err != nil {
		menderError(w, err)
		return
	}
	if req.IDData == "" || req.PubKey == "" {
		menderError(w, fmt.Errorf("%w: id_data and pubkey are required", fleet.ErrInvalid))
		return
	}
	id, canon, err := MenderDeviceID(req.IDData)
	if err != nil {
		menderError(w, err)
		return
	}
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get("X-MEN-Signature"))
	if err != nil || len(sig) == 0 {
		menderError(w, fmt.Errorf("%w: X-MEN-Signature missing or not base64", fleet.ErrUnauthorized))
		return
	}
	if err := verifyMenderSignature(req.PubKey, body, sig); err != nil {
		menderError(w, err)
		return
	}
	status := fleet.AuthPending
	if s.Mender.AutoAccept {
		status = fleet.AuthAccepted
	}
	as, err := s.Mender.AuthSets.RequestAuth(r.Context(), &fleet.AuthSet{DeviceID: id, IdentityData: canon,
		PublicKey: strings.TrimSpace(req.PubKey)}, status)
	if err != nil {
		menderError(w, err)
		return
	}
	if as.Status != fleet.AuthAccepted {
		s.Logger.Info("mender device waits for acceptance", "device", id, "status", as.Status)
		menderError(w, fmt.Errorf("%w (%s): accept it with `ota devices accept %s`", ErrNotAccepted, as.Status, id))
		return
	}
	tok := s.menderToken(id)
	w.Header().Set("Content-Type", "application/jwt")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, tok)
}

// JWTs are HS256 over {"sub","iat","exp","iss","jti"}, keyed by an HMAC
// key derived from the secret.

func (o *MenderOptions) key(label string) []byte {
	m := hmac.New(sha256.New, o.Secret)
	m.Write([]byte("otakit mender " + label))
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

type menderClaims struct {
	Sub string `json:"sub"`
	Iss string `json:"iss"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Jti string `json:"jti"`
	// Device marks a device token, as Mender's own tokens do.
	Device bool `json:"mender.device"`
}

func (s *Server) menderToken(deviceID string) string {
	o := s.Mender
	now := o.now()
	jti := make([]byte, 12)
	rand.Read(jti)
	h := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	c, _ := json.Marshal(menderClaims{Sub: deviceID, Iss: "otakit", Iat: now.Unix(), Exp: now.Add(o.TokenTTL).Unix(),
		Jti: hex.EncodeToString(jti), Device: true})
	signing := h + "." + b64.EncodeToString(c)
	m := hmac.New(sha256.New, o.key("jwt"))
	m.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(m.Sum(nil))
}

// parseMenderToken returns the device id of a valid, unexpired token.
func (s *Server) parseMenderToken(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: not a JWT", fleet.ErrUnauthorized)
	}
	hb, err := b64.DecodeString(parts[0])
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err != nil || json.Unmarshal(hb, &hdr) != nil || hdr.Alg != "HS256" {
		return "", fmt.Errorf("%w: JWT header", fleet.ErrUnauthorized)
	}
	sig, err := b64.DecodeString(parts[2])
	m := hmac.New(sha256.New, s.Mender.key("jwt"))
	m.Write([]byte(parts[0] + "." + parts[1]))
	if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
		return "", fmt.Errorf("%w: JWT signature", fleet.ErrUnauthorized)
	}
	cb, err := b64.DecodeString(parts[1])
	var c menderClaims
	if err != nil || json.Unmarshal(cb, &c) != nil || c.Sub == "" || !c.Device {
		return "", fmt.Errorf("%w: JWT claims", fleet.ErrUnauthorized)
	}
	if s.Mender.now().Unix() >= c.Exp {
		return "", fmt.Errorf("%w: JWT expired", fleet.ErrUnauthorized)
	}
	return c.Sub, nil
}

// requireMender answers 401 (which makes mender-client authenticate again)
// for a missing, bad or expired JWT, and for a device no longer accepted.
func (s *Server) requireMender(h deviceHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mender"`)
			menderError(w, fmt.Errorf("%w: missing bearer token", fleet.ErrUnauthorized))
			return
		}
		id, err := s.parseMenderToken(tok)
		if err != nil {
			menderError(w, err)
			return
		}
		as, err := s.Mender.AuthSets.AuthSet(r.Context(), id)
		if err != nil || as.Status != fleet.AuthAccepted {
			menderError(w, ErrNotAccepted)
			return
		}
		h(w, r, id)
	})
}

// MenderDeploymentInstructions is the 200 answer of deployments/next.
type MenderDeploymentInstructions struct {
	ID       string                `json:"id"`
	Artifact MenderArtifactPointer `json:"artifact"`
}

// MenderArtifactPointer names the artifact to fetch and where.
type MenderArtifactPointer struct {
	ID                    string       `json:"id"`
	ArtifactName          string       `json:"artifact_name"`
	Source                MenderSource `json:"source"`
	DeviceTypesCompatible []string     `json:"device_types_compatible"`
}

// MenderSource is a short-lived download URL.
type MenderSource struct {
	URI    string    `json:"uri"`
	Expire time.Time `json:"expire"`
}

// provides reads artifact_name and device_type from any of the three
// request shapes: v2 {"device_provides":{…}}, v1 POST {…}, v1 GET query.
func (s *Server) provides(w http.ResponseWriter, r *http.Request) (name, devType string, err error) {
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		return q.Get("artifact_name"), q.Get("device_type"), nil
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return "", "", err
	}
	var v struct {
		DeviceProvides map[string]any `json:"device_provides"`
	}
	var flat map[string]any
	if err := strictUnmarshal(body, &flat); err != nil {
		return "", "", err
	}
	p := flat
	if strings.Contains(r.URL.Path, "/v2/") {
		if err := strictUnmarshal(body, &v); err != nil {
			return "", "", err
		}
		if v.DeviceProvides == nil {
			return "", "", fmt.Errorf("%w: device_provides is required", fleet.ErrInvalid)
		}
		p = v.DeviceProvides
	}
	str := func(k string) (string, error) {
		x, ok := p[k]
		if !ok {
			return "", nil
		}
		sv, ok := x.(string)
		if !ok {
			return "", fmt.Errorf("%w: %s must be a string", fleet.ErrInvalid, k)
		}
		return sv, nil
	}
	if name, err = str("artifact_name"); err != nil {
		return "", "", err
	}
	devType, err = str("device_type")
	return name, devType, err
}

// menderNext checks in the device and answers 204 or the deployment it
// should install, with a signed URL of the release's Mender Artifact.
func (s *Server) menderNext(w http.ResponseWriter, r *http.Request, id string) {
	name, devType, err := s.provides(w, r)
	if err != nil {
		menderError(w, err)
		return
	}
	if name == "" || devType == "" {
		menderError(w, fmt.Errorf("%w: artifact_name and device_type are required", fleet.ErrInvalid))
		return
	}
	off, err := s.Store.CheckIn(r.Context(), id, fleet.CheckIn{CurrentVersion: name, HardwareRevision: devType})
	if err != nil {
		menderError(w, err)
		return
	}
	if off == nil {
		s.metrics.checkins.WithLabelValues("none").Inc()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a, ok := menderArtifactOf(off)
	fail := func(msg string) {
		s.Logger.Warn("mender offer refused", "device", id, "deployment", off.Deployment.ID, "reason", msg)
		s.Store.ReportStatus(r.Context(), id, off.Deployment.ID, fleet.Status{State: "FAILED", Error: msg})
		w.WriteHeader(http.StatusNoContent)
	}
	if !ok {
		fail(fmt.Sprintf("release %s has no Mender Artifact (*%s) for this Mender device", off.Release.ID, MenderArtifactExt))
		return
	}
	hdr, err := s.menderHeader(a.SHA256)
	if err != nil {
		s.Logger.Error("mender artifact header", "sha256", a.SHA256, "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{"artifact unavailable"})
		return
	}
	if !hdr.Compatible(devType) {
		fail(fmt.Sprintf("artifact %s is for device types %v, device is %q", hdr.Name, hdr.DeviceTypes, devType))
		return
	}
	if hdr.Name == name {
		// The device already runs it: Mender's "already-installed".
		s.Store.ReportStatus(r.Context(), id, off.Deployment.ID, fleet.Status{State: "CONFIRMED", Progress: 100,
			Version: name, Error: ""})
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.metrics.checkins.WithLabelValues("offer").Inc()
	exp := s.Mender.now().Add(s.Mender.URLTTL).UTC().Truncate(time.Second)
	writeJSON(w, http.StatusOK, MenderDeploymentInstructions{
		ID: off.Deployment.ID,
		Artifact: MenderArtifactPointer{
			ID:                    a.SHA256,
			ArtifactName:          hdr.Name,
			Source:                MenderSource{URI: s.menderURL(r, off.Deployment.ID, id, a.SHA256, exp), Expire: exp},
			DeviceTypesCompatible: hdr.DeviceTypes,
		},
	})
}

// menderArtifactOf picks the offered artifact when it is a Mender
// Artifact, else the release's first *.mender file.
func menderArtifactOf(off *fleet.Offer) (fleet.Artifact, bool) {
	if strings.HasSuffix(off.Artifact.Name, MenderArtifactExt) {
		return off.Artifact, true
	}
	for _, a := range off.Release.Artifacts {
		if strings.HasSuffix(a.Name, MenderArtifactExt) {
			return a, true
		}
	}
	return fleet.Artifact{}, false
}

// menderHeader reads (once per blob) a stored artifact's header.
func (s *Server) menderHeader(sum string) (*menderartifact.Artifact, error) {
	if v, ok := s.Mender.headers.Load(sum); ok {
		return v.(*menderartifact.Artifact), nil
	}
	b, err := s.Blobs.Open(sum)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	a, err := menderartifact.ReadHeader(b)
	if err != nil {
		return nil, err
	}
	s.Mender.headers.Store(sum, a)
	return a, nil
}

func (s *Server) urlSig(dep, dev, sum string, exp int64) string {
	m := hmac.New(sha256.New, s.Mender.key("url"))
	fmt.Fprintf(m, "%s\x00%s\x00%s\x00%d", dep, dev, sum, exp)
	return b64.EncodeToString(m.Sum(nil))
}

// menderURL is an absolute URL on the host the device used, valid until
// exp for this device, deployment and blob only.
func (s *Server) menderURL(r *http.Request, dep, dev, sum string, exp time.Time) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	q := url.Values{"device": {dev}, "expires": {strconv.FormatInt(exp.Unix(), 10)},
		"signature": {s.urlSig(dep, dev, sum, exp.Unix())}}
	return scheme + "://" + r.Host + "/api/devices/v1/deployments/download/" + url.PathEscape(dep) + "/" + sum + "?" + q.Encode()
}

// menderDownload serves a signed artifact URL with Range and ETag. The
// URL is the credential: it names one blob for one device and expires.
func (s *Server) menderDownload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dep, sum, dev := r.PathValue("id"), r.PathValue("sha"), q.Get("device")
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil || !hmac.Equal([]byte(q.Get("signature")), []byte(s.urlSig(dep, dev, sum, exp))) {
		menderError(w, fmt.Errorf("%w: bad download signature", fleet.ErrForbidden))
		return
	}
	if s.Mender.now().Unix() > exp {
		menderError(w, fmt.Errorf("%w: download link expired", fleet.ErrForbidden))
		return
	}
	e, err := s.Store.DeviceExecution(r.Context(), dev, dep)
	if err != nil {
		menderError(w, err)
		return
	}
	if e.State == fleet.ExecCanceled {
		menderError(w, fmt.Errorf("%w: deployment %s was aborted", fleet.ErrConflict, dep))
		return
	}
	b, err := s.Blobs.Open(sum)
	if err != nil {
		menderError(w, err)
		return
	}
	defer b.Close()
	w.Header().Set("ETag", `"`+sum+`"`)
	w.Header().Set("Content-Type", "application/vnd.mender-artifact")
	var content io.ReadSeeker = b
	if f, ok := b.(osFiler); ok {
		content = f.OSFile()
	}
	rec, _ := w.(*recorder)
	before := int64(0)
	if rec != nil {
		before = rec.bytes
	}
	http.ServeContent(w, r, "", b.ModTime(), content)
	if rec != nil {
		s.metrics.downloads.Add(float64(rec.bytes - before))
	}
}

// MenderStatuses maps Mender's deployment statuses to the fleet's device
// states, with the progress each implies.
var MenderStatuses = map[string]struct {
	State    string
	Progress int
}{
	"downloading":             {"DOWNLOADING", 10},
	"pause_before_installing": {"VERIFYING", 50},
	"installing":              {"APPLYING", 60},
	"pause_before_rebooting":  {"PENDING_REBOOT", 70},
	"rebooting":               {"PENDING_REBOOT", 80},
	"pause_before_committing": {"TESTING", 90},
	"success":                 {"CONFIRMED", 100},
	"already-installed":       {"CONFIRMED", 100},
	"failure":                 {"FAILED", 100},
}

// menderStatus records a status report; 409 tells the client the
// deployment was aborted, which makes it stop.
func (s *Server) menderStatus(w http.ResponseWriter, r *http.Request, id string) {
	var req struct {
		Status   string `json:"status"`
		Substate string `json:"substate"`
	}
	if err := s.decode(w, r, &req); err != nil {
		menderError(w, err)
		return
	}
	m, ok := MenderStatuses[req.Status]
	if !ok {
		menderError(w, fmt.Errorf("%w: unknown status %q", fleet.ErrInvalid, req.Status))
		return
	}
	if len(req.Substate) > 200 {
		menderError(w, fmt.Errorf("%w: substate too long", fleet.ErrInvalid))
		return
	}
	st := fleet.Status{State: m.State, Progress: m.Progress}
	if req.Status == "success" || req.Status == "already-installed" {
		if d, err := s.Store.Deployment(r.Context(), r.PathValue("id")); err == nil {
			st.Version = d.ReleaseID
		}
	}
	if req.Status == "failure" {
		st.Error = "mender-client reported failure"
		if req.Substate != "" {
			st.Error += ": " + req.Substate
		}
	}
	if _, err := s.Store.ReportStatus(r.Context(), id, r.PathValue("id"), st); err != nil {
		menderError(w, err)
		return
	}
	s.metrics.reports.WithLabelValues(st.State).Inc()
	w.WriteHeader(http.StatusNoContent)
}

// menderLog keeps the error lines of a failed deployment's log as the
// execution's error. Mender clients send a log only after a failure.
func (s *Server) menderLog(w http.ResponseWriter, r *http.Request, id string) {
	var req struct {
		Messages []struct {
			Timestamp string `json:"timestamp"`
			Level     string `json:"level"`
			Message   string `json:"message"`
		} `json:"messages"`
	}
	if err := s.decode(w, r, &req); err != nil {
		menderError(w, err)
		return
	}
	if len(req.Messages) == 0 {
		menderError(w, fmt.Errorf("%w: log has no messages", fleet.ErrInvalid))
		return
	}
	e, err := s.Store.DeviceExecution(r.Context(), id, r.PathValue("id"))
	if err != nil {
		menderError(w, err)
		return
	}
	if e.State == fleet.ExecCanceled {
		menderError(w, fmt.Errorf("%w: deployment was aborted", fleet.ErrConflict))
		return
	}
	var lines []string
	for _, m := range req.Messages {
		if m.Level == "error" || m.Level == "fatal" || m.Level == "panic" {
			lines = append(lines, m.Message)
		}
	}
	if len(lines) == 0 {
		lines = append(lines, req.Messages[len(req.Messages)-1].Message)
	}
	msg := "mender log: " + strings.Join(lines, " | ")
	if len(msg) > 4000 {
		msg = msg[:4000]
	}
	if _, err := s.Store.ReportStatus(r.Context(), id, r.PathValue("id"), fleet.Status{State: "FAILED", Progress: 100, Error: msg}); err != nil {
		menderError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// menderInventory merges (PATCH) or replaces (PUT) the device's attributes
// with Mender inventory attributes; list values are joined with ",".
// artifact_name and device_type also set the current version and
// hardware revision.
func (s *Server) menderInventory(w http.ResponseWriter, r *http.Request, id string) {
	var attrs []struct {
		Name  string          `json:"name"`
		Value json.RawMessage `json:"value"`
	}
	if err := s.decode(w, r, &attrs); err != nil {
		menderError(w, err)
		return
	}
	in := map[string]string{}
	for _, a := range attrs {
		if a.Name == "" {
			menderError(w, fmt.Errorf("%w: attribute without a name", fleet.ErrInvalid))
			return
		}
		v, err := inventoryValue(a.Value)
		if err != nil {
			menderError(w, fmt.Errorf("%w: attribute %q: %v", fleet.ErrInvalid, a.Name, err))
			return
		}
		in[a.Name] = v
	}
	d, err := s.Store.Device(r.Context(), id)
	if err != nil {
		menderError(w, err)
		return
	}
	merged := map[string]string{}
	if r.Method == http.MethodPatch {
		for k, v := range d.Attributes {
			merged[k] = v
		}
	}
	for k, v := range in {
		merged[k] = v
	}
	c := fleet.CheckIn{Attributes: merged, CurrentVersion: in["artifact_name"], HardwareRevision: in["device_type"]}
	if _, err := s.Store.CheckIn(r.Context(), id, c); err != nil {
		menderError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func inventoryValue(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", errors.New("missing or malformed value")
	}
	str := func(x any) (string, bool) {
		switch t := x.(type) {
		case string:
			return t, true
		case json.Number:
			return t.String(), true
		case bool:
			return strconv.FormatBool(t), true
		}
		return "", false
	}
	if sv, ok := str(v); ok {
		return sv, nil
	}
	if list, ok := v.([]any); ok {
		parts := make([]string, 0, len(list))
		for _, x := range list {
			sv, ok := str(x)
			if !ok {
				return "", errors.New("list values must be strings or numbers")
			}
			parts = append(parts, sv)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("value must be a string, number or list")
}

func (s *Server) listAuthSets(w http.ResponseWriter, r *http.Request) {
	as, err := s.Mender.AuthSets.AuthSets(r.Context(), r.URL.Query().Get("status"))
	if err != nil {
		writeError(w, err)
		return
	}
	sort.Slice(as, func(i, j int) bool { return as[i].DeviceID < as[j].DeviceID })
	writeJSON(w, http.StatusOK, nonNil(as))
}

func (s *Server) authSetAction(w http.ResponseWriter, r *http.Request) {
	var status string
	switch r.PathValue("action") {
	case "accept":
		status = fleet.AuthAccepted
	case "reject":
		status = fleet.AuthRejected
	default:
		writeError(w, fmt.Errorf("%w: unknown action %q (accept or reject)", fleet.ErrNotFound, r.PathValue("action")))
		return
	}
	as, err := s.Mender.AuthSets.SetAuthStatus(r.Context(), r.PathValue("device"), status)
	if err != nil {
		writeError(w, err)
		return
	}
	s.Logger.Info("mender auth set", "device", as.DeviceID, "status", as.Status)
	writeJSON(w, http.StatusOK, as)
}

// checkMenderUpload validates an uploaded *.mender file in full, so a
// corrupt Mender Artifact is refused at publish time.
func (s *Server) checkMenderUpload(ctx context.Context, name, sum string) (*menderartifact.Artifact, error) {
	b, err := s.Blobs.Open(sum)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	a, err := menderartifact.Read(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", fleet.ErrInvalid, name, err)
	}
	return a, nil
}

// menderManifest validates the upload's Mender Artifacts and, when the
// upload has no manifest.json and exactly one Mender Artifact, makes the
// release's manifest from it: version = artifact name, the artifact as the
// full image, its device types as compatible hardware revisions. Such a
// manifest is unsigned: the release is for Mender devices only, which
// verify the artifact itself.
func (s *Server) menderManifest(ctx context.Context, files map[string]fleet.UploadedFile, manifest []byte) ([]byte, error) {
	var names []string
	for name := range files {
		if strings.HasSuffix(name, MenderArtifactExt) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var first *menderartifact.Artifact
	for _, name := range names {
		a, err := s.checkMenderUpload(ctx, name, files[name].SHA256)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = a
		}
	}
	if manifest != nil || len(names) != 1 {
		return manifest, nil
	}
	f := files[names[0]]
	doc := map[string]any{
		"version": first.Name,
		"images": []map[string]any{{"file": names[0], "type": "mender", "size": f.Size,
			"hash": "sha256:" + f.SHA256}},
		"compatibility": map[string]any{"hardwareRevision": first.DeviceTypes},
	}
	return json.Marshal(doc)
}
