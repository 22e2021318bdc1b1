package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("fae_"+name, help, labels, nil)
}

// The metrics of /metrics. Counters end in _total, times are in seconds.
var (
	descBuild        = desc("build_info", "Always 1: the version, build id (git commit) and Go version of this faed.", "version", "build", "goversion")
	descCalls        = desc("calls_total", "Servant calls that ended, by method and outcome (ok, miss: a declared exception such as a cache miss, error, gone: the client left, panic). A call in flight counts as ok until it ends. noop is counted by fae_engine_calls_total only.", "method", "outcome")
	descCallSeconds  = desc("call_seconds_total", "Time spent in servant calls, by method, in seconds.", "method")
	descSlow         = desc("slow_calls_total", "Servant calls slower than servants.call_slow_threshold, by method.", "method")
	descEngineCalls  = desc("engine_calls_total", "Calls processed by the RPC server, every method (noop included).")
	descEngineFailed = desc("engine_call_errors_total", "Calls the RPC server answered with a TApplicationException (declared exceptions not counted).")
	descSessions     = desc("sessions", "RPC sessions (client connections) open now.")
	descSessionsTot  = desc("sessions_total", "RPC sessions accepted since start.")
	descSessionEnds  = desc("session_ends_total", "RPC sessions ended, by reason (eof, idle_timeout, io_timeout, oversize, protocol, transport, drained, closed, panic, refused: its first bytes were HTTP or TLS, or no protocol rpc.protocol auto detects).", "reason")
	descRefused      = desc("connections_refused_total", "RPC connections refused, by reason: not_allowed (outside rpc.allow_from, closed at accept), overloaded (answered \"faed overloaded:\"), overloaded_no_call (overloaded, no call header within 100 ms: closed unanswered), overloaded_dropped (overloaded with every refusal place taken: closed at once), http, tls (those bytes on the Thrift port: closed at once), protocol (rpc.protocol auto: neither strict binary nor compact; non-strict binary answered INVALID_PROTOCOL).", "reason")
	descAcceptWait   = desc("accept_waiting", "RPC connections waiting now for a session slot (at most rpc.max_outstanding_sessions/10).")
	descAcceptWaited = desc("accept_waited_total", "RPC connections that waited (up to rpc.accept_wait) for a session slot and got one.")
	descPanics       = desc("panics_total", "Panics recovered: in a servant method (where=servant) or in a session outside it (where=session).", "where")
	descAcceptErrors = desc("accept_errors_total", "Temporary accept failures of the RPC listeners, retried.")
	descClientGone   = desc("client_gone_total", "Calls whose client closed its connection while the call waited on a backend.")
	descBackendOps   = desc("backend_operations_total", "Backend operations, by backend, pool, server, op and kind (pool.Kind: ok, miss, timeout, breaker_open, mode_refused…).", "backend", "pool", "server", "op", "kind")
	descBackendSecs  = desc("backend_operation_seconds_total", "Time spent in backend operations, borrowing included, in seconds.", "backend", "pool", "server", "op")
	descForwarded    = desc("forwarded_calls_total", "Calls sent to their key's owner in the cluster, by peer (the member's address; at most 1024 peers, the rest under \"(other)\").", "peer")
	descForwardFail  = desc("forward_failures_total", "Forwarded calls that failed (the owner's answer of an error not included), by peer.", "peer")
	descPoolMode     = desc("pool_mode", "1 for each backend pool an operator switched to read_only or degraded (servants.<backend> mode keys, POST /svt/pool/mode), by backend, pool, mode and source (config, api).", "backend", "pool", "mode", "source")
	descMisrouted    = desc("misrouted_calls_total", "Sticky calls served here though this node's ring names another owner.")
	descClassifyOver = desc("sql_classify_overflow_total", "my_query statements classified without being remembered: the classification cache (4096 statements of at most 1 KiB) was full or the statement longer.")
	descQueryCache   = desc("query_cache_total", "Query cache outcomes: hit, miss, shared (waited for an identical miss), kick (key deleted after a write), error (store failure), refused (statement not cacheable).", "result")
	descLcacheItems  = desc("lcache_items", "Items in the local cache (servants.lcache).")
	descLcacheBytes  = desc("lcache_bytes", "Bytes charged against servants.lcache.max_bytes: keys, values and the fixed per-item overhead.")
	descLcache       = desc("lcache_total", "lc_get outcomes: hit, miss.", "result")
	descPoolWaiting  = desc("pool_waiting_calls", "Calls waiting for a backend connection now, by backend, pool and server (bounded by max_waiting_calls; backend=peer: waiting for a peer connection).", "backend", "pool", "server")
	descPoolConns    = desc("pool_connections", "Backend connections now, by backend, pool, server and state (open: all, idle, in_use). backend=peer: the connections to a peer.", "backend", "pool", "server", "state")
	descBreaker      = desc("breaker_state", "State of a server's circuit breaker side (breaker=dial or command): 0 closed, 1 half-open, 2 open.", "backend", "pool", "server", "breaker")
	descTraced       = desc("traced_calls_total", "Calls written to the trace stream, by why: rid (its rid is sampled by servants.profiler_rate) or slow (over call_slow_threshold).", "why")
	descLogDropped   = desc("log_dropped_records_total", "Log records dropped because their stream could not take them (queue full, disk full), by stream: log, trace, metrics.", "stream")
	descLogDroppedB  = desc("log_dropped_bytes_total", "Bytes of the log records dropped, by stream.", "stream")
	descPluginRefuse = desc("plugin_refusals_total", "Calls a plugin of plugin.plugins objected to, by plugin and enforced: true (refused: the entry has enforce: true), false (only counted, the call went on).", "plugin", "enforced")
	descRateHosts    = desc("ratelimit_hosts", "Client hosts with a RateLimiter token bucket now (at most its max_hosts).")
	descRateEvicted  = desc("ratelimit_evictions_total", "Client hosts whose RateLimiter bucket was evicted to stay within max_hosts (the least recently seen first).")
	descReloads      = desc("config_reloads_total", "Config reloads, by result (ok, failed: the running config stayed).", "result")
)

