// Package http serves the fleet over HTTP: the admin API (bearer API
// token), the device API (per-device bearer tokens), artifact downloads
// with Range and ETag, the web dashboard, /healthz and /metrics. It also
// holds Go clients for both APIs (Client and DeviceClient).
//
// The API is documented in docs/api.md.
package http

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otakit/otakit/fleet"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults for Server limits.
const (
	DefaultMaxUpload   = 1 << 30 // bytes of one release upload
	DefaultMaxJSON     = 1 << 20 // bytes of a JSON request body
	DefaultPollSeconds = 60
)

// Server is the fleet's HTTP front end. Set the fields, then use Handler.
type Server struct {
	Store      fleet.Store
	Blobs      fleet.BlobStore
	AdminToken string
	Logger     *slog.Logger
	// Registry receives the server's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// MaxUpload caps a release upload; MaxJSON any JSON body.
	MaxUpload int64
	MaxJSON   int64
	// PollSeconds is the check-in interval suggested to devices.
	PollSeconds int
	// DDI configures the hawkBit DDI API (tenants, gateway tokens).
	DDI DDIConfig
	// Mender, when set, also serves the Mender device API (mender.go).
	Mender *MenderOptions
	// RequireClientCert refuses device calls without a verified TLS client
	// certificate. Whenever one is presented, its CommonName must be the
	// device id the token belongs to.
	RequireClientCert bool

	once      sync.Once
	handler   http.Handler
	metrics   *metrics
	publishMu sync.Mutex // uploads are serialised so blob clean-up is race-free
}

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	checkins  *prometheus.CounterVec
	reports   *prometheus.CounterVec
	downloads prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ota_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ota_http_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5}},
			[]string{"route"}),
		checkins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ota_checkins_total",
			Help: "Device check-ins by answer (offer or none)."}, []string{"answer"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ota_status_reports_total",
			Help: "Device status reports by reported state."}, []string{"state"}),
		downloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "ota_download_bytes_total",
			Help: "Artifact bytes sent to devices."}),
	}
	reg.MustRegister(m.requests, m.duration, m.checkins, m.reports, m.downloads)
	return m
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	s.once.Do(s.init)
	return s.handler
}

func (s *Server) init() {
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
	}
	if s.MaxUpload <= 0 {
		s.MaxUpload = DefaultMaxUpload
	}
	if s.MaxJSON <= 0 {
		s.MaxJSON = DefaultMaxJSON
	}
	if s.PollSeconds <= 0 {
		s.PollSeconds = DefaultPollSeconds
	}
	s.metrics = newMetrics(s.Registry)
	mux := http.NewServeMux()
	admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.instrument(s.requireAdmin(h))) }
	device := func(pattern string, h deviceHandler) { mux.Handle(pattern, s.instrument(s.requireDevice(h))) }

	mux.Handle("GET /healthz", s.instrument(http.HandlerFunc(s.healthz)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))

	admin("POST /api/v1/releases", s.createRelease)
	admin("GET /api/v1/releases", s.listReleases)
	admin("GET /api/v1/releases/{id}", s.getRelease)
	admin("GET /api/v1/releases/{id}/manifest", s.getReleaseManifest)
	admin("POST /api/v1/devices", s.createDevices)
	admin("GET /api/v1/devices", s.listDevices)
	admin("GET /api/v1/devices/{id}", s.getDevice)
	admin("PATCH /api/v1/devices/{id}", s.patchDevice)
	admin("GET /api/v1/devices/{id}/executions", s.deviceExecutions)
	admin("POST /api/v1/deployments", s.createDeployment)
	admin("GET /api/v1/deployments", s.listDeployments)
	admin("GET /api/v1/deployments/{id}", s.getDeployment)
	admin("POST /api/v1/deployments/{id}/{action}", s.deploymentAction)
	admin("GET /api/v1/deployments/{id}/executions", s.deploymentExecutions)
	admin("GET /api/v1/executions/{id}", s.getExecution)

	device("POST /api/v1/device/checkin", s.checkIn)
	device("GET /api/v1/device/deployments/{id}/manifest", s.deviceManifest)
	device("GET /api/v1/device/deployments/{id}/artifacts/{name...}", s.download)
	device("HEAD /api/v1/device/deployments/{id}/artifacts/{name...}", s.download)
	device("POST /api/v1/device/deployments/{id}/status", s.reportStatus)
	device("GET /api/v1/device/executions", s.ownExecutions)

	if s.Mender != nil {
		s.routeMender(mux)
	}
	s.routeUI(mux)
	s.routeDDI(mux)
	s.handler = mux
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.Store.Releases(ctx); err != nil {
		http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// recorder captures the status code while keeping io.ReaderFrom, so file
// downloads still go through sendfile.
type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	r.bytes += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		route := r.Pattern
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		if rec.code >= 500 {
			s.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", rec.code)
		} else if s.Logger.Enabled(r.Context(), slog.LevelDebug) {
			s.Logger.Debug("request", "method", r.Method, "path", r.URL.Path, "code", rec.code, "dur", time.Since(start))
		}
	})
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

func (s *Server) adminOK(token string) bool {
	return s.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.AdminToken)) == 1
}

// requireAdmin answers 401 without credentials and 403 with wrong ones.
func (s *Server) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ota-admin"`)
			writeError(w, fmt.Errorf("%w: missing bearer token", fleet.ErrUnauthorized))
			return
		}
		if !s.adminOK(tok) {
			writeError(w, fmt.Errorf("%w: not an admin token", fleet.ErrForbidden))
			return
		}
		h(w, r)
	})
}

type deviceHandler func(w http.ResponseWriter, r *http.Request, deviceID string)

// requireDevice answers 401 without a token and 403 for an unknown one.
func (s *Server) requireDevice(h deviceHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ota-device"`)
			writeError(w, fmt.Errorf("%w: missing bearer token", fleet.ErrUnauthorized))
			return
		}
		id, err := s.Store.AuthenticateDevice(r.Context(), tok)
		if errors.Is(err, fleet.ErrUnauthorized) {
			writeError(w, fmt.Errorf("%w: unknown device token", fleet.ErrForbidden))
			return
		}
		if err != nil {
			writeError(w, err)
			return
		}
		// Optional mTLS: a verified client certificate must name this
		// device, so a stolen token is useless without the device's key.
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != id {
				writeError(w, fmt.Errorf("%w: client certificate is for %q, token for %q", fleet.ErrForbidden, cn, id))
				return
			}
		} else if s.RequireClientCert {
			writeError(w, fmt.Errorf("%w: a client certificate is required", fleet.ErrForbidden))
			return
		}
		h(w, r, id)
	})
}

// apiError is the JSON body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func statusOf(err error) int {
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, fleet.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, fleet.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, fleet.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, fleet.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, fleet.ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	writeJSON(w, code, apiError{msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

// decode reads one JSON value of at most MaxJSON bytes, refusing unknown
// trailing data.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.MaxJSON)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return err
		}
		return fmt.Errorf("%w: malformed JSON: %v", fleet.ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: malformed JSON: trailing data", fleet.ErrInvalid)
	}
	return nil
}

// osFiler is implemented by blobs backed by a local file.
type osFiler interface{ OSFile() *os.File }
