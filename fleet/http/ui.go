package http

import "net/http"

func (s *Server) routeUI(mux *http.ServeMux) {}
