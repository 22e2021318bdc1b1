package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// API is the JSON/HTTP API server (http_listen_addr). The engine registers
// /engine/ping; other packages add their handlers with HandleJSON, HandleAdmin
// and Handle before Serve. Every answer of HandleJSON and HandleAdmin
// handlers, errors included, is indented JSON; an unknown path is a 404 with
// {"error": "not found: PATH"}.
type API struct {
	mux      *http.ServeMux
	srv      *http.Server
	allow    []netip.Prefix // besides loopback, the clients HandleAdmin lets in
	mu       sync.Mutex
	patterns []string // what Patterns returns, in registration order
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

// APIListenAddr is the address to listen on for addr, an http_listen_addr
// (or dashboard/pprof address): a bare ":port" binds the loopback interface, "127.0.0.1:port"; any address with a host is
// returned unchanged ("0.0.0.0:9101" still binds every interface, on purpose).
// The original bound every interface for ":port".
func APIListenAddr(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "127.0.0.1" + addr
	}
	return addr
}

// SetAdminAllow sets the CIDRs (http_admin_allow, e.g. "10.0.0.0/8") whose
// clients HandleAdmin endpoints accept besides loopback clients. It returns an
// error naming the first entry that is not a CIDR, and then changes nothing.
// Call it before Serve.
func (a *API) SetAdminAllow(cidrs []string) error {
	allow := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return fmt.Errorf("http_admin_allow: %q is not a CIDR: %w", c, err)
		}
		allow = append(allow, p.Masked())
	}
	a.allow = allow
	return nil
}

// HandleJSON registers fn for pattern (net/http ServeMux syntax); fn returns the
// value to write as indented JSON and the HTTP status.
func (a *API) HandleJSON(pattern string, fn func(*http.Request) (any, int)) {
	a.addPattern(pattern)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		v, status := fn(r)
		writeJSON(w, v, status)
	})
}

// HandleAdmin registers fn, an endpoint that changes state, for pattern, a
// path without a method ("/engine/reload"). It runs fn only for a POST
// (else 405, with Allow: POST) from a loopback client or one in
// http_admin_allow (else 403); either refusal is a JSON {"error": ...} that
// names the rule. It panics if pattern names a method.
func (a *API) HandleAdmin(pattern string, fn func(*http.Request) (any, int)) {
	if strings.ContainsAny(pattern, " \t") {
		panic("engine: HandleAdmin pattern must be a path without a method: " + pattern)
	}
	a.addPattern(http.MethodPost + " " + pattern)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, map[string]string{"error": r.URL.Path + " changes state: POST only, not " + r.Method},
				http.StatusMethodNotAllowed)
			return
		}
		if !a.adminClient(r.RemoteAddr) {
			writeJSON(w, map[string]string{"error": r.URL.Path + " changes state: only loopback clients " +
				"and those in http_admin_allow may use it, not " + r.RemoteAddr}, http.StatusForbidden)
			return
		}
		v, status := fn(r)
		writeJSON(w, v, status)
	})
}

// adminClient reports whether remote (a RemoteAddr, "ip:port") is loopback or
// in the admin allow list.
func (a *API) adminClient(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() {
		return true
	}
	for _, p := range a.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Handle registers h for pattern as is (for handlers that do not answer
// JSON, such as Prometheus's /metrics).
func (a *API) Handle(pattern string, h http.Handler) {
	a.addPattern(pattern)
	a.mux.Handle(pattern, h)
}

func (a *API) addPattern(p string) {
	a.mu.Lock()
	a.patterns = append(a.patterns, p)
	a.mu.Unlock()
}

// Patterns returns the patterns registered so far, in order, as given to
// HandleJSON and Handle ("GET /engine/stat") and, for HandleAdmin, with the
// method it accepts ("POST /engine/reload"): the /h listing.
func (a *API) Patterns() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.patterns)
}

// Handler is the API's handler (its mux), for tests with net/http/httptest.
func (a *API) Handler() http.Handler { return a.mux }

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
