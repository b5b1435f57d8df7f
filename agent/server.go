package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Offer is a server's answer to a check-in when an update is available.
type Offer struct {
	// Manifest is the signed manifest, verified by the agent before use.
	Manifest []byte
	// BaseURL resolves relative artifact URLs (usually the manifest's URL).
	BaseURL string
	// Artifact, when set, is the server's choice among the manifest's
	// files (fleet servers pick the smallest one the device can use). The
	// agent still takes size and digest from the verified manifest.
	Artifact string
	// ArtifactURL, when set, is where to download that artifact.
	ArtifactURL string
	// Deployment names the rollout, echoed in status reports.
	Deployment string
}

// DownloadResponse is an open download.
type DownloadResponse struct {
	Body io.ReadCloser
	// Offset is where Body starts in the file: the requested offset when
	// the server honoured the range, 0 when it sent the whole file (the
	// file changed, or the server does not do ranges).
	Offset int64
	// Total is the file's full size, or -1 when unknown.
	Total int64
	// ETag identifies this version of the file, when the server gives one.
	ETag string
}

// Server is the update server as the device sees it.
type Server interface {
	// CheckIn reports the device and returns an offer, or nil when there is
	// no update for it.
	CheckIn(ctx context.Context, dev Device) (*Offer, error)
	// Download opens url from offset; etag, when not empty, makes the
	// server send the whole file instead if it changed (If-Range).
	Download(ctx context.Context, url string, offset int64, etag string) (*DownloadResponse, error)
	// Report sends a status update; the agent does not stop on its errors.
	// deployment is the Offer's Deployment.
	Report(ctx context.Context, dev Device, deployment string, st Status) error
}

// ErrServer is returned for an unexpected answer from the server.
var ErrServer = errors.New("agent: server error")

// HTTPServer is a Server over plain HTTP(S). With only ManifestURL set it
// works against any static file server: check-in fetches the manifest and
// artifacts are fetched relative to it; reports are dropped unless
// ReportURL is set.
type HTTPServer struct {
	// ManifestURL is the signed manifest's address.
	ManifestURL string
	// ReportURL, if set, receives status reports as JSON POSTs.
	ReportURL string
	// Token, if set, is sent as a bearer token.
	Token string
	// Client is the HTTP client; nil means http.DefaultClient.
	Client *http.Client
}

func (s *HTTPServer) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return http.DefaultClient
}

func (s *HTTPServer) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	return req, nil
}

// CheckIn fetches the manifest; 404 and 204 mean no update.
func (s *HTTPServer) CheckIn(ctx context.Context, dev Device) (*Offer, error) {
	req, err := s.newRequest(ctx, http.MethodGet, s.ManifestURL, nil)
	if err != nil {
		return nil, fmt.Errorf("agent: check-in: %w", err)
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: check-in: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusNoContent:
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: check-in: %s", ErrServer, resp.Status)
	}
	const maxManifest = 1 << 20
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("agent: check-in: %w", err)
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("%w: manifest larger than %d bytes", ErrServer, maxManifest)
	}
	return &Offer{Manifest: b, BaseURL: s.ManifestURL}, nil
}

// Download requests url from offset with Range and If-Range.
func (s *HTTPServer) Download(ctx context.Context, u string, offset int64, etag string) (*DownloadResponse, error) {
	return httpDownload(ctx, s.client(), func(ctx context.Context, u string) (*http.Request, error) {
		return s.newRequest(ctx, http.MethodGet, u, nil)
	}, u, offset, etag)
}

// Report posts st as JSON to ReportURL, if set.
func (s *HTTPServer) Report(ctx context.Context, dev Device, deployment string, st Status) error {
	if s.ReportURL == "" {
		return nil
	}
	return postJSON(ctx, s.client(), s.Token, s.ReportURL, st, nil)
}

// httpDownload performs a ranged GET and interprets 200, 206 and errors.
func httpDownload(ctx context.Context, c *http.Client, newReq func(context.Context, string) (*http.Request, error), u string, offset int64, etag string) (*DownloadResponse, error) {
	req, err := newReq(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("agent: download: %w", err)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		if etag != "" {
			req.Header.Set("If-Range", etag)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: download: %w", err)
	}
	d := &DownloadResponse{Body: resp.Body, Total: -1, ETag: resp.Header.Get("ETag")}
	switch resp.StatusCode {
	case http.StatusOK:
		d.Total = resp.ContentLength
	case http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		d.Offset, d.Total = start, total
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: download %s: %s", ErrServer, u, resp.Status)
	}
	return d, nil
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(v string) (start, total int64, err error) {
	bad := fmt.Errorf("%w: bad Content-Range %q", ErrServer, v)
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, bad
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, bad
	}
	first, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, bad
	}
	start, err = strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, bad
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < start {
			return 0, 0, bad
		}
	}
	return start, total, nil
}

// resolveURL resolves ref against base.
func resolveURL(base, ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("agent: artifact URL %q: %w", ref, err)
	}
	if base == "" {
		return r.String(), nil
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("agent: base URL %q: %w", base, err)
	}
	return b.ResolveReference(r).String(), nil
}

// postJSON posts v as JSON and decodes a JSON answer into out when out is
// not nil.
func postJSON(ctx context.Context, c *http.Client, token, u string, v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("agent: encode %s: %w", u, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("agent: post %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("agent: post %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%w: post %s: %s: %s", ErrServer, u, resp.Status, bytes.TrimSpace(msg))
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
		return fmt.Errorf("%w: decode answer of %s: %v", ErrServer, u, err)
	}
	return nil
}
