package http

// Eclipse hawkBit Direct Device Integration (DDI) API v1, so devices that
// already run a hawkBit client (SWUpdate's suricatta, hara, zephyr…) can
// update from this server unchanged. DDI is a view of the fleet's own
// model: a hawkBit action is an execution (its integer id is the action
// id), the artifacts are the release's, and feedback becomes status
// reports on the execution. Documented in docs/api.md, "hawkBit DDI".

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/otakit/otakit/fleet"
)

// DefaultTenant is the DDI tenant accepted when DDIConfig.Tenants is nil.
const DefaultTenant = "DEFAULT"

// DDI limits: a feedback's details are kept in history up to these sizes.
const (
	maxDDIDetails     = 100
	maxDDIDetailBytes = 4000
)

// DDIConfig configures the hawkBit DDI API.
type DDIConfig struct {
	// Tenants maps each accepted tenant name to its gateway token; an
	// empty token disables gateway authentication for that tenant. Nil
	// accepts DefaultTenant without a gateway token.
	Tenants map[string]string
	// Type is the deployment type announced for download and update:
	// "forced" (default), "attempt" (soft) or "skip" (announce only; the
	// maintenance window is then reported unavailable).
	Type string
}

// DDI errors, wrapped with context.
var (
	// ErrDDIGone answers feedback for an action that is no longer active.
	ErrDDIGone = errors.New("ddi: action is no longer active")
)

// ddiError is the JSON body of DDI error answers, shaped like hawkBit's.
type ddiError struct {
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
}

func writeDDIError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	if errors.Is(err, ErrDDIGone) {
		code = http.StatusGone
	}
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	ec := "hawkbit.server.error." + strings.ReplaceAll(strings.ToLower(http.StatusText(code)), " ", "")
	writeJSON(w, code, ddiError{ErrorCode: ec, Message: msg})
}

// ddiReq is an authenticated DDI request: tenant, device and the base URL
// of the device's controller resource.
type ddiReq struct {
	tenant, device string
	base           string // scheme://host/tenant/controller/v1/device
}

type ddiHandler func(w http.ResponseWriter, r *http.Request, q *ddiReq)

func (s *Server) routeDDI(mux *http.ServeMux) {
	h := func(pattern string, f ddiHandler) {
		mux.Handle(pattern, s.instrument(s.requireDDI(f)))
	}
	const c = "/{tenant}/controller/v1/{controllerId}"
	h("GET "+c, s.ddiPoll)
	h("GET "+c+"/deploymentBase/{actionId}", s.ddiDeploymentBase)
	h("POST "+c+"/deploymentBase/{actionId}/feedback", s.ddiDeploymentFeedback)
	h("GET "+c+"/cancelAction/{actionId}", s.ddiCancelAction)
	h("POST "+c+"/cancelAction/{actionId}/feedback", s.ddiCancelFeedback)
	h("PUT "+c+"/configData", s.ddiConfigData)
	h("GET "+c+"/installedBase/{actionId}", s.ddiInstalledBase)
	h("GET "+c+"/softwaremodules/{actionId}/artifacts/{name...}", s.ddiDownload)
}

