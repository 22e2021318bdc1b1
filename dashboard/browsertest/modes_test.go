package browsertest

import (
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/fae-go/fae/dashboard"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// The page lists the switched pools (servant.FunServant.PoolModes): a Redis
// pool switched by SetPoolMode shows with its mode and source, and the
// section is hidden when none is switched. (The Redis pool dials nothing.)
func TestPoolModesSection(t *testing.T) {
	chrome := chromium(t)
	var cfg servant.Config
	cfg.SetDefaults()
	var rd pool.RedisConfig
	rd.SetDefaults()
	rd.Pools = []pool.RedisPoolConfig{{Name: "sessions", Servers: []pool.RedisServerConfig{{Addr: "127.0.0.1:1", MaxIdle: 1}}}}
	cfg.Redis = &rd
	if err := cfg.Validate("servants"); err != nil {
		t.Fatal(err)
	}
	svt, err := servant.New(cfg, servant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svt.Close()
	d := dashboard.New(dashboard.Sources{Version: "v", Engine: new(engine.Stats), Self: "127.0.0.1:9001", Servant: svt},
		dashboard.Options{Interval: 20 * time.Millisecond})
	defer d.Stop()
	ts := httptest.NewServer(d)
	defer ts.Close()
	base := ts.URL + "/"
	testenv.Eventually(t, 10*time.Second, "a sample", func() bool { return samples(t, base).Last >= 1 })
	if dom := browse(t, chrome, base, time.Second, "--dump-dom"); !regexp.MustCompile(`id="modes-section" hidden`).MatchString(dom) {
		t.Error("the switched pools section shows with no pool switched")
	}

	if _, err := svt.SetPoolMode("redis", "sessions", "degraded"); err != nil {
		t.Fatal(err)
	}
	if p := samples(t, base); len(p.PoolModes) != 1 || p.PoolModes[0].Pool != "sessions" {
		t.Fatalf("/api/samples pool_modes = %+v", p.PoolModes)
	}
	dom := browse(t, chrome, base, time.Second, "--dump-dom")
	row := `<tr data-pool-mode="redis sessions" class="mode-degraded"><td>redis</td><td>sessions</td><td>degraded</td><td>api</td><td>\d{4}-`
	if !regexp.MustCompile(row).MatchString(dom) || regexp.MustCompile(`id="modes-section" hidden`).MatchString(dom) {
		t.Errorf("no visible row %s in the page", row)
	}
}
