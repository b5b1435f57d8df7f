package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// FleetServer is a Server speaking otakit's fleet device API (`ota serve`):
//
//	POST /api/v1/device/checkin                      check-in → offer
//	GET  /api/v1/device/deployments/{id}/manifest    the signed manifest
//	GET  /api/v1/device/deployments/{id}/artifacts/… download with Range/If-Range
//	POST /api/v1/device/deployments/{id}/status      updateStatus reports
//
// every call authenticated by the device's bearer token.
type FleetServer struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Token is the device's token from provisioning.
	Token string
	// Client is the HTTP client; nil means http.DefaultClient.
	Client *http.Client
	// PollSeconds is the check-in interval the server asked for last.
	PollSeconds int
}

func (s *FleetServer) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return http.DefaultClient
}

func (s *FleetServer) url(path string) string {
	return strings.TrimSuffix(s.URL, "/") + path
}

// fleetCheckIn is the check-in request body.
type fleetCheckIn struct {
	CurrentVersion    string            `json:"currentVersion"`
	HardwareRevision  string            `json:"hardwareRevision,omitempty"`
	BootloaderVersion string            `json:"bootloaderVersion,omitempty"`
	Attributes        map[string]string `json:"attributes,omitempty"`
}

// fleetOffer is the check-in answer.
type fleetOffer struct {
	Update      bool            `json:"update"`
	PollSeconds int             `json:"pollSeconds"`
	Deployment  string          `json:"deployment"`
	Version     string          `json:"version"`
	Manifest    json.RawMessage `json:"manifest"`
	ManifestURL string          `json:"manifestUrl"`
	Artifact    *struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	} `json:"artifact"`
}

// CheckIn posts the device's versions and returns the offer, if any. The
// manifest is fetched verbatim from the deployment's manifest URL so that
// its bytes are exactly what was signed.
func (s *FleetServer) CheckIn(ctx context.Context, dev Device) (*Offer, error) {
	var ans fleetOffer
	req := fleetCheckIn{dev.Version, dev.HardwareRevision, dev.BootloaderVersion, dev.Attributes}
	if err := postJSON(ctx, s.client(), s.Token, s.url("/api/v1/device/checkin"), req, &ans); err != nil {
		return nil, err
	}
	if ans.PollSeconds > 0 {
		s.PollSeconds = ans.PollSeconds
	}
	if !ans.Update {
		return nil, nil
	}
	if ans.Artifact == nil || ans.Deployment == "" {
		return nil, fmt.Errorf("%w: offer without deployment or artifact", ErrServer)
	}
	off := &Offer{Manifest: ans.Manifest, BaseURL: s.url("/"), Artifact: ans.Artifact.Name,
		ArtifactURL: ans.Artifact.URL, Deployment: ans.Deployment}
	if ans.ManifestURL != "" {
		m, err := s.get(ctx, ans.ManifestURL)
		if err != nil {
			return nil, err
		}
		off.Manifest = m
	}
	return off, nil
}

func (s *FleetServer) get(ctx context.Context, ref string) ([]byte, error) {
	u, err := resolveURL(s.url("/"), ref)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: get %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: get %s: %s", ErrServer, u, resp.Status)
	}
	const maxManifest = 1 << 20
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err == nil && len(b) > maxManifest {
		err = fmt.Errorf("%w: %s larger than %d bytes", ErrServer, u, maxManifest)
	}
	return b, err
}

// Download fetches an artifact with Range and If-Range.
func (s *FleetServer) Download(ctx context.Context, u string, offset int64, etag string) (*DownloadResponse, error) {
	return httpDownload(ctx, s.client(), func(ctx context.Context, u string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+s.Token)
		}
		return req, err
	}, u, offset, etag)
}

// Report posts st to the deployment's status endpoint; without a
// deployment there is nothing to report to.
func (s *FleetServer) Report(ctx context.Context, dev Device, deployment string, st Status) error {
	if deployment == "" {
		return nil
	}
	return postJSON(ctx, s.client(), s.Token, s.url("/api/v1/device/deployments/"+url.PathEscape(deployment)+"/status"), st, nil)
}