// requireDDI checks tenant and credentials. A TargetToken must be the
// controller's own device token; a GatewayToken must be the tenant's and
// then acts for any provisioned device. 401 without or with an unknown
// credential, 403 for another device's token, 404 for an unknown tenant
// or (gateway) device.
func (s *Server) requireDDI(h ddiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, device := r.PathValue("tenant"), r.PathValue("controllerId")
		tenants := s.DDI.Tenants
		if tenants == nil {
			tenants = map[string]string{DefaultTenant: ""}
		}
		gw, ok := tenants[tenant]
		if !ok {
			writeDDIError(w, fmt.Errorf("%w: unknown tenant %q", fleet.ErrNotFound, tenant))
			return
		}
		scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		tok = strings.TrimSpace(tok)
		switch {
		case strings.EqualFold(scheme, "TargetToken") && tok != "":
			id, err := s.Store.AuthenticateDevice(r.Context(), tok)
			if errors.Is(err, fleet.ErrUnauthorized) {
				writeDDIError(w, fmt.Errorf("%w: unknown target token", fleet.ErrUnauthorized))
				return
			}
			if err != nil {
				writeDDIError(w, err)
				return
			}
			if id != device {
				writeDDIError(w, fmt.Errorf("%w: target token is not controller %q's", fleet.ErrForbidden, device))
				return
			}
		case strings.EqualFold(scheme, "GatewayToken") && tok != "":
			if gw == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(gw)) != 1 {
				writeDDIError(w, fmt.Errorf("%w: wrong gateway token for tenant %q", fleet.ErrUnauthorized, tenant))
				return
			}
			if _, err := s.Store.Device(r.Context(), device); err != nil {
				writeDDIError(w, err)
				return
			}
		default:
			w.Header().Set("WWW-Authenticate", `TargetToken realm="ota-ddi"`)
			writeDDIError(w, fmt.Errorf("%w: want Authorization: TargetToken or GatewayToken", fleet.ErrUnauthorized))
			return
		}
		// Optional mTLS, as for the device API: a verified client
		// certificate must name the controller.
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != device {
				writeDDIError(w, fmt.Errorf("%w: client certificate is for %q, not controller %q", fleet.ErrForbidden, cn, device))
				return
			}
		} else if s.RequireClientCert {
			writeDDIError(w, fmt.Errorf("%w: a client certificate is required", fleet.ErrForbidden))
			return
		}
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base := scheme + "://" + r.Host + "/" + url.PathEscape(tenant) + "/controller/v1/" + url.PathEscape(device)
		h(w, r, &ddiReq{tenant: tenant, device: device, base: base})
	})
}

type ddiLink struct {
	Href string `json:"href"`
}

type ddiPollResponse struct {
	Config struct {
		Polling struct {
			Sleep string `json:"sleep"`
		} `json:"polling"`
	} `json:"config"`
	Links map[string]ddiLink `json:"_links"`
}

// cancelAcked is the history message that marks a cancellation as
// acknowledged by the device.
const cancelAcked = "hawkBit: cancel acknowledged"

// pendingCancel reports whether e was canceled after the device had been
// offered it and the device has not acknowledged the cancellation yet.
func pendingCancel(e *fleet.Execution) bool {
	if e.State != fleet.ExecCanceled || e.Artifact == "" {
		return false
	}
	for _, ev := range e.History {
		if strings.HasPrefix(ev.Message, cancelAcked) || strings.HasPrefix(ev.Message, cancelRejected) {
			return false
		}
	}
	return true
}

const cancelRejected = "hawkBit: cancel rejected"

// ddiPoll is the base resource: polling interval and links to the open
// actions. Answers 304 when If-None-Match has the body's ETag.
func (s *Server) ddiPoll(w http.ResponseWriter, r *http.Request, q *ddiReq) {
	ctx := r.Context()
	off, err := s.Store.CheckIn(ctx, q.device, fleet.CheckIn{})
	if err != nil {
		writeDDIError(w, err)
		return
	}
	dev, err := s.Store.Device(ctx, q.device)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	es, err := s.Store.Executions(ctx, fleet.ExecutionFilter{DeviceID: q.device, Limit: 20})
	if err != nil {
		writeDDIError(w, err)
		return
	}
	var resp ddiPollResponse
	p := s.PollSeconds
	resp.Config.Polling.Sleep = fmt.Sprintf("%02d:%02d:%02d", p/3600, p/60%60, p%60)
	resp.Links = map[string]ddiLink{}
	for _, e := range es { // newest first
		if _, ok := resp.Links["cancelAction"]; !ok && pendingCancel(e) {
			resp.Links["cancelAction"] = ddiLink{fmt.Sprintf("%s/cancelAction/%d", q.base, e.ID)}
		}
		if _, ok := resp.Links["installedBase"]; !ok && e.State == fleet.ExecSuccess {
			resp.Links["installedBase"] = ddiLink{fmt.Sprintf("%s/installedBase/%d", q.base, e.ID)}
		}
	}
	if off != nil {
		s.metrics.checkins.WithLabelValues("offer").Inc()
		// c= changes with the execution's state, as hawkBit's does, so
		// clients that cache by URL refetch after a change.
		resp.Links["deploymentBase"] = ddiLink{fmt.Sprintf("%s/deploymentBase/%d?c=%s", q.base, off.Execution.ID,
			shortHash(off.Execution.State, off.Execution.Artifact))}
	} else {
		s.metrics.checkins.WithLabelValues("none").Inc()
	}
	if len(dev.Attributes) == 0 {
		resp.Links["configData"] = ddiLink{q.base + "/configData"}
	}
	body, _ := json.Marshal(resp)
	etag := `"` + shortHash(string(body)) + `"`
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/hal+json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(append(body, '\n'))
}

