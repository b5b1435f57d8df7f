package http_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
)

// publishFile uploads a one-file release (?version=, no manifest.json),
// the form DDI clients' artifacts such as .swu files take.
func (e *env) publishFile(version, name string, data []byte) *fleet.Release {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	w, _ := mw.CreateFormFile("file", name)
	w.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", e.url+"/api/v1/releases?version="+version, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("publish %s: %d %s", version, resp.StatusCode, b)
	}
	var rel fleet.Release
	if err := json.Unmarshal(b, &rel); err != nil {
		e.t.Fatal(err)
	}
	return &rel
}

func (e *env) deploy(release string, devices ...string) *fleet.Deployment {
	e.t.Helper()
	d, err := e.admin.CreateDeployment(context.Background(), fleethttp.NewDeployment{Release: release,
		Target: fleet.Target{Devices: devices}})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// ddiCall makes one DDI request and returns status, headers and body.
func ddiCall(t *testing.T, method, url, auth string, body []byte, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

type ddiPoll struct {
	Config struct {
		Polling struct {
			Sleep string `json:"sleep"`
		} `json:"polling"`
	} `json:"config"`
	Links map[string]struct {
		Href string `json:"href"`
	} `json:"_links"`
}

func poll(t *testing.T, base, auth string) ddiPoll {
	t.Helper()
	code, _, b := ddiCall(t, "GET", base, auth, nil)
	if code != http.StatusOK {
		t.Fatalf("poll: %d %s", code, b)
	}
	var p ddiPoll
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("poll: %v: %s", err, b)
	}
	return p
}

// snapshot is what must not change after a refused request.
func snapshot(t *testing.T, e *env, device string) string {
	t.Helper()
	d, err := e.store.Device(context.Background(), device)
	if err != nil {
		t.Fatal(err)
	}
	d.LastSeen = d.CreatedAt // polls move it; that is not data
	es, err := e.store.Executions(context.Background(), fleet.ExecutionFilter{DeviceID: device})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal([]any{d, es})
	return string(b)
}

func TestDDIDeploymentFlow(t *testing.T) {
	e := newEnv(t, func(s *fleethttp.Server) {
		s.PollSeconds = 90
		s.DDI.Tenants = map[string]string{"DEFAULT": "gw-secret", "other": ""}
	})
	devs := e.devices(2, "ddi", "", nil)
	a, b := devs[0], devs[1]
	tokA := "TargetToken " + a.c.Token
	tokB := "TargetToken " + b.c.Token
	baseA := e.url + "/DEFAULT/controller/v1/" + a.id
	swu := image(300_000, 7)
	rel := e.publishFile("1.0.1", "app.swu", swu)
	if len(rel.Artifacts) != 1 || rel.Artifacts[0].Kind != fleet.KindFull {
		t.Fatalf("release artifacts %+v", rel.Artifacts)
	}
	dep := e.deploy(rel.ID, a.id)

	// Authentication.
	for _, c := range []struct {
		name, url, auth string
		want            int
	}{
		{"no credentials", baseA, "", 401},
		{"unknown token", baseA, "TargetToken otd_nope", 401},
		{"bearer is not DDI", baseA, "Bearer " + a.c.Token, 401},
		{"another device's token", baseA, tokB, 403},
		{"unknown tenant", e.url + "/nope/controller/v1/" + a.id, tokA, 404},
		{"wrong gateway token", baseA, "GatewayToken nope", 401},
		{"gateway token of tenant without one", e.url + "/other/controller/v1/" + a.id, "GatewayToken gw-secret", 401},
		{"gateway token, unknown device", e.url + "/DEFAULT/controller/v1/ghost", "GatewayToken gw-secret", 404},
		{"gateway token", baseA, "GatewayToken gw-secret", 200},
	} {
		if code, _, body := ddiCall(t, "GET", c.url, c.auth, nil); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}

	// Poll: sleep, deploymentBase and configData (no attributes yet), ETag.
	p := poll(t, baseA, tokA)
	if p.Config.Polling.Sleep != "00:01:30" {
		t.Errorf("sleep %q", p.Config.Polling.Sleep)
	}
	if _, ok := p.Links["configData"]; !ok {
		t.Errorf("no configData link for a device without attributes: %+v", p.Links)
	}
	dbHref := p.Links["deploymentBase"].Href
	if !strings.HasPrefix(dbHref, baseA+"/deploymentBase/") {
		t.Fatalf("deploymentBase link %q", dbHref)
	}
	code, h, _ := ddiCall(t, "GET", baseA, tokA, nil)
	if code != 200 || h.Get("ETag") == "" {
		t.Fatalf("poll %d etag %q", code, h.Get("ETag"))
	}
	if code, _, _ := ddiCall(t, "GET", baseA, tokA, nil, "If-None-Match", h.Get("ETag")); code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", code)
	}

	// deploymentBase.
	code, _, body := ddiCall(t, "GET", dbHref, tokA, nil)
	if code != 200 {
		t.Fatalf("deploymentBase: %d %s", code, body)
	}
	var base struct {
		ID         string `json:"id"`
		Deployment struct {
			Download, Update string
			Chunks           []struct {
				Part, Version, Name string
				Artifacts           []struct {
					Filename string
					Size     int64
					Hashes   map[string]string
					Links    map[string]struct{ Href string } `json:"_links"`
				}
			}
		}
	}
	if err := json.Unmarshal(body, &base); err != nil {
		t.Fatal(err)
	}
	if base.Deployment.Download != "forced" || base.Deployment.Update != "forced" || len(base.Deployment.Chunks) != 1 ||
		len(base.Deployment.Chunks[0].Artifacts) != 1 || base.Deployment.Chunks[0].Version != "1.0.1" {
		t.Fatalf("deploymentBase %s", body)
	}
	art := base.Deployment.Chunks[0].Artifacts[0]
	s1, m5, s256 := sha1.Sum(swu), md5.Sum(swu), sha256.Sum256(swu)
	wantHashes := map[string]string{"sha1": hex.EncodeToString(s1[:]), "md5": hex.EncodeToString(m5[:]), "sha256": hex.EncodeToString(s256[:])}
	if art.Filename != "app.swu" || art.Size != int64(len(swu)) || !reflect.DeepEqual(art.Hashes, wantHashes) {
		t.Fatalf("artifact %+v", art)
	}
	dl := art.Links["download"].Href
	if dl == "" || art.Links["download-http"].Href != dl {
		t.Fatalf("download links %+v", art.Links)
	}
	actionID := base.ID
	var execID int64
	fmt.Sscan(actionID, &execID)

	// Downloads: whole, Range, MD5SUM.
	if code, _, got := ddiCall(t, "GET", dl, tokA, nil); code != 200 || !bytes.Equal(got, swu) {
		t.Fatalf("download: %d, %d bytes", code, len(got))
	}
	if code, _, got := ddiCall(t, "GET", dl, tokA, nil, "Range", "bytes=1000-1999"); code != 206 || !bytes.Equal(got, swu[1000:2000]) {
		t.Fatalf("range download: %d, %d bytes", code, len(got))
	}
	if code, _, got := ddiCall(t, "GET", dl+".MD5SUM", tokA, nil); code != 200 || string(got) != wantHashes["md5"]+"  app.swu" {
		t.Fatalf("MD5SUM: %d %q", code, got)
	}

	// Bad requests change nothing.
	before := snapshot(t, e, a.id)
	fb := func(url, auth, body string) int {
		code, _, _ := ddiCall(t, "POST", url, auth, []byte(body))
		return code
	}
	baseB := e.url + "/DEFAULT/controller/v1/" + b.id
	big := `{"status":{"execution":"proceeding","result":{"finished":"none"},"details":["` + strings.Repeat("x", 2<<20) + `"]}}`
	for _, c := range []struct {
		name string
		code int
		want int
	}{
		{"non-integer action", fb(baseA+"/deploymentBase/abc/feedback", tokA, `{}`), 400},
		{"unknown action", fb(baseA+"/deploymentBase/999999/feedback", tokA, `{"status":{"execution":"closed","result":{"finished":"success"}}}`), 404},
		{"another device's action", fb(baseB+"/deploymentBase/"+actionID+"/feedback", tokB, `{"status":{"execution":"closed","result":{"finished":"success"}}}`), 404},
		{"malformed JSON", fb(baseA+"/deploymentBase/"+actionID+"/feedback", tokA, `{"status":`), 400},
		{"bad execution", fb(baseA+"/deploymentBase/"+actionID+"/feedback", tokA, `{"status":{"execution":"done","result":{"finished":"success"}}}`), 400},
		{"bad finished", fb(baseA+"/deploymentBase/"+actionID+"/feedback", tokA, `{"status":{"execution":"closed","result":{"finished":"yes"}}}`), 400},
		{"oversize body", fb(baseA+"/deploymentBase/"+actionID+"/feedback", tokA, big), 413},
		{"cancel feedback for a live action", fb(baseA+"/cancelAction/"+actionID+"/feedback", tokA, `{"status":{"execution":"closed","result":{"finished":"success"}}}`), 404},
	} {
		if c.code != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.code, c.want)
		}
	}
	for _, c := range []struct{ url, auth string }{
		{baseB + "/deploymentBase/" + actionID, tokB},
		{baseB + "/softwaremodules/" + actionID + "/artifacts/app.swu", tokB},
		{baseA + "/deploymentBase/999999", tokA},
		{baseA + "/cancelAction/" + actionID, tokA},
		{baseA + "/installedBase/" + actionID, tokA},
		{baseA + "/softwaremodules/" + actionID + "/artifacts/other.swu", tokA},
	} {
		if code, _, body := ddiCall(t, "GET", c.url, c.auth, nil); code != 404 {
			t.Errorf("GET %s: %d %s, want 404", c.url, code, body)
		}
	}
	if code, _, _ := ddiCall(t, "PUT", baseA+"/configData", tokA, []byte(`{"mode":"sideways","data":{"a":"1"}}`)); code != 400 {
		t.Errorf("configData bad mode: %d", code)
	}
	if code, _, _ := ddiCall(t, "PUT", baseA+"/configData", tokA, []byte(`{"data":{"a":1}}`)); code != 400 {
		t.Errorf("configData non-string value: %d", code)
	}
	if after := snapshot(t, e, a.id); after != before {
		t.Errorf("refused requests changed the store:\n%s\n%s", before, after)
	}

	// Feedback: progress, then success.
	if c := fb(baseA+"/deploymentBase/"+actionID+"/feedback", tokA,
		`{"id":"`+actionID+`","time":"20261124T230000","status":{"execution":"proceeding","result":{"finished":"none","progress":{"cnt":1,"of":4}},"details":["Installing"]}}`); c != 200 {
		t.Fatalf("proceeding feedback: %d", c)
	}
	ex, _ := e.store.Execution(context.Background(), execID)
	if ex.State != fleet.ExecDownloading || ex.Progress != 25 {
		t.Fatalf("after proceeding: %s %d%%", ex.State, ex.Progress)
	}
	if c := fb(baseA+"/deploymentBase/"+actionID+"/feedback", tokA,
		`{"id":`+actionID+`,"status":{"execution":"closed","result":{"finished":"success"},"details":["Update Installed."]}}`); c != 200 {
		t.Fatalf("closed feedback: %d", c)
	}
	ex, _ = e.store.Execution(context.Background(), execID)
	if ex.State != fleet.ExecSuccess || ex.Progress != 100 {
		t.Fatalf("after closed: %s %d%%", ex.State, ex.Progress)
	}
	if d, _ := e.store.Device(context.Background(), a.id); d.CurrentVersion != "1.0.1" {
		t.Errorf("device version %q", d.CurrentVersion)
	}
	if st := e.deployment(dep.ID); st.State != fleet.DeploymentCompleted || st.Stats.States[fleet.ExecSuccess] != 1 {
		t.Errorf("deployment %s %+v", st.State, st.Stats)
	}
	if c := fb(baseA+"/deploymentBase/"+actionID+"/feedback", tokA, `{"status":{"execution":"closed","result":{"finished":"success"}}}`); c != 410 {
		t.Errorf("feedback on closed action: %d, want 410", c)
	}
	p = poll(t, baseA, tokA)
	if _, ok := p.Links["deploymentBase"]; ok {
		t.Errorf("closed action still offered: %+v", p.Links)
	}
	if !strings.HasSuffix(p.Links["installedBase"].Href, "/installedBase/"+actionID) {
		t.Errorf("installedBase link: %+v", p.Links)
	}
	if code, _, body := ddiCall(t, "GET", p.Links["installedBase"].Href, tokA, nil); code != 200 || !strings.Contains(string(body), "app.swu") {
		t.Errorf("installedBase: %d %s", code, body)
	}

	// configData modes.
	for _, c := range []struct {
		body string
		want map[string]string
	}{
		{`{"id":"","time":"20261124T230000","status":{"result":{"finished":"success"},"execution":"closed","details":[""]},"data":{"a":"1","b":"2"}}`, map[string]string{"a": "1", "b": "2"}},
		{`{"mode":"merge","data":{"b":"3","c":"4"}}`, map[string]string{"a": "1", "b": "3", "c": "4"}},
		{`{"mode":"remove","data":{"a":""}}`, map[string]string{"b": "3", "c": "4"}},
		{`{"mode":"replace","data":{"z":"9"}}`, map[string]string{"z": "9"}},
	} {
		if code, _, body := ddiCall(t, "PUT", baseA+"/configData", tokA, []byte(c.body)); code != 200 {
			t.Fatalf("configData %s: %d %s", c.body, code, body)
		}
		d, _ := e.store.Device(context.Background(), a.id)
		if !reflect.DeepEqual(d.Attributes, c.want) {
			t.Errorf("after %s: attributes %v, want %v", c.body, d.Attributes, c.want)
		}
	}
	if p := poll(t, baseA, tokA); p.Links["configData"].Href != "" {
		t.Errorf("configData still wanted: %+v", p.Links)
	}

	// Failure records the details.
	rel2 := e.publishFile("1.0.2", "app.swu", image(1000, 8))
	e.deploy(rel2.ID, a.id)
	href := poll(t, baseA, tokA).Links["deploymentBase"].Href
	id2 := strings.TrimPrefix(strings.SplitN(href, "?", 2)[0], baseA+"/deploymentBase/")
	if c := fb(baseA+"/deploymentBase/"+id2+"/feedback", tokA,
		`{"status":{"execution":"closed","result":{"finished":"failure"},"details":["ERROR : HASH mismatch","Image invalid"]}}`); c != 200 {
		t.Fatalf("failure feedback: %d", c)
	}
	var n2 int64
	fmt.Sscan(id2, &n2)
	ex, _ = e.store.Execution(context.Background(), n2)
	if ex.State != fleet.ExecFailure || !strings.Contains(ex.Error, "HASH mismatch") {
		t.Errorf("after failure: %s %q", ex.State, ex.Error)
	}

	// Cancel: the link replaces deploymentBase until acknowledged.
	rel3 := e.publishFile("1.0.3", "app.swu", image(1000, 9))
	dep3 := e.deploy(rel3.ID, a.id)
	href = poll(t, baseA, tokA).Links["deploymentBase"].Href
	id3 := strings.TrimPrefix(strings.SplitN(href, "?", 2)[0], baseA+"/deploymentBase/")
	if _, err := e.admin.DeploymentAction(context.Background(), dep3.ID, "cancel"); err != nil {
		t.Fatal(err)
	}
	p = poll(t, baseA, tokA)
	if _, ok := p.Links["deploymentBase"]; ok || p.Links["cancelAction"].Href != baseA+"/cancelAction/"+id3 {
		t.Fatalf("after cancel: %+v", p.Links)
	}
	code, _, body = ddiCall(t, "GET", baseA+"/cancelAction/"+id3, tokA, nil)
	if code != 200 || !strings.Contains(string(body), `"stopId":"`+id3+`"`) {
		t.Fatalf("cancelAction: %d %s", code, body)
	}
	if code, _, _ := ddiCall(t, "GET", baseA+"/deploymentBase/"+id3, tokA, nil); code != 404 {
		t.Errorf("deploymentBase of canceled action: %d", code)
	}
	if c := fb(baseA+"/deploymentBase/"+id3+"/feedback", tokA, `{"status":{"execution":"proceeding","result":{"finished":"none"},"details":["still downloading"]}}`); c != 200 {
		t.Errorf("feedback while cancel pending: %d, want 200", c)
	}
	ack := `{"id":` + id3 + `,"time":"20261124T230000","status":{"result":{"finished":"success"},"execution":"closed","details":["cancellation acknowledged."]}}`
	if c := fb(baseA+"/cancelAction/"+id3+"/feedback", tokA, ack); c != 200 {
		t.Fatalf("cancel feedback: %d", c)
	}
	if c := fb(baseA+"/cancelAction/"+id3+"/feedback", tokA, ack); c != 410 {
		t.Errorf("second cancel feedback: %d, want 410", c)
	}
	if p := poll(t, baseA, tokA); p.Links["cancelAction"].Href != "" {
		t.Errorf("cancel still pending after ack: %+v", p.Links)
	}
	var n3 int64
	fmt.Sscan(id3, &n3)
	ex, _ = e.store.Execution(context.Background(), n3)
	if ex.State != fleet.ExecCanceled || !hasNote(ex, "still downloading") || !hasNote(ex, "cancel acknowledged") {
		t.Errorf("canceled execution: %s %+v", ex.State, ex.History)
	}
	if c := fb(baseA+"/deploymentBase/"+id3+"/feedback", tokA, `{"status":{"execution":"closed","result":{"finished":"success"}}}`); c != 410 {
		t.Errorf("feedback after acknowledged cancel: %d, want 410", c)
	}
}

