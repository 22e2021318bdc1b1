package metrics

import (
	"net/http"
	"os"
	"runtime"
	"sort"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	gometrics "github.com/rcrowley/go-metrics"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/peer"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// Register adds the JSON endpoints and /metrics to api (GET only; HEAD too).
func (m *Metrics) Register(api *engine.API) {
	help := func(*http.Request) (any, int) { // every endpoint, those registered after Register too
		return map[string]any{"uris": api.Patterns(), "version": m.src.Version, "build": m.src.BuildID,
			"go": runtime.Version()}, 200
	}
	api.HandleJSON("GET /h", help)
	api.HandleJSON("GET /help", help)
	api.HandleJSON("GET /engine/stat", func(*http.Request) (any, int) { return m.engineStat(), 200 })
	api.HandleJSON("GET /engine/runtime", func(*http.Request) (any, int) { return runtimeStat(), 200 })
	api.HandleJSON("GET /engine/conf", confHandler(m.src.Config))
	api.HandleJSON("GET /svt/conf", confHandler(m.src.ServantConfig))
	api.HandleJSON("GET /svt/stat", func(*http.Request) (any, int) { return m.servantStat(), 200 })
	api.HandleJSON("GET /engine/peers", m.peers)
	api.HandleJSON("GET /ready", m.ready)
	api.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}))
}

func confHandler(fn func() any) func(*http.Request) (any, int) {
	return func(*http.Request) (any, int) {
		if fn == nil {
			return map[string]string{"error": "no config loaded"}, http.StatusNotFound
		}
		return Mask(fn()), 200
	}
}

// Rates are events per second from a go-metrics meter.
type Rates struct {
	M1   float64 `json:"1m"`
	M5   float64 `json:"5m"`
	M15  float64 `json:"15m"`
	Mean float64 `json:"mean"`
}

func rates(mt gometrics.Meter) Rates {
	s := mt.Snapshot()
	return Rates{s.Rate1(), s.Rate5(), s.Rate15(), s.RateMean()}
}

// engineStat is /engine/stat.
func (m *Metrics) engineStat() map[string]any {
	st := m.src.Engine
	host, _ := os.Hostname()
	return map[string]any{
		"started": m.src.Started.Format(time.RFC3339), "elapsed": time.Since(m.src.Started).Round(time.Second).String(),
		"elapsed_s": int64(time.Since(m.src.Started).Seconds()),
		"pid":       os.Getpid(), "hostname": host, "version": m.src.Version, "build": m.src.BuildID,
		"rusage": rusage(),
		"rpc": map[string]any{
			"sessions_active": st.SessionsActive.Load(), "sessions_total": st.Sessions.Load(),
			"idle_goroutines": st.IdleGoroutines.Load(),
			"calls_total":     st.Calls.Load(), "calls_failed": st.CallErrors.Load(),
			"accept_errors": st.AcceptErrors.Load(), "client_gone": st.ClientGone.Load(),
			"session_ends": sessionEnds(st), "refused": refusals(st), "accept_waited": st.AcceptWaited.Load(),
			"accept_waiting": st.AcceptWaiting.Load(),
			"failures":       st.Failures.Snapshot(),
			"qps":            rates(m.calls), "failures_per_s": rates(m.fails),
		},
		"log": m.logDrops(),
	}
}

// logDrops is /engine/stat's "log": {stream: {dropped_records, dropped_bytes}}.
func (m *Metrics) logDrops() map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	if m.src.LogDrops != nil {
		for stream, d := range m.src.LogDrops() {
			out[stream] = map[string]uint64{"dropped_records": d[0], "dropped_bytes": d[1]}
		}
	}
	return out
}

// sessionEnds are engine.Stats' session ends by reason (the label values of fae_session_ends_total).
func sessionEnds(st *engine.Stats) map[string]int64 {
	return map[string]int64{"eof": st.EndEOF.Load(), "idle_timeout": st.EndIdleTimeout.Load(),
		"io_timeout": st.EndIOTimeout.Load(), "oversize": st.EndOversize.Load(), "protocol": st.EndProtocol.Load(),
		"transport": st.EndTransport.Load(), "drained": st.EndDrained.Load(), "closed": st.EndClosed.Load(),
		"panic": st.EndPanic.Load(), "refused": st.EndRefused.Load()}
}

// refusals are engine.Stats' refused connections by reason (the label values
// of fae_connections_refused_total).
func refusals(st *engine.Stats) map[string]int64 {
	return map[string]int64{"not_allowed": st.RefusedNotAllowed.Load(), "overloaded": st.RefusedOverload.Load(),
		"overloaded_no_call": st.RefusedOverloadNoCall.Load(), "overloaded_dropped": st.RefusedOverloadDropped.Load(),
		"http": st.RefusedHTTP.Load(), "tls": st.RefusedTLS.Load(), "protocol": st.RefusedProtocol.Load()}
}

// rusage is getrusage(RUSAGE_SELF): CPU in seconds, max RSS in KiB (Linux's unit).
func rusage() map[string]any {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return map[string]any{"error": err.Error()}
	}
	sec := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return map[string]any{"user_s": sec(ru.Utime), "system_s": sec(ru.Stime), "maxrss_kib": ru.Maxrss,
		"minflt": ru.Minflt, "majflt": ru.Majflt, "nvcsw": ru.Nvcsw, "nivcsw": ru.Nivcsw}
}