func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// ddiAction loads the execution named by {actionId} if it is the device's.
// A malformed id is 400; another device's action is 404, as for an
// unknown one, so devices learn nothing of each other.
// ddiOfferedAction is ddiAction for the calls that need the update itself:
// an action never offered (pending, skipped) or canceled is not found.
func (s *Server) ddiOfferedAction(r *http.Request, q *ddiReq) (*fleet.Execution, error) {
	e, err := s.ddiAction(r, q)
	if err != nil {
		return nil, err
	}
	switch e.State {
	case fleet.ExecPending, fleet.ExecSkipped, fleet.ExecCanceled:
		return nil, fmt.Errorf("%w: action %d is %s", fleet.ErrNotFound, e.ID, e.State)
	}
	return e, nil
}

func (s *Server) ddiAction(r *http.Request, q *ddiReq) (*fleet.Execution, error) {
	raw := r.PathValue("actionId")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return nil, fmt.Errorf("%w: action id %q is not a positive integer", fleet.ErrInvalid, raw)
	}
	e, err := s.Store.Execution(r.Context(), id)
	if errors.Is(err, fleet.ErrNotFound) || (err == nil && e.DeviceID != q.device) {
		return nil, fmt.Errorf("%w: no action %d for controller %q", fleet.ErrNotFound, id, q.device)
	}
	return e, err
}

type ddiArtifact struct {
	Filename string             `json:"filename"`
	Hashes   ddiHashes          `json:"hashes"`
	Size     int64              `json:"size"`
	Links    map[string]ddiLink `json:"_links"`
}

type ddiHashes struct {
	SHA1   string `json:"sha1"`
	MD5    string `json:"md5"`
	SHA256 string `json:"sha256"`
}

type ddiChunk struct {
	Part      string        `json:"part"`
	Version   string        `json:"version"`
	Name      string        `json:"name"`
	Artifacts []ddiArtifact `json:"artifacts"`
}

type ddiDeployment struct {
	Download          string     `json:"download"`
	Update            string     `json:"update"`
	MaintenanceWindow string     `json:"maintenanceWindow,omitempty"`
	Chunks            []ddiChunk `json:"chunks"`
}

type ddiActionHistory struct {
	Status   string   `json:"status"`
	Messages []string `json:"messages"`
}

type ddiDeploymentBase struct {
	ID            string            `json:"id"`
	Deployment    ddiDeployment     `json:"deployment"`
	ActionHistory *ddiActionHistory `json:"actionHistory,omitempty"`
}

// hashCache keeps the SHA-1 and MD5 of blobs (named by SHA-256), which DDI
// needs and the blob store does not keep.
var hashCache sync.Map // sha256 -> ddiHashes

func (s *Server) blobHashes(sha string) (ddiHashes, error) {
	if v, ok := hashCache.Load(sha); ok {
		return v.(ddiHashes), nil
	}
	b, err := s.Blobs.Open(sha)
	if err != nil {
		return ddiHashes{}, fmt.Errorf("artifact %s: %w", sha, err)
	}
	defer b.Close()
	h1, h5 := sha1.New(), md5.New()
	if _, err := io.Copy(io.MultiWriter(h1, h5), b); err != nil {
		return ddiHashes{}, fmt.Errorf("artifact %s: %w", sha, err)
	}
	hs := ddiHashes{SHA1: hex.EncodeToString(h1.Sum(nil)), MD5: hex.EncodeToString(h5.Sum(nil)), SHA256: sha}
	hashCache.Store(sha, hs)
	return hs, nil
}