// collector reads every fae_ metric from the live counters at scrape time.
type collector struct{ m *Metrics }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descCalls, descCallSeconds, descSlow, descEngineCalls,
		descEngineFailed, descSessions, descSessionsTot, descSessionEnds, descRefused, descAcceptWait, descAcceptWaited, descPanics, descAcceptErrors,
		descClientGone, descBackendOps, descBackendSecs, descForwarded, descForwardFail, descMisrouted,
		descQueryCache, descLcacheItems, descLcacheBytes, descReloads, descClassifyOver, descTraced, descLogDropped, descLogDroppedB, descLcache, descPoolConns, descPoolWaiting, descBreaker,
		descPluginRefuse, descRateHosts, descRateEvicted} {
		ch <- d
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v int64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v int64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.src
	gauge(ch, descBuild, 1, src.Version, src.BuildID, runtime.Version())
	st := src.Engine
	counter(ch, descEngineCalls, st.Calls.Load())
	counter(ch, descEngineFailed, st.CallErrors.Load())
	gauge(ch, descSessions, st.SessionsActive.Load())
	counter(ch, descSessionsTot, st.Sessions.Load())
	for reason, n := range sessionEnds(st) {
		counter(ch, descSessionEnds, n, reason)
	}
	for reason, n := range refusals(st) {
		counter(ch, descRefused, n, reason)
	}
	counter(ch, descAcceptWaited, st.AcceptWaited.Load())
	gauge(ch, descAcceptWait, st.AcceptWaiting.Load())
	counter(ch, descPanics, st.EndPanic.Load(), "session")
	counter(ch, descAcceptErrors, st.AcceptErrors.Load())
	counter(ch, descClientGone, st.ClientGone.Load())
	if src.Reloads != nil {
		ok, failed := src.Reloads()
		counter(ch, descReloads, ok, "ok")
		counter(ch, descReloads, failed, "failed")
	}
	if src.LogDrops != nil {
		for stream, d := range src.LogDrops() {
			counter(ch, descLogDropped, int64(d[0]), stream)
			counter(ch, descLogDroppedB, int64(d[1]), stream)
		}
	}
	if src.Servant != nil {
		collectServant(ch, src.Servant)
	}
}

