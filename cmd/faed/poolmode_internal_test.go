package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/servant"
)

// POST /svt/pool/mode through wireAPI: form values work as JSON does, GET is
// refused (admin endpoint), a bad body or an unknown pool is a 400 that
// changes nothing, and /h lists it.
func TestPoolModeEndpoint(t *testing.T) {
	cfg, err := config.Parse("test", []byte(`{rpc: {listen_addr: "127.0.0.1:0"},
		servants: {mysql: {global_pools: ["p"], servers: [{pool: "p", host: "127.0.0.1", port: 1, db: "d"}]}}}`))
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
	api := engine.NewAPI(logger)
	m := newMetrics(cfg, srv, svt, nil, rl, nil, nil)
	defer m.Stop()
	wireAPI(api, cfg, m, rl)
	ts := httptest.NewServer(api.Handler())
	defer ts.Close()
	do := func(method, ctype, body string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+"/svt/pool/mode", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	form := url.Values{"backend": {"mysql"}, "pool": {"p"}, "mode": {"read_only"}}.Encode()
	if code, body := do("POST", "application/x-www-form-urlencoded", form); code != 200 ||
		!strings.Contains(body, `"mode": "read_only"`) || !strings.Contains(body, `"source": "api"`) {
		t.Errorf("POST form: %d %s", code, body)
	}
	if code, _ := do("GET", "", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", code)
	}
	if code, body := do("POST", "application/json", `{"backend": "mysql",`); code != 400 || !strings.Contains(body, "body: want JSON") {
		t.Errorf("POST bad JSON: %d %s", code, body)
	}
	if code, body := do("POST", "application/json", `{"backend": "mysql", "pool": "q", "mode": "degraded"}`); code != 400 ||
		!strings.Contains(body, `mysql has no pool \"q\"`) {
		t.Errorf("POST unknown pool: %d %s", code, body)
	}
	if pm := svt.PoolModes(); len(pm) != 1 || pm[0].Pool != "p" || pm[0].Mode != "read_only" {
		t.Errorf("PoolModes = %+v, want p read_only alone", pm)
	}
	if body, _ := get(t, ts.URL+"/h"); !strings.Contains(body, "POST /svt/pool/mode") {
		t.Errorf("/h does not list POST /svt/pool/mode:\n%s", body)
	}
}

func get(t *testing.T, u string) (string, int) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}
