package http

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/otakit/otakit/fleet"
)

// AuthSets lists devices' auth requests (Mender devices) with the given
// status, or all when status is "".
func (c *Client) AuthSets(ctx context.Context, status string) ([]*fleet.AuthSet, error) {
	var out []*fleet.AuthSet
	p := "/api/v1/mender/auth-sets"
	if status != "" {
		p += "?status=" + url.QueryEscape(status)
	}
	return out, c.doJSON(ctx, http.MethodGet, p, nil, &out)
}

// SetAuthStatus accepts or rejects (action "accept" or "reject") a
// device's auth request.
func (c *Client) SetAuthStatus(ctx context.Context, deviceID, action string) (*fleet.AuthSet, error) {
	var out fleet.AuthSet
	return &out, c.doJSON(ctx, http.MethodPost, "/api/v1/mender/auth-sets/"+url.PathEscape(deviceID)+"/"+url.PathEscape(action), nil, &out)
}

// hasMenderArtifact reports whether a release folder holds a Mender
// Artifact, from which the server makes the manifest when there is none.
func hasMenderArtifact(names []string) bool {
	for _, n := range names {
		if strings.HasSuffix(n, MenderArtifactExt) {
			return true
		}
	}
	return false
}