// runtimeStat is /engine/runtime (runtime.ReadMemStats: a short stop of the world).
func runtimeStat() map[string]any {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return map[string]any{
		"goroutines": runtime.NumGoroutine(), "cpus": runtime.NumCPU(), "gomaxprocs": runtime.GOMAXPROCS(0),
		"go": runtime.Version(),
		"memory": map[string]uint64{"heap_alloc_bytes": ms.HeapAlloc, "heap_inuse_bytes": ms.HeapInuse,
			"heap_idle_bytes": ms.HeapIdle, "heap_released_bytes": ms.HeapReleased, "heap_objects": ms.HeapObjects,
			"stack_inuse_bytes": ms.StackInuse, "sys_bytes": ms.Sys, "total_alloc_bytes": ms.TotalAlloc,
			"mallocs": ms.Mallocs, "frees": ms.Frees},
		"gc": map[string]any{"num_gc": ms.NumGC, "pause_total_ns": ms.PauseTotalNs,
			"last_pause_ns": ms.PauseNs[(ms.NumGC+255)%256], "next_gc_bytes": ms.NextGC,
			"cpu_fraction": ms.GCCPUFraction, "last_gc": time.Unix(0, int64(ms.LastGC)).Format(time.RFC3339)},
	}
}

// MethodStat is one method's figures in /svt/stat.
type MethodStat struct {
	Calls  int64   `json:"calls"`
	Errors int64   `json:"errors"`
	Misses int64   `json:"misses"`
	Panics int64   `json:"panics"`
	Gone   int64   `json:"gone"`
	Slow   int64   `json:"slow"`
	MeanMs float64 `json:"mean_ms"`
}

// BackendStat is one (backend, pool, server, op)'s figures in /svt/stat.
type BackendStat struct {
	Backend string           `json:"backend"`
	Pool    string           `json:"pool"`
	Server  string           `json:"server"`
	Op      string           `json:"op"`
	Total   int64            `json:"total"`
	Kinds   map[string]int64 `json:"kinds"` // non-zero counts by pool.Kind label ("ok", "timeout"…)
	MeanMs  float64          `json:"mean_ms"`
}

// servantStat is /svt/stat.
func (m *Metrics) servantStat() map[string]any {
	s := m.src.Servant
	if s == nil {
		return map[string]any{"methods": nil}
	}
	methods := map[string]MethodStat{}
	for _, name := range servant.MethodNames() {
		ms := s.Stats(name)
		st := MethodStat{Calls: ms.Calls.Load(), Errors: ms.Errors.Load(), Misses: ms.Misses.Load(),
			Panics: ms.Panics.Load(), Gone: ms.Gone.Load(), Slow: ms.Slow.Load()}
		if st.Calls > 0 {
			st.MeanMs = float64(ms.Nanos.Load()) / float64(st.Calls) / 1e6
		}
		methods[name] = st
	}
	backends := []BackendStat{}
	for _, oc := range s.Backends.Snapshot() {
		b := BackendStat{Backend: oc.Backend, Pool: oc.Pool, Server: oc.Server, Op: oc.Name,
			Total: oc.Total(), Kinds: map[string]int64{}}
		for _, k := range pool.Kinds() {
			if n := oc.Count(k); n > 0 {
				b.Kinds[k.String()] = n
			}
		}
		if b.Total > 0 {
			b.MeanMs = float64(oc.Nanos.Load()) / float64(b.Total) / 1e6
		}
		backends = append(backends, b)
	}
	qc := &s.QueryCache
	out := map[string]any{
		"methods":  methods,
		"backends": backends,
		"query_cache": map[string]int64{"hits": qc.Hits.Load(), "misses": qc.Misses.Load(), "shared": qc.Shared.Load(),
			"kicks": qc.Kicks.Load(), "errors": qc.Errors.Load(), "refused": qc.Refused.Load(),
			"classify_overflow": qc.ClassifyOverflow.Load()},
		"cluster":    clusterStat(s),
		"lcache":     lcacheStat(s),
		"pools":      s.PoolStats(),
		"pool_modes": s.PoolModes(), // pools switched to read_only or degraded
		"reasons":    s.Reasons(),
		"plugins":    s.Plugins(), // per plugin: refused, would_refuse; RateLimiter's detail: hosts, evictions, top 10 hosts
	}
	traced, slow := s.Traces()
	out["traces"] = map[string]int64{"traced_rid": traced, "slow": slow}
	return out
}

// peerJSON is one member in /engine/peers.
type peerJSON struct {
	Addr string          `json:"addr"` // advertised host:port
	Self bool            `json:"self"` // this node
	Info peer.MemberInfo `json:"info"` // its znode's record: version, pid, started, HTTP and dashboard addresses…
}

// peers is /engine/peers: {"cluster": false} without a cluster, else this
// node's address and the members sorted by address.
func (m *Metrics) peers(*http.Request) (any, int) {
	if m.src.Peers == nil {
		return map[string]any{"cluster": false}, 200
	}
	p := m.src.Peers()
	members := make([]peerJSON, 0, len(p.Members))
	for _, mb := range p.Members {
		members = append(members, peerJSON{mb.Addr, mb.Addr == p.Self, mb.Info})
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Addr < members[j].Addr })
	return map[string]any{"cluster": true, "self": p.Self, "members": members, "epoch": p.Epoch,
		"last_event": p.LastEvent}, 200
}

// ready is /ready: 200 {"ready": true}, or 503 {"ready": false} while starting or draining.
func (m *Metrics) ready(*http.Request) (any, int) {
	if m.src.Ready == nil || m.src.Ready() {
		return map[string]bool{"ready": true}, 200
	}
	return map[string]bool{"ready": false}, http.StatusServiceUnavailable
}
