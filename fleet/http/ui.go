package http

import (
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/otakit/otakit/fleet"
)

//go:embed ui/*.html
var uiFiles embed.FS

// uiCookie carries the admin token for the dashboard.
const uiCookie = "ota_admin"

var uiFuncs = template.FuncMap{
	"inc":  func(i int) int { return i + 1 },
	"join": strings.Join,
	"pct": func(n, total int) int {
		if total == 0 {
			return 0
		}
		return 100 * n / total
	},
	"pct100": func(f float64) int {
		if f == 0 {
			f = 1
		}
		return int(f*100 + 0.5)
	},
}

// uiPages parses the dashboard's templates on first use: parsing them at
// start-up cost every run of the ota binary, most of which serve no page.
var uiPages = sync.OnceValue(func() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(uiFuncs).ParseFS(uiFiles, "ui/layout.html"))
	pages := map[string]*template.Template{}
	for _, p := range []string{"login", "releases", "deployments", "deployment", "devices", "device"} {
		pages[p] = template.Must(template.Must(layout.Clone()).ParseFS(uiFiles, "ui/"+p+".html"))
	}
	return pages
})

func (s *Server) routeUI(mux *http.ServeMux) {
	page := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.instrument(s.requireUI(h))) }
	mux.Handle("GET /ui/login", s.instrument(http.HandlerFunc(s.uiLoginForm)))
	mux.Handle("POST /ui/login", s.instrument(http.HandlerFunc(s.uiLogin)))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	page("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/deployments", http.StatusFound) })
	page("GET /ui/releases", s.uiReleases)
	page("GET /ui/deployments", s.uiDeployments)
	page("GET /ui/deployments/{id}", s.uiDeployment)
	page("GET /ui/deployments/{id}/live", s.uiLive)
	page("POST /ui/deployments/{id}/{action}", s.uiAction)
	page("GET /ui/devices", s.uiDevices)
	page("GET /ui/devices/{id}", s.uiDevice)
}

// requireUI accepts the admin token from the dashboard cookie or a bearer
// header; browsers without it are sent to the login form.
func (s *Server) requireUI(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			if c, err := r.Cookie(uiCookie); err == nil {
				tok = c.Value
			}
		}
		if !s.adminOK(tok) {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/live") {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			writeError(w, fleet.ErrUnauthorized)
			return
		}
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'")
		h(w, r)
	})
}

func (s *Server) render(w http.ResponseWriter, name string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := uiPages()[name].ExecuteTemplate(w, "layout", data); err != nil {
		s.Logger.Error("rendering page", "page", name, "err", err)
	}
}

func (s *Server) uiLoginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, "login", map[string]any{"Title": "Sign in"})
}

func (s *Server) uiLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	tok := r.PostFormValue("token")
	if !s.adminOK(tok) {
		w.WriteHeader(http.StatusForbidden)
		s.render(w, "login", map[string]any{"Title": "Sign in", "Error": "wrong token"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: tok, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, "/ui/") {
		next = "/ui/deployments"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) uiFail(w http.ResponseWriter, err error) {
	code := statusOf(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	http.Error(w, msg, code)
}

func (s *Server) uiReleases(w http.ResponseWriter, r *http.Request) {
	rs, err := s.Store.Releases(r.Context())
	if err != nil {
		s.uiFail(w, err)
		return
	}
	s.render(w, "releases", map[string]any{"Title": "Releases", "Releases": rs})
}

func (s *Server) uiDeployments(w http.ResponseWriter, r *http.Request) {
	ds, err := s.Store.Deployments(r.Context())
	if err != nil {
		s.uiFail(w, err)
		return
	}
	s.render(w, "deployments", map[string]any{"Title": "Deployments", "Deployments": ds})
}

func (s *Server) uiDeployment(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Deployment(r.Context(), r.PathValue("id"))
	if err != nil {
		s.uiFail(w, err)
		return
	}
	es, err := s.Store.Executions(r.Context(), fleet.ExecutionFilter{DeploymentID: d.ID, Limit: 500})
	if err != nil {
		s.uiFail(w, err)
		return
	}
	title := "Deployment " + d.ID
	if d.Name != "" {
		title = "Deployment " + d.Name
	}
	s.render(w, "deployment", map[string]any{"Title": title, "Deployment": d, "Executions": es})
}

func (s *Server) uiLive(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Deployment(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	es, err := s.Store.Executions(r.Context(), fleet.ExecutionFilter{DeploymentID: d.ID, Limit: 500})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deployment": d, "executions": nonNil(es)})
}

func (s *Server) uiAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var err error
	switch r.PathValue("action") {
	case "pause":
		_, err = s.Store.PauseDeployment(r.Context(), id)
	case "resume":
		_, err = s.Store.ResumeDeployment(r.Context(), id)
	case "cancel":
		_, err = s.Store.CancelDeployment(r.Context(), id)
	default:
		err = fleet.ErrNotFound
	}
	if err != nil && !errors.Is(err, fleet.ErrConflict) {
		s.uiFail(w, err)
		return
	}
	http.Redirect(w, r, "/ui/deployments/"+url.PathEscape(id), http.StatusSeeOther)
}

func (s *Server) uiDevices(w http.ResponseWriter, r *http.Request) {
	group := r.URL.Query().Get("group")
	ds, err := s.Store.Devices(r.Context(), fleet.DeviceFilter{Group: group, Limit: 1000})
	if err != nil {
		s.uiFail(w, err)
		return
	}
	s.render(w, "devices", map[string]any{"Title": "Devices", "Devices": ds, "Group": group})
}

func (s *Server) uiDevice(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		s.uiFail(w, err)
		return
	}
	es, err := s.Store.Executions(r.Context(), fleet.ExecutionFilter{DeviceID: d.ID, Limit: 100})
	if err != nil {
		s.uiFail(w, err)
		return
	}
	s.render(w, "device", map[string]any{"Title": "Device " + d.ID, "Device": d, "Executions": es})
}