// deploymentBase builds the action resource of e, whose artifact is the
// one chosen when it was offered (a delta or the full image).
func (s *Server) deploymentBase(r *http.Request, q *ddiReq, e *fleet.Execution) (*ddiDeploymentBase, error) {
	ctx := r.Context()
	d, err := s.Store.Deployment(ctx, e.DeploymentID)
	if err != nil {
		return nil, err
	}
	rel, err := s.Store.Release(ctx, d.ReleaseID)
	if err != nil {
		return nil, err
	}
	a, ok := rel.Artifact(e.Artifact)
	if !ok {
		return nil, fmt.Errorf("%w: release %s has no artifact %q", fleet.ErrNotFound, rel.ID, e.Artifact)
	}
	hs, err := s.blobHashes(a.SHA256)
	if err != nil {
		return nil, err
	}
	href := fmt.Sprintf("%s/softwaremodules/%d/artifacts/%s", q.base, e.ID, escapeName(a.Name))
	typ := s.DDI.Type
	if typ == "" {
		typ = "forced"
	}
	base := &ddiDeploymentBase{ID: strconv.FormatInt(e.ID, 10)}
	base.Deployment = ddiDeployment{Download: typ, Update: typ, Chunks: []ddiChunk{{
		Part: "os", Version: rel.Version, Name: rel.ID,
		Artifacts: []ddiArtifact{{Filename: a.Name, Hashes: hs, Size: a.Size, Links: map[string]ddiLink{
			"download": {href}, "download-http": {href}, "md5sum": {href + ".MD5SUM"},
			"md5sum-http": {href + ".MD5SUM"},
		}}},
	}}}
	if typ == "skip" {
		base.Deployment.MaintenanceWindow = "unavailable"
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("actionHistory")); err == nil && n != 0 {
		h := &ddiActionHistory{Status: e.State, Messages: []string{}}
		full, err := s.Store.Execution(ctx, e.ID)
		if err != nil {
			return nil, err
		}
		for i := len(full.History) - 1; i >= 0 && (n < 0 || len(h.Messages) < n); i-- {
			h.Messages = append(h.Messages, full.History[i].Message)
		}
		base.ActionHistory = h
	}
	return base, nil
}

func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// ddiDeploymentBase answers the action's deployment; 404 for an action
// that was never offered or was canceled (its cancelAction applies).
func (s *Server) ddiDeploymentBase(w http.ResponseWriter, r *http.Request, q *ddiReq) {
	e, err := s.ddiOfferedAction(r, q)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	base, err := s.deploymentBase(r, q, e)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, base)
}

// ddiInstalledBase answers a finished, successful action; 404 otherwise.
func (s *Server) ddiInstalledBase(w http.ResponseWriter, r *http.Request, q *ddiReq) {
	e, err := s.ddiAction(r, q)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	if e.State != fleet.ExecSuccess {
		writeDDIError(w, fmt.Errorf("%w: action %d is not installed (%s)", fleet.ErrNotFound, e.ID, e.State))
		return
	}
	base, err := s.deploymentBase(r, q, e)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, base)
}

// DDIFeedback is the body of deploymentBase and cancelAction feedback.
// The id and time fields are accepted in any form and not used: clients
// disagree on their types (SWUpdate sends "time" as 20060102T150405).
type DDIFeedback struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Time   json.RawMessage `json:"time,omitempty"`
	Status DDIStatus       `json:"status"`
}

// DDIStatus is a feedback's status.
type DDIStatus struct {
	Execution string    `json:"execution"`
	Result    DDIResult `json:"result"`
	Details   []string  `json:"details,omitempty"`
	Code      *int      `json:"code,omitempty"`
}

// DDIResult is a feedback's result: finished and optional progress.
type DDIResult struct {
	Finished string       `json:"finished"`
	Progress *DDIProgress `json:"progress,omitempty"`
}

// DDIProgress counts steps done (Cnt) of Of.
type DDIProgress struct {
	Cnt int64 `json:"cnt"`
	Of  int64 `json:"of"`
}

// DDI execution and finished values.
var (
	ddiExecutions = []string{"closed", "proceeding", "canceled", "scheduled", "rejected", "resumed", "downloaded", "download"}
	ddiFinished   = []string{"success", "failure", "none"}
)

