package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/metrics"
	"github.com/fae-go/fae/servant"
)

// newMetrics returns the figures of this faed (package metrics), read from
// srv's and svt's counters, the reloader's counts and, with a cluster (cl
// non-nil), its membership. ready reports whether faed takes calls (/ready
// answers 503 when it returns false: while starting or draining); nil =
// always ready. logDrops returns the records and bytes each log stream
// dropped (nil = none shown). Stop it at exit: it runs the rate meters'
// goroutine.
func newMetrics(cfg *config.Config, srv *engine.Server, svt *servant.FunServant, cl *cluster, rl *reloader,
	ready func() bool, logDrops func() map[string][2]uint64) *metrics.Metrics {
	src := metrics.Sources{Version: version, BuildID: buildID, Started: time.Now(), Engine: &srv.Stats,
		Servant: svt, Ready: ready, LogDrops: logDrops,
		Config: func() any { // restart-only keys as booted, the servants as last reloaded
			c := *cfg
			c.Servants = svt.Config()
			return &c
		},
		ServantConfig: func() any { return svt.Config() },
		Reloads:       func() (int64, int64) { return rl.counts.OK.Load(), rl.counts.Failed.Load() },
	}
	if cl != nil {
		src.Peers = func() metrics.Peers {
			p := metrics.Peers{Self: cl.self, Members: cl.reg.Members(), Epoch: cl.reg.Epoch()}
			if ev, ok := cl.reg.LastEvent(); ok {
				p.LastEvent = &ev
			}
			return p
		}
	}
	return metrics.New(src)
}

// wireAPI adds to api the figures m — the JSON endpoints of package metrics
// and Prometheus's /metrics — POST /engine/reload and POST /svt/pool/mode, and applies
// http_admin_allow to the endpoints that change state. main calls it once,
// right after engine.NewAPI and before api.Serve.
func wireAPI(api *engine.API, cfg *config.Config, m *metrics.Metrics, rl *reloader) {
	api.SetAdminAllow(cfg.HTTPAdminAllow) // checked by config.Parse already
	m.Register(api)
	api.HandleAdmin("/engine/reload", reloadHandler(rl))
	api.HandleAdmin("/svt/pool/mode", poolModeHandler(rl.svt))
}

// poolModeRequest is the body of POST /svt/pool/mode (JSON), or its form or
// query values of the same names.
type poolModeRequest struct {
	Backend string `json:"backend"` // "mysql", "mongodb", "memcache" or "redis"
	Pool    string `json:"pool"`    // a pool as calls name it (mongodb: a server entry)
	Mode    string `json:"mode"`    // "read_only", "degraded", or "" / "normal" to clear
}

// poolModeHandler is POST /svt/pool/mode: it switches one backend pool of
// this node (servant.FunServant.SetPoolMode) until the next reload or
// restart, where the config's mode wins, and answers {"status": "set",
// "pool_mode": {...}, "pool_modes": [every switched pool]}, or 400 {"error":
// ...} naming the bad backend, pool or mode (nothing changed).
func poolModeHandler(svt *servant.FunServant) func(*http.Request) (any, int) {
	return func(r *http.Request) (any, int) {
		var req poolModeRequest
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
				return map[string]string{"error": "body: want JSON {\"backend\", \"pool\", \"mode\"}: " + err.Error()}, http.StatusBadRequest
			}
		} else {
			r.Body = http.MaxBytesReader(nil, r.Body, 4096)
			req = poolModeRequest{Backend: r.FormValue("backend"), Pool: r.FormValue("pool"), Mode: r.FormValue("mode")}
		}
		pm, err := svt.SetPoolMode(req.Backend, req.Pool, req.Mode)
		if err != nil {
			return map[string]string{"error": err.Error()}, http.StatusBadRequest
		}
		return map[string]any{"status": "set", "pool_mode": pm, "pool_modes": svt.PoolModes()}, 200
	}
}

// reloadHandler is POST /engine/reload: it reloads the -conf file (see
// reloader.reload) and answers {"status": "reloaded", "restart_needed": [keys
// whose change was ignored]}, or 409 {"error": ...} when the file is bad or
// absent (the running config stays).
func reloadHandler(rl *reloader) func(*http.Request) (any, int) {
	return func(*http.Request) (any, int) {
		restart, err := rl.reload()
		if restart == nil {
			restart = []string{}
		}
		if err != nil {
			return map[string]any{"error": err.Error(), "restart_needed": restart}, http.StatusConflict
		}
		return map[string]any{"status": "reloaded", "restart_needed": restart}, 200
	}
}
