package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/servant"
)

// wireAPI on a real HTTP server: the metrics endpoints are there, POST
// /engine/reload reloads (and fails here: no -conf file) and is counted,
// http_admin_allow applies to it, /ready follows ready.
func TestWireAPI(t *testing.T) {
	cfg, err := config.Parse("test", []byte(`{rpc: {listen_addr: "127.0.0.1:0"}, http_admin_allow: ["10.9.0.0/16"],
		servants: {lcache: {}, mysql: {servers: [{pool: "p", host: "127.0.0.1", port: 13306, db: "d", username: "u", password: "hunter2"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	svt, err := servant.New(cfg.Servants, servant.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer svt.Close()
	srv := engine.NewServer(cfg.RPC, rpc.NewFunServantProcessor(svt), logger)
	rl := newReloader("", nil, cfg, svt, logger)
	var ready atomic.Bool
	api := engine.NewAPI(logger)
	m := newMetrics(cfg, srv, svt, nil, rl, ready.Load, nil)
	defer m.Stop()
	wireAPI(api, cfg, m, rl)
	ts := httptest.NewServer(api.Handler())
	defer ts.Close()

	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("POST", "/engine/reload"); code != http.StatusConflict || !strings.Contains(body, "no config file to reload") {
		t.Fatalf("POST /engine/reload without -conf: %d %s", code, body)
	}
	if code, _ := do("GET", "/engine/reload"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /engine/reload: %d, want 405", code)
	}
	if code, body := do("GET", "/h"); code != 200 || !strings.Contains(body, `"POST /engine/reload"`) ||
		!strings.Contains(body, `"GET /metrics"`) || !strings.Contains(body, `"GET /engine/ping"`) {
		t.Errorf("/h: %d %s, want every endpoint with its method", code, body)
	}
	// Clients off loopback cannot be made here: RemoteAddr is set in a handler test.
	for remote, want := range map[string]int{"10.9.1.1:1000": http.StatusConflict, "10.8.1.1:1000": http.StatusForbidden} {
		req := httptest.NewRequest("POST", "/engine/reload", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		api.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("POST /engine/reload from %s: %d, want %d: %s", remote, rec.Code, want, rec.Body)
		}
	}
	if _, body := do("GET", "/metrics"); !strings.Contains(body, "\nfae_config_reloads_total{result=\"failed\"} 2\n") {
		t.Fatalf("/metrics: reloads not counted 2 failed:\n%s", body)
	}
	if code, _ := do("GET", "/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready while not ready: %d", code)
	}
	ready.Store(true)
	if code, _ := do("GET", "/ready"); code != 200 {
		t.Fatalf("/ready: %d", code)
	}
	code, body := do("GET", "/engine/conf")
	if code != 200 || strings.Contains(body, "hunter2") || !strings.Contains(body, `"password": "***"`) ||
		!strings.Contains(body, `"http_admin_allow": [`) {
		t.Fatalf("/engine/conf: %d %s", code, body)
	}
	if code, body := do("GET", "/engine/peers"); code != 200 || !strings.Contains(body, `"cluster": false`) {
		t.Fatalf("/engine/peers: %d %s", code, body)
	}
}

// /engine/peers of a node registered in a real ZooKeeper (the test services'
// one on 127.0.0.1:12181, under a root of this test's own).
func TestWireAPIPeers(t *testing.T) {
	root := fmt.Sprintf("/fae-test-peers-%d-%d", os.Getpid(), time.Now().UnixNano())
	cfg, err := config.Parse("test", []byte(`{rpc: {listen_addr: "127.0.0.1:0"}, etcd_servers: ["127.0.0.1:12181"],
		peer: {root: "`+root+`"}, servants: {}}`))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	lns, err := engine.ListenAll(cfg.RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer lns[0].Close()
	cl, err := joinCluster(cfg, lns, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	svt, err := servant.New(cfg.Servants, servant.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer svt.Close()
	srv := engine.NewServer(cfg.RPC, rpc.NewFunServantProcessor(svt), logger)
	api := engine.NewAPI(logger)
	rl := newReloader("", nil, cfg, svt, logger)
	m := newMetrics(cfg, srv, svt, cl, rl, nil, nil)
	defer m.Stop()
	wireAPI(api, cfg, m, rl)
	ts := httptest.NewServer(api.Handler())
	defer ts.Close()
	if err := cl.start(cfg, svt, ts.Listener.Addr().String(), "127.0.0.1:9102"); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Cluster bool
		Self    string
		Members []struct {
			Addr string
			Self bool
			Info struct {
				Pid           int
				HTTPAddr      string `json:"http_addr"`
				DashboardAddr string `json:"dashboard_addr"`
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(ts.URL + "/engine/peers")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Members) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling for the registration to be seen
	}
	if !got.Cluster || got.Self != cl.self || len(got.Members) != 1 || got.Members[0].Addr != cl.self ||
		!got.Members[0].Self || got.Members[0].Info.Pid != os.Getpid() || got.Members[0].Info.DashboardAddr != "127.0.0.1:9102" {
		t.Fatalf("/engine/peers: %+v, want this node (%s, pid %d, dashboard 127.0.0.1:9102) alone", got, cl.self, os.Getpid())
	}
}