// Validate checks a feedback's enumerations and sizes. Errors wrap
// fleet.ErrInvalid.
func (f *DDIFeedback) Validate() error {
	if !contains(ddiExecutions, f.Status.Execution) {
		return fmt.Errorf("%w: status.execution %q not one of %s", fleet.ErrInvalid, f.Status.Execution, strings.Join(ddiExecutions, ", "))
	}
	if !contains(ddiFinished, f.Status.Result.Finished) {
		return fmt.Errorf("%w: status.result.finished %q not one of %s", fleet.ErrInvalid, f.Status.Result.Finished, strings.Join(ddiFinished, ", "))
	}
	if p := f.Status.Result.Progress; p != nil && (p.Cnt < 0 || p.Of < 0) {
		return fmt.Errorf("%w: negative progress", fleet.ErrInvalid)
	}
	if len(f.Status.Details) > maxDDIDetails {
		return fmt.Errorf("%w: more than %d details", fleet.ErrInvalid, maxDDIDetails)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// detailText joins details into one history message of bounded size.
// When they do not fit, lines that carry an error come first, then the
// last lines: SWUpdate sends its whole log as details.
func (f *DDIFeedback) detailText() string {
	var lines []string
	for _, d := range f.Status.Details {
		if d = strings.TrimSpace(d); d != "" {
			lines = append(lines, d)
		}
	}
	s := strings.Join(lines, "; ")
	if len(s) <= maxDDIDetailBytes {
		return s
	}
	var errs, rest []string
	for _, l := range lines {
		if strings.Contains(strings.ToUpper(l), "ERROR") {
			errs = append(errs, l)
		} else {
			rest = append(rest, l)
		}
	}
	s = strings.Join(errs, "; ")
	var tail []string
	n := len(s)
	for i := len(rest) - 1; i >= 0 && n+len(rest[i])+2 < maxDDIDetailBytes; i-- {
		tail = append([]string{rest[i]}, tail...)
		n += len(rest[i]) + 2
	}
	if len(tail) > 0 {
		s += "; …; " + strings.Join(tail, "; ")
	}
	if len(s) > maxDDIDetailBytes {
		s = s[:maxDDIDetailBytes] + "…"
	}
	return s
}

func (s *Server) decodeFeedback(w http.ResponseWriter, r *http.Request) (*DDIFeedback, error) {
	var f DDIFeedback
	if err := s.decode(w, r, &f); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// deviceStateOf is the agent state an in-progress execution is in, for
// feedback that reports progress without naming a new state.
func deviceStateOf(execState string) string {
	switch execState {
	case fleet.ExecVerifying, fleet.ExecApplying, fleet.ExecPendingReboot, fleet.ExecTesting:
		return strings.ToUpper(execState)
	}
	return "DOWNLOADING"
}

// ddiDeploymentFeedback maps feedback onto the execution:
//   - closed + success/none: CONFIRMED (success), progress 100, and the
//     device's version becomes the release's;
//   - closed + failure, and canceled: FAILED with the details as error;
//   - downloaded: VERIFYING; proceeding/scheduled/resumed/download: the
//     current in-progress state (DOWNLOADING right after the offer);
//   - rejected: no state change, the details go to the history;
//   - progress {cnt, of} with of > 0 sets the percentage.
//
// Feedback for an action whose cancellation is not yet answered is only
// recorded in the history; for a finished action it is 410 Gone.
func (s *Server) ddiDeploymentFeedback(w http.ResponseWriter, r *http.Request, q *ddiReq) {
	e, err := s.ddiAction(r, q)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	f, err := s.decodeFeedback(w, r)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	ctx := r.Context()
	switch {
	case e.State == fleet.ExecPending || e.State == fleet.ExecSkipped:
		writeDDIError(w, fmt.Errorf("%w: action %d was not offered", fleet.ErrNotFound, e.ID))
		return
	case pendingCancel(e):
		// As in hawkBit, an action being canceled stays open until the
		// device answers the cancellation: its feedback is kept as history.
		if n, ok := s.Store.(fleet.ExecutionNoter); ok {
			msg := "hawkBit " + f.Status.Execution + "/" + f.Status.Result.Finished + " after cancel"
			if t := f.detailText(); t != "" {
				msg += ": " + t
			}
			if err := n.NoteExecution(ctx, e.ID, msg); err != nil {
				writeDDIError(w, err)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
		return
	case fleet.ExecFinal(e.State):
		writeDDIError(w, fmt.Errorf("%w: action %d is %s", ErrDDIGone, e.ID, e.State))
		return
	}
	details := f.Status.Details
	text := f.detailText()
	st := fleet.Status{Progress: e.Progress, Details: fleet.StatusDetails{BytesReceived: e.Bytes, TotalBytes: e.TotalBytes}}
	if p := f.Status.Result.Progress; p != nil && p.Of > 0 {
		st.Progress = int(min(p.Cnt, p.Of) * 100 / p.Of)
	}
	note := ""
	switch ex, fin := f.Status.Execution, f.Status.Result.Finished; {
	case ex == "closed" && fin != "failure":
		st.State, st.Progress = "CONFIRMED", 100
		d, err := s.Store.Deployment(ctx, e.DeploymentID)
		if err != nil {
			writeDDIError(w, err)
			return
		}
		st.Version = d.ReleaseID
		note = text
	case ex == "closed" || ex == "canceled":
		st.State = "FAILED"
		st.Error = text
		if ex == "canceled" {
			st.Error = "canceled by device: " + text
		}
		if st.Error == "" {
			st.Error = "device reported failure"
		}
	case ex == "rejected":
		st.State = ""
		note = "hawkBit: rejected: " + text
	case ex == "downloaded":
		st.State = "VERIFYING"
		note = text
	default:
		st.State = deviceStateOf(e.State)
		note = text
	}
	if len(st.Error) > 4000 {
		st.Error = st.Error[:4000]
	}
	if st.State != "" {
		if _, err := s.Store.ReportStatus(ctx, q.device, e.DeploymentID, st); err != nil {
			if errors.Is(err, fleet.ErrConflict) {
				err = fmt.Errorf("%w: %v", ErrDDIGone, err)
			}
			writeDDIError(w, err)
			return
		}
		s.metrics.reports.WithLabelValues(st.State).Inc()
	}
	if note != "" && len(details) > 0 {
		if n, ok := s.Store.(fleet.ExecutionNoter); ok {
			if err := n.NoteExecution(ctx, e.ID, "hawkBit "+f.Status.Execution+": "+note); err != nil {
				s.Logger.Warn("ddi: note", "err", err)
			}
		}
	}
	w.WriteHeader(http.StatusOK)
}

type ddiCancel struct {
	ID           string `json:"id"`
	CancelAction struct {
		StopID string `json:"stopId"`
	} `json:"cancelAction"`
}

// ddiCancelAction answers a cancellation the device has not yet
// acknowledged; 404 for any other action.
func (s *Server) ddiCancelAction(w http.ResponseWriter, r *http.Request, q *ddiReq) {
	e, err := s.ddiAction(r, q)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	if e.State != fleet.ExecCanceled || e.Artifact == "" {
		writeDDIError(w, fmt.Errorf("%w: action %d is not being canceled", fleet.ErrNotFound, e.ID))
		return
	}
	var c ddiCancel
	c.ID = strconv.FormatInt(e.ID, 10)
	c.CancelAction.StopID = c.ID
	writeJSON(w, http.StatusOK, c)
}

// ddiCancelFeedback records the device's answer to a cancellation in the
// execution's history: closed or canceled with success/none acknowledges
// it; rejected or failure refuses it (the execution stays canceled on our
// side; the history says the device disagreed). Other values are noted.
// A second acknowledgement is 410 Gone.
func (s *Server) ddiCancelFeedback(w http.ResponseWriter, r *http.Request, q *ddiReq) {
	e, err := s.ddiAction(r, q)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	f, err := s.decodeFeedback(w, r)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	if e.State != fleet.ExecCanceled || e.Artifact == "" {
		writeDDIError(w, fmt.Errorf("%w: action %d is not being canceled", fleet.ErrNotFound, e.ID))
		return
	}
	ctx := r.Context()
	full, err := s.Store.Execution(ctx, e.ID)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	if !pendingCancel(full) {
		writeDDIError(w, fmt.Errorf("%w: cancellation of action %d already answered", ErrDDIGone, e.ID))
		return
	}
	ex, fin := f.Status.Execution, f.Status.Result.Finished
	msg := "hawkBit cancel feedback " + ex + "/" + fin
	switch {
	case (ex == "closed" || ex == "canceled") && fin != "failure":
		msg = cancelAcked
	case ex == "rejected" || fin == "failure":
		msg = cancelRejected
	}
	if t := f.detailText(); t != "" {
		msg += ": " + t
	}
	n, ok := s.Store.(fleet.ExecutionNoter)
	if !ok {
		writeDDIError(w, errors.New("store cannot record notes"))
		return
	}
	if err := n.NoteExecution(ctx, e.ID, msg); err != nil {
		writeDDIError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// DDIConfigData is the body of PUT configData.
type DDIConfigData struct {
	ID     json.RawMessage   `json:"id,omitempty"`
	Time   json.RawMessage   `json:"time,omitempty"`
	Status json.RawMessage   `json:"status,omitempty"`
	Mode   string            `json:"mode,omitempty"`
	Data   map[string]string `json:"data"`
}

// ddiConfigData sets the device's attributes: merge (default) adds and
// overwrites keys, replace sets exactly data, remove deletes data's keys.
func (s *Server) ddiConfigData(w http.ResponseWriter, r *http.Request, q *ddiReq) {
	var c DDIConfigData
	if err := s.decode(w, r, &c); err != nil {
		writeDDIError(w, err)
		return
	}
	if c.Data == nil {
		writeDDIError(w, fmt.Errorf("%w: configData needs data", fleet.ErrInvalid))
		return
	}
	ctx := r.Context()
	dev, err := s.Store.Device(ctx, q.device)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	attrs := map[string]string{}
	switch c.Mode {
	case "", "merge":
		maps.Copy(attrs, dev.Attributes)
		maps.Copy(attrs, c.Data)
	case "replace":
		maps.Copy(attrs, c.Data)
	case "remove":
		maps.Copy(attrs, dev.Attributes)
		for k := range c.Data {
			delete(attrs, k)
		}
	default:
		writeDDIError(w, fmt.Errorf("%w: mode %q not merge, replace or remove", fleet.ErrInvalid, c.Mode))
		return
	}
	if _, err := s.Store.CheckIn(ctx, q.device, fleet.CheckIn{Attributes: attrs}); err != nil {
		writeDDIError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// ddiDownload serves an artifact of the action's release with Range and
// ETag, or "NAME.MD5SUM": the MD5 in md5sum(1) format ("hex  NAME").
func (s *Server) ddiDownload(w http.ResponseWriter, r *http.Request, q *ddiReq) {
	e, err := s.ddiOfferedAction(r, q)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	name := r.PathValue("name")
	if err := fleet.ValidName(name); err != nil {
		writeDDIError(w, err)
		return
	}
	d, err := s.Store.Deployment(r.Context(), e.DeploymentID)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	rel, err := s.Store.Release(r.Context(), d.ReleaseID)
	if err != nil {
		writeDDIError(w, err)
		return
	}
	a, ok := rel.Artifact(name)
	if !ok {
		base, isMD5 := strings.CutSuffix(name, ".MD5SUM")
		if a, ok = rel.Artifact(base); !ok || !isMD5 {
			writeDDIError(w, fmt.Errorf("%w: release %s has no artifact %q", fleet.ErrNotFound, rel.ID, name))
			return
		}
		hs, err := s.blobHashes(a.SHA256)
		if err != nil {
			writeDDIError(w, err)
			return
		}
		_, file, _ := strings.Cut(base, "/")
		if file == "" {
			file = base
		}
		body := []byte(hs.MD5 + "  " + file)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Disposition", "attachment;filename="+file+".MD5SUM")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		return
	}
	b, err := s.Blobs.Open(a.SHA256)
	if err != nil {
		s.Logger.Error("blob missing", "sha256", a.SHA256, "err", err)
		writeJSON(w, http.StatusInternalServerError, ddiError{"hawkbit.server.error.internalservererror", "artifact unavailable"})
		return
	}
	defer b.Close()
	h := w.Header()
	h.Set("ETag", `"`+a.SHA256+`"`)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", "attachment;filename="+a.Name[strings.LastIndex(a.Name, "/")+1:])
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
