package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// API is the JSON/HTTP API server (http_listen_addr). The engine registers
// /engine/ping; other packages add their handlers with Handle before Serve.
type API struct {
	mux *http.ServeMux
	srv *http.Server
}

// NewAPI returns an API with /engine/ping registered.
func NewAPI(logger *slog.Logger) *API {
	a := &API{mux: http.NewServeMux()}
	a.srv = &http.Server{
		Handler:           a.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	a.HandleJSON("GET /engine/ping", func(*http.Request) (any, int) { return map[string]string{"status": "ok"}, 200 })
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"error": "not found: " + r.URL.Path}, http.StatusNotFound)
	})
	return a
}

// HandleJSON registers fn for pattern (net/http ServeMux syntax); fn returns the
// value to write as indented JSON and the HTTP status.
func (a *API) HandleJSON(pattern string, fn func(*http.Request) (any, int)) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		v, status := fn(r)
		writeJSON(w, v, status)
	})
}

func writeJSON(w http.ResponseWriter, v any, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	enc.Encode(v)
}

// Serve serves the API on l until Shutdown; it returns http.ErrServerClosed then.
func (a *API) Serve(l net.Listener) error { return a.srv.Serve(l) }

// Shutdown stops the API, waiting for requests in flight (see http.Server.Shutdown).
func (a *API) Shutdown(ctx context.Context) error { return a.srv.Shutdown(ctx) }
