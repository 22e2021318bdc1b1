package metrics_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/metrics"
	"github.com/fae-go/fae/servant"
)

// testConf has secrets in both places the config holds them, and an lcache.
const testConf = `{
	rpc: { listen_addr: "127.0.0.1:0" }
	servants: {
		lcache: {}
		mysql: { servers: [ { pool: "p1", host: "127.0.0.1", port: 13306, db: "fae_test", username: "fae", password: "hunter2-mysql" } ] }
		mongodb: { servers: [ { pool: "default", host: "127.0.0.1", port: 17017, db: "fae", user: "u", pass: "hunter2-mongo" } ] }
	}
}`

// node is an in-process faed: a real engine server and servant on loopback,
// and the HTTP API with every metrics endpoint on a real HTTP server.
type node struct {
	srv    *engine.Server
	svt    *servant.FunServant
	rpc    string // the RPC address
	http   string // the API's base URL
	client *rpc.FunServantClient
	ready  atomic.Bool
}

func startNode(t *testing.T) *node { return startNodeConf(t, testConf) }

// startNodeConf is startNode with the config conf.
func startNodeConf(t *testing.T, conf string) *node {
	t.Helper()
	cfg, err := config.Parse("test", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	svt, err := servant.New(cfg.Servants, servant.Options{Version: "v-test", BuildID: "b-test", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svt.Close)
	n := &node{srv: engine.NewServer(cfg.RPC, rpc.NewFunServantProcessor(svt), logger), svt: svt}
	n.ready.Store(true)
	ln, err := engine.Listen(cfg.RPC)
	if err != nil {
		t.Fatal(err)
	}
	n.rpc = ln.Addr().String()
	go n.srv.Serve(ln)
	t.Cleanup(func() { n.srv.Close() })

	m := metrics.New(metrics.Sources{Version: "v-test", BuildID: "b-test", Engine: &n.srv.Stats, Servant: svt,
		Config: func() any { return cfg }, ServantConfig: func() any { return cfg.Servants },
		Ready: func() bool { return n.ready.Load() }})
	t.Cleanup(m.Stop)
	api := engine.NewAPI(logger)
	m.Register(api)
	ts := httptest.NewServer(api.Handler())
	t.Cleanup(ts.Close)
	n.http = ts.URL

	sock := thrift.NewTSocketConf(n.rpc, &thrift.TConfiguration{SocketTimeout: 5 * time.Second})
	trans := thrift.NewTBufferedTransport(sock, 4096)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trans.Close() })
	n.client = rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil))
	return n
}

// get fetches path and returns the status and body.
func (n *node) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(n.http + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// getJSON fetches path, checks it is pretty-printed JSON with status want, and decodes it.
func (n *node) getJSON(t *testing.T, path string, want int) map[string]any {
	t.Helper()
	code, body := n.get(t, path)
	if code != want {
		t.Fatalf("GET %s: %d, want %d: %s", path, code, want, body)
	}
	if !strings.HasPrefix(body, "{\n    \"") {
		t.Fatalf("GET %s: not indented JSON: %.80q", path, body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return v
}

// at walks v down the keys given.
func at(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: no object at %q in %v", keys, k, v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%v: no key %q in %v", keys, k, m)
		}
	}
	return v
}

func TestEndpointShapes(t *testing.T) {
	n := startNode(t)
	help := n.getJSON(t, "/help", 200)
	if at(t, help, "version") != "v-test" || at(t, help, "build") != "b-test" || !strings.HasPrefix(at(t, help, "go").(string), "go") {
		t.Fatalf("/help: %v", help)
	}
	if uris := at(t, n.getJSON(t, "/h", 200), "uris").([]any); len(uris) < 10 {
		t.Fatalf("/h uris: %v", uris)
	}
	stat := n.getJSON(t, "/engine/stat", 200)
	for _, k := range []string{"started", "elapsed", "pid", "hostname", "version"} {
		at(t, stat, k)
	}
	at(t, stat, "rusage", "user_s")
	at(t, stat, "rpc", "sessions_active")
	at(t, stat, "rpc", "sessions_total")
	at(t, stat, "rpc", "calls_failed")
	for _, k := range []string{"1m", "5m", "15m", "mean"} {
		at(t, stat, "rpc", "qps", k)
	}
	rt := n.getJSON(t, "/engine/runtime", 200)
	if at(t, rt, "goroutines").(float64) < 1 || at(t, rt, "memory", "heap_alloc_bytes").(float64) <= 0 {
		t.Fatalf("/engine/runtime: %v", rt)
	}
	at(t, rt, "gc", "num_gc")
	svt := n.getJSON(t, "/svt/stat", 200)
	at(t, svt, "methods", "ping", "calls")
	at(t, svt, "methods", "my.query", "slow")
	at(t, svt, "query_cache", "hits")
	at(t, svt, "cluster", "forwarded")
	if items := at(t, svt, "lcache", "items"); items != 0.0 {
		t.Fatalf("lcache items %v, want 0", items)
	}
	if _, err := n.client.LcSet(context.Background(), &rpc.Context{Rid: 1, Reason: "t"}, "k", []byte("12345")); err != nil {
		t.Fatal(err)
	}
	svt = n.getJSON(t, "/svt/stat", 200)
	if at(t, svt, "lcache", "items") != 1.0 || at(t, svt, "lcache", "bytes").(float64) < 5 {
		t.Fatalf("lcache after one lc_set: %v", at(t, svt, "lcache"))
	}
	if p := n.getJSON(t, "/engine/peers", 200); p["cluster"] != false {
		t.Fatalf("/engine/peers without a cluster: %v", p)
	}
	if r := n.getJSON(t, "/ready", 200); r["ready"] != true {
		t.Fatalf("/ready: %v", r)
	}
	n.ready.Store(false) // as while draining
	if r := n.getJSON(t, "/ready", 503); r["ready"] != false {
		t.Fatalf("/ready draining: %v", r)
	}
	if e := n.getJSON(t, "/no/such/page", 404); e["error"] != "not found: /no/such/page" {
		t.Fatalf("404: %v", e)
	}
}