func TestPublishFileNeedsOneFile(t *testing.T) {
	e := newEnv(t)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, n := range []string{"a.swu", "b.swu"} {
		w, _ := mw.CreateFormFile("file", n)
		w.Write([]byte(n))
	}
	mw.Close()
	req, _ := http.NewRequest("POST", e.url+"/api/v1/releases?version=2.0.0", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("two files with ?version: %d, want 400", resp.StatusCode)
	}
	if n := countBlobs(t, e.blobs); n != 0 {
		t.Errorf("%d blobs left after refused upload", n)
	}
}

func FuzzDDIFeedback(f *testing.F) {
	f.Add([]byte(`{"id":"1","time":"20140511T121314","status":{"execution":"closed","result":{"finished":"success","progress":{"cnt":2,"of":5}},"details":["x"]}}`))
	f.Add([]byte(`{"status":{"execution":"proceeding","result":{"finished":"none","progress":{"cnt":-1,"of":0}}}}`))
	f.Add([]byte(`{"status":{"execution":"nope"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fb fleethttp.DDIFeedback
		if json.Unmarshal(b, &fb) != nil {
			return
		}
		if fb.Validate() == nil {
			if p := fb.Status.Result.Progress; p != nil && (p.Cnt < 0 || p.Of < 0) {
				t.Fatalf("negative progress accepted: %+v", p)
			}
		}
	})
}