func collectServant(ch chan<- prometheus.Metric, s *servant.FunServant) {
	var panics int64
	for _, name := range servant.MethodNames() {
		ms := s.Stats(name)
		calls, errs, misses := ms.Calls.Load(), ms.Errors.Load(), ms.Misses.Load()
		p, gone := ms.Panics.Load(), ms.Gone.Load()
		panics += p
		counter(ch, descCalls, calls-errs-misses, name, "ok")
		counter(ch, descCalls, misses, name, "miss")
		counter(ch, descCalls, errs-p-gone, name, "error")
		counter(ch, descCalls, gone, name, "gone")
		counter(ch, descCalls, p, name, "panic")
		ch <- prometheus.MustNewConstMetric(descCallSeconds, prometheus.CounterValue, float64(ms.Nanos.Load())/1e9, name)
		counter(ch, descSlow, ms.Slow.Load(), name)
	}
	counter(ch, descPanics, panics, "servant")
	traced, slow := s.Traces()
	counter(ch, descTraced, traced, "rid")
	counter(ch, descTraced, slow, "slow")
	for _, oc := range s.Backends.Snapshot() {
		for _, k := range pool.Kinds() {
			if n := oc.Count(k); n > 0 || k == pool.KindOK {
				counter(ch, descBackendOps, n, oc.Backend, oc.Pool, oc.Server, oc.Name, k.String())
			}
		}
		ch <- prometheus.MustNewConstMetric(descBackendSecs, prometheus.CounterValue, float64(oc.Nanos.Load())/1e9,
			oc.Backend, oc.Pool, oc.Server, oc.Name)
	}
	collectPools(ch, s)
	collectPlugins(ch, s)
	counter(ch, descMisrouted, s.Cluster.Misrouted.Load())
	qc := &s.QueryCache
	for result, n := range map[string]int64{"hit": qc.Hits.Load(), "miss": qc.Misses.Load(), "shared": qc.Shared.Load(),
		"kick": qc.Kicks.Load(), "error": qc.Errors.Load(), "refused": qc.Refused.Load()} {
		counter(ch, descQueryCache, n, result)
	}
	counter(ch, descClassifyOver, qc.ClassifyOverflow.Load())
	if items, bytes, ok := s.LcacheSize(); ok {
		gauge(ch, descLcacheItems, int64(items))
		gauge(ch, descLcacheBytes, bytes)
		counter(ch, descLcache, s.Lcache.Hits.Load(), "hit")
		counter(ch, descLcache, s.Lcache.Misses.Load(), "miss")
	}
}

// collectPools sends the pools' connections and breaker states and the
// forwarded calls by peer.
func collectPools(ch chan<- prometheus.Metric, s *servant.FunServant) {
	for _, pm := range s.PoolModes() {
		gauge(ch, descPoolMode, 1, pm.Backend, pm.Pool, string(pm.Mode), pm.Source)
	}
	for _, p := range s.PoolStats() {
		gauge(ch, descPoolConns, int64(p.Open), p.Backend, p.Pool, p.Server, "open")
		gauge(ch, descPoolConns, int64(p.Idle), p.Backend, p.Pool, p.Server, "idle")
		gauge(ch, descPoolConns, int64(p.InUse), p.Backend, p.Pool, p.Server, "in_use")
		gauge(ch, descPoolWaiting, int64(p.Waiting), p.Backend, p.Pool, p.Server)
		gauge(ch, descBreaker, int64(pool.BreakerStateValue(p.Dial)), p.Backend, p.Pool, p.Server, "dial")
		gauge(ch, descBreaker, int64(pool.BreakerStateValue(p.Command)), p.Backend, p.Pool, p.Server, "command")
	}
	for _, p := range s.Cluster.Peers() {
		counter(ch, descForwarded, p.Calls, p.Peer)
		counter(ch, descForwardFail, p.Failed, p.Peer)
	}
}

// collectPlugins sends the plugins' refusals (every plugin configured since
// start) and RateLimiter's figures (while configured). No client address is
// a label: the hosts most over the limit are in /svt/stat only.
func collectPlugins(ch chan<- prometheus.Metric, s *servant.FunServant) {
	for _, p := range s.Plugins() {
		counter(ch, descPluginRefuse, p.Refused, p.Name, "true")
		counter(ch, descPluginRefuse, p.WouldRefuse, p.Name, "false")
		if rl, ok := p.Detail.(servant.RateLimiterStats); ok {
			gauge(ch, descRateHosts, int64(rl.Hosts))
			counter(ch, descRateEvicted, rl.Evictions)
		}
	}
}

// LatencyBuckets are the upper bounds of fae_call_duration_seconds, in
// seconds: 100 µs × 4ⁿ, from 100 µs to 6.6 s (a ping takes tens of µs, a
// slow MySQL query seconds; the default call_slow_threshold is 2 s).
var LatencyBuckets = prometheus.ExponentialBuckets(0.0001, 4, 9)

// Registry returns m's Prometheus registry: the fae_ metrics and the client
// library's standard Go runtime (go_*) and process (process_*) collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{m}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s := m.src.Servant; s != nil {
		hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fae_call_duration_seconds",
			Help:    "Duration of servant calls, by method, in seconds (noop not included).",
			Buckets: LatencyBuckets}, []string{"method"})
		reg.MustRegister(hv)
		s.ObserveLatency(func(name string) servant.LatencyObserver { return hv.WithLabelValues(name) })
	}
	return reg
}