// Every secret of the config is masked, in both config endpoints, and
// nothing else is.
func TestConfSecretsMasked(t *testing.T) {
	n := startNode(t)
	for _, path := range []string{"/engine/conf", "/svt/conf"} {
		_, body := n.get(t, path)
		if strings.Contains(body, "hunter2") {
			t.Fatalf("%s leaks a password:\n%s", path, body)
		}
		conf := n.getJSON(t, path, 200)
		if path == "/engine/conf" {
			conf = at(t, conf, "servants").(map[string]any)
			if la := at(t, n.getJSON(t, path, 200), "rpc", "listen_addr").([]any); len(la) != 1 || la[0] != "127.0.0.1:0" {
				t.Fatalf("%s: rpc.listen_addr not shown", path)
			}
		}
		my := at(t, conf, "mysql", "servers").([]any)[0]
		mg := at(t, conf, "mongodb", "servers").([]any)[0]
		if at(t, my, "password") != "***" || at(t, mg, "pass") != "***" {
			t.Fatalf("%s: mysql %v, mongodb %v", path, my, mg)
		}
		if at(t, my, "username") != "fae" || at(t, mg, "user") != "u" || at(t, conf, "call_slow_threshold") != "2s" {
			t.Fatalf("%s: more than the secrets masked: mysql %v, mongodb %v", path, my, mg)
		}
	}
}

// scrape returns the value of the /metrics sample named by line prefix
// series (name and labels, e.g. `fae_calls_total{method="ping",outcome="ok"}`).
func (n *node) scrape(t *testing.T, series string) float64 {
	t.Helper()
	code, body := n.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", series)
	return 0
}

func (n *node) engineCalls(t *testing.T) int64 {
	return int64(at(t, n.getJSON(t, "/engine/stat", 200), "rpc", "calls_total").(float64))
}

// N pings through a real engine server and servant → exactly N more calls in
// /engine/stat, /svt/stat and /metrics.
func TestCountersExact(t *testing.T) {
	const N = 137
	n := startNode(t)
	ping := `fae_calls_total{method="ping",outcome="ok"}`
	calls0, ok0, eng0 := n.engineCalls(t), n.scrape(t, ping), n.scrape(t, "fae_engine_calls_total")
	for i := range N {
		if _, err := n.client.Ping(context.Background(), &rpc.Context{Rid: int64(i + 1), Reason: "count"}); err != nil {
			t.Fatal(err)
		}
	}
	// The engine counts a call once its reply is written: the last may be
	// counted just after the client read it.
	deadline := time.Now().Add(5 * time.Second)
	for n.engineCalls(t) != calls0+N && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := n.engineCalls(t); got != calls0+N {
		t.Fatalf("/engine/stat calls_total %d, want %d", got, calls0+N)
	}
	if got := n.scrape(t, ping); got != ok0+N {
		t.Fatalf("%s = %v, want %v", ping, got, ok0+N)
	}
	if got := n.scrape(t, "fae_engine_calls_total"); got != eng0+N {
		t.Fatalf("fae_engine_calls_total = %v, want %v", got, eng0+N)
	}
	if got := at(t, n.getJSON(t, "/svt/stat", 200), "methods", "ping", "calls"); got != float64(N) {
		t.Fatalf("/svt/stat ping calls %v, want %d", got, N)
	}
	if got := n.scrape(t, `fae_call_duration_seconds_count{method="ping"}`); got != N {
		t.Fatalf("ping latency observations %v, want %d", got, N)
	}
	if got := n.scrape(t, `fae_call_duration_seconds_bucket{method="ping",le="+Inf"}`); got != N {
		t.Fatalf("ping latency +Inf bucket %v, want %d", got, N)
	}
	if got := n.scrape(t, `fae_calls_total{method="ping",outcome="error"}`); got != 0 {
		t.Fatalf("ping errors %v", got)
	}
	if got := n.scrape(t, "fae_sessions"); got != 1 {
		t.Fatalf("fae_sessions %v, want 1", got)
	}
	if got := n.scrape(t, `fae_build_info{build="b-test",goversion="`+runtime.Version()+`",version="v-test"}`); got != 1 {
		t.Fatalf("fae_build_info %v", got)
	}
}

// The rate meters are fed from the engine's counter every MeterInterval: after
// N pings the mean rate becomes positive, and at most N per MeterInterval
// (the first mark comes one interval after the meter started; go-metrics
// computes the mean at the mark).
func TestRatesFed(t *testing.T) {
	const N = 40
	start := time.Now()
	n := startNode(t)
	for i := range N {
		if _, err := n.client.Ping(context.Background(), &rpc.Context{Rid: int64(i + 1), Reason: "rate"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * metrics.MeterInterval)
	var mean float64
	for time.Now().Before(deadline) {
		if mean = at(t, n.getJSON(t, "/engine/stat", 200), "rpc", "qps", "mean").(float64); mean > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond) // waiting out the meters' 5 s tick
	}
	if mean <= 0 || mean > N/metrics.MeterInterval.Seconds() {
		t.Fatalf("qps mean %v after %d calls in %v", mean, N, time.Since(start))
	}
	if m1 := at(t, n.getJSON(t, "/engine/stat", 200), "rpc", "qps", "1m").(float64); m1 < 0 {
		t.Fatalf("qps 1m %v", m1)
	}
}
