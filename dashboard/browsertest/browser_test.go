// Package browsertest opens the dashboard of real faed processes in headless
// Chromium (Debian's chromium): the page's own script must have drawn the
// charts from live samples and listed the cluster's nodes. A package of its
// own so that it runs in parallel with the other packages' tests.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/dashboard"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/faedtest"
	"github.com/fae-go/fae/internal/testenv"
)

// faedBin is the faed binary under test, built once by TestMain.
var faedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dashboard-browsertest-")
	if err != nil {
		panic(err)
	}
	faedBin, err = faedtest.Build(dir, faedtest.Module+"/cmd/faed")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// chromium is the path of Debian's chromium. Without it the test skips,
// unless FAE_REQUIRE_CHROMIUM is set (make test sets it): then it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("FAE_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium is not installed and FAE_REQUIRE_CHROMIUM is set (contrib/install-deps installs it)")
	}
	t.Skip("chromium is not installed (apt-get install chromium, or contrib/install-deps); set FAE_REQUIRE_CHROMIUM=1 to fail instead")
	return ""
}

// windowHeight is the browser window's height in pixels (its width is 1280).
var windowHeight = 1360

// browse runs headless Chromium on url with extra flags (--dump-dom or
// --screenshot=FILE) and returns its standard output. The page's script runs
// for budget of virtual time first: long enough for a few polls.
func browse(t *testing.T, bin, url string, budget time.Duration, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(), fmt.Sprintf("--window-size=1280,%d", windowHeight),
		"--virtual-time-budget=" + strconv.Itoa(int(budget.Milliseconds()))}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\nstderr:\n%s", url, err, errb.String())
	}
	return out.String()
}

// client is a Thrift client of one session (binary, buffered) to addr.
func client(t *testing.T, addr string) *rpc.FunServantClient {
	t.Helper()
	conf := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 10 * time.Second}
	trans := thrift.NewTBufferedTransport(thrift.NewTSocketConf(addr, conf), 4096)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trans.Close() })
	return rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(conf))
}

// load drives calls on n sessions until stop is closed: pings, memcache
// sets and gets, Redis SETs and GETs, and one call in 20 to a memcache pool that does
// not exist (a failed call and a failed backend operation). pace, if not
// nil, is slept between two calls (the screenshot's varying load).
func load(t *testing.T, addr string, n int, stop <-chan struct{}, pace func() time.Duration) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for w := range n {
		c := client(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			key := fmt.Sprintf("dashtest:%d:%d", time.Now().UnixNano(), w)
			for i := int64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rc := &rpc.Context{Rid: i, Reason: fmt.Sprintf("dashboard.test.%d", i%3), UID: 42}
				var err error
				switch i % 20 {
				case 0:
					_, err = c.McGet(ctx, rc, "nope", key)
				case 1, 2, 3:
					_, err = c.McSet(ctx, rc, "default", key, &rpc.TMemcacheData{Data: []byte("v")}, 60)
				case 4, 5, 6, 7:
					_, err = c.McGet(ctx, rc, "default", key)
				case 8:
					_, err = c.RdCall(ctx, rc, "SET", "default", []string{key, "v"})
				case 9, 10:
					_, err = c.RdCall(ctx, rc, "GET", "default", []string{key})
				default:
					_, err = c.Ping(ctx, rc)
				}
				if err != nil && i%20 != 0 && !strings.Contains(err.Error(), "miss") {
					t.Errorf("call %d: %v", i, err)
					return
				}
				if pace != nil {
					time.Sleep(pace())
				}
			}
		}()
	}
	return &wg
}

// backends are the servants sections of a node with memcache and Redis on
// the shared test servers; every call over 1 ms counts as slow.
func backends() string {
	mh, mp, _ := strings.Cut(testenv.MemcacheAddr, ":")
	return fmt.Sprintf(`call_slow_threshold: "1ms"
        memcache: { servers: [ { host: %q, port: %s, pool: "default" } ] }
        redis: { pools: [ { name: "default", servers: [ { addr: %q } ] } ] }`, mh, mp, testenv.RedisAddr)
}

// samples reads the dashboard's /api/samples.
func samples(t *testing.T, base string) dashboard.Page {
	t.Helper()
	resp, err := http.Get(base + "api/samples")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p dashboard.Page
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// busySamples is the number of samples with calls in them.
func busySamples(p dashboard.Page) int {
	n := 0
	for _, s := range p.Samples {
		if s.Calls > 0 {
			n++
		}
	}
	return n
}

var pathRE = regexp.MustCompile(`<path [^>]*data-series="([^"]+)"[^>]*>`)

// series is, for each path the page drew, its number of points and of
// non-zero points (the data-points and data-nonzero attributes) and its d.
type series struct {
	points, nonzero int
	d               string
}

func drawnSeries(dom string) map[string]series {
	out := map[string]series{}
	attr := func(tag, name string) string {
		m := regexp.MustCompile(name + `="([^"]*)"`).FindStringSubmatch(tag)
		if m == nil {
			return ""
		}
		return m[1]
	}
	for _, m := range pathRE.FindAllStringSubmatch(dom, -1) {
		p, _ := strconv.Atoi(attr(m[0], "data-points"))
		nz, _ := strconv.Atoi(attr(m[0], "data-nonzero"))
		out[m[1]] = series{p, nz, attr(m[0], " d")}
	}
	return out
}

// TestDashboardInChromium: a real faed under load from real Thrift clients;
// headless Chromium opens its dashboard, whose script must have drawn every
// chart from the samples (calls/s with non-zero points, latency, backends)
// and listed this node alone, linked to its dashboard; a screenshot is
// saved. With FAE_DASHBOARD_SCREENSHOT=FILE (make screenshot) it runs a
// minute of varying load and writes the screenshot to FILE too.
func TestDashboardInChromium(t *testing.T) {
	chrome := chromium(t)
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	shot := os.Getenv("FAE_DASHBOARD_SCREENSHOT")
	dash := testenv.FreeAddr(t)
	n := faedtest.StartWith(t, faedBin, "binary", false, 1, faedtest.Extra{
		Top: fmt.Sprintf("dashboard_listen_addr: %q", dash), Servants: backends()})
	base := "http://" + dash + "/"

	stop := make(chan struct{})
	var pace func() time.Duration
	want, wait := 4, 30*time.Second
	if shot != "" { // a minute of load that rises and falls, for a picture worth looking at
		start := time.Now()
		pace = func() time.Duration {
			phase := int(time.Since(start)/(8*time.Second)) % 4
			return []time.Duration{0, 2 * time.Millisecond, 500 * time.Microsecond, 5 * time.Millisecond}[phase]
		}
		want, wait = 30, 3*time.Minute
	}
	wg := load(t, n.Addr(), 4, stop, pace)
	testenv.Eventually(t, wait, fmt.Sprintf("%d samples with calls on %sapi/samples", want, base), func() bool {
		return busySamples(samples(t, base)) >= want
	})
	defer wg.Wait()
	defer close(stop) // the load goes on while the page is shot

	dom := browse(t, chrome, base, 3*time.Second, "--dump-dom")
	got := drawnSeries(dom)
	for _, key := range []string{"calls", "p50", "p99", "sessions", "heap", "calls_memcache", "calls_redis", "failures", "failures_memcache"} {
		s, ok := got[key]
		if !ok || s.points < want || !strings.HasPrefix(s.d, "M") || strings.Count(s.d, "L") < want-1 {
			t.Errorf("series %s: %+v; want a path of at least %d points", key, s, want)
		}
	}
	for _, key := range []string{"calls", "p50", "sessions", "heap", "calls_memcache", "calls_redis", "failures", "failures_memcache"} {
		if got[key].nonzero == 0 {
			t.Errorf("series %s has no non-zero point: %+v", key, got[key])
		}
	}
	nodes := regexp.MustCompile(`<li [^>]*data-addr="([^"]+)"[^>]*>(.*?)</li>`).FindAllStringSubmatch(dom, -1)
	if len(nodes) != 1 || nodes[0][1] != n.Addr() || !strings.Contains(nodes[0][0], `class="self"`) ||
		!strings.Contains(nodes[0][2], `href="`+base+`"`) {
		t.Errorf("node list %q: want this node (%s) alone, linked to %s", nodes, n.Addr(), base)
	}
	if !strings.Contains(dom, `id="version">test (testbuild`) {
		t.Errorf("header: no version \"test (testbuild…\" in the page")
	}
	// Calls by reason: the load's one reason, its digits folded, all the calls.
	if !regexp.MustCompile(`<tr data-reason="dashboard\.test\.\?"><td>dashboard\.test\.\?</td><td class="num">\d+</td><td class="num">100\.0 %</td></tr>`).MatchString(dom) {
		t.Errorf("no reasons row for dashboard.test.? with 100 %% of the calls in the page")
	}
	// faed's own breakers (PoolStats): one strip per backend server, all closed.
	strips := map[string]string{}
	for _, m := range regexp.MustCompile(`<g data-breaker="([^"]+)"[^>]*data-state="([^"]+)"`).FindAllStringSubmatch(dom, -1) {
		strips[m[1]] = m[2]
	}
	for _, backend := range []string{"memcache", "redis"} {
		found := false
		for name, state := range strips {
			if strings.HasPrefix(name, backend+" ") {
				found = true
				if state != "closed" {
					t.Errorf("breaker strip %s: %s, want closed", name, state)
				}
			}
		}
		if !found {
			t.Errorf("no breaker strip for %s among %v", backend, strips)
		}
	}

	png := filepath.Join(t.TempDir(), "dashboard.png")
	if shot != "" { // the README's picture: the whole page, breakers and reasons included
		windowHeight = 1720
		defer func() { windowHeight = 1360 }()
	}
	browse(t, chrome, base, 3*time.Second, "--screenshot="+png)
	checkPNG(t, png, 1280, windowHeight)
	if shot != "" {
		b, err := os.ReadFile(png)
		if err == nil {
			err = os.WriteFile(shot, b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", shot)
	}
}

// checkPNG fails unless file is a w×h PNG with a picture in it: many
// colours (charts, text), not a blank or an error page.
func checkPNG(t *testing.T, file string, w, h int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("%s is %v, want %dx%d", file, b, w, h)
	}
	if n := colours(img); n < 50 {
		t.Errorf("%s has %d colours: want a drawn page (at least 50)", file, n)
	}
}

func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}

// TestClusterNodeList: three faeds registered in the test services'
// ZooKeeper (under a root of this test's own), two with a dashboard. The
// first one's page lists the three, each dashboard linked from its member
// record, the third without a link.
func TestClusterNodeList(t *testing.T) {
	chrome := chromium(t)
	testenv.RequireServer(t, "zookeeper", "127.0.0.1:12181")
	root := fmt.Sprintf("/fae-dashtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	cluster := fmt.Sprintf(`etcd_servers: ["127.0.0.1:12181"]
    peer: { root: %q, session_timeout: "2s" }`, root)
	dash := []string{testenv.FreeAddr(t), testenv.FreeAddr(t), ""}
	var nodes []*faedtest.Node
	for i, d := range dash {
		top := cluster
		if d != "" {
			top += fmt.Sprintf("\n    dashboard_listen_addr: %q", d)
		}
		nodes = append(nodes, faedtest.StartWith(t, faedBin, "binary", false, i+1, faedtest.Extra{Top: top}))
	}
	base := "http://" + dash[0] + "/"
	testenv.Eventually(t, 30*time.Second, "3 nodes on the first dashboard", func() bool {
		return len(samples(t, base).Nodes) == 3
	})
	dom := browse(t, chrome, base, 2*time.Second, "--dump-dom")
	items := regexp.MustCompile(`<li [^>]*data-addr="([^"]+)"[^>]*>(.*?)</li>`).FindAllStringSubmatch(dom, -1)
	links := map[string]string{} // node address → its link ("" = none)
	for _, it := range items {
		m := regexp.MustCompile(`<a href="([^"]+)"`).FindStringSubmatch(it[2])
		if m == nil {
			links[it[1]] = ""
		} else {
			links[it[1]] = m[1]
		}
	}
	want := map[string]string{nodes[0].Addr(): "http://" + dash[0] + "/", nodes[1].Addr(): "http://" + dash[1] + "/",
		nodes[2].Addr(): ""}
	if len(items) != 3 || fmt.Sprint(links) != fmt.Sprint(want) {
		t.Errorf("node list %v, want %v", links, want)
	}
	if self := regexp.MustCompile(`<li class="self[^"]*" data-addr="([^"]+)"`).FindAllStringSubmatch(dom, -1); len(self) != 1 ||
		self[0][1] != nodes[0].Addr() {
		t.Errorf("self marks %q, want the first node %s alone", self, nodes[0].Addr())
	}
}

// TestBreakerStrips: the breaker strips of a dashboard whose Breakers hook
// reports states that change on cue. The dashboard runs in the test process
// with the states written here, so that each change is seen for a known
// number of samples (the page and the browser are the real ones; a real
// breaker's transitions are tested in package pool, and faed's own strips in
// TestDashboardInChromium).
func TestBreakerStrips(t *testing.T) {
	chrome := chromium(t)
	var mu sync.Mutex
	states := []dashboard.BreakerState{{Backend: "redis", Pool: "p", Server: "127.0.0.1:1", State: "closed"},
		{Backend: "mysql", Pool: "m", Server: "db1", State: "closed"}}
	d := dashboard.New(dashboard.Sources{Version: "v", Engine: new(engine.Stats), Self: "127.0.0.1:9001",
		Breakers: func() []dashboard.BreakerState {
			mu.Lock()
			defer mu.Unlock()
			return append([]dashboard.BreakerState(nil), states...)
		}}, dashboard.Options{Interval: 20 * time.Millisecond})
	defer d.Stop()
	ts := httptest.NewServer(d)
	defer ts.Close()
	base := ts.URL + "/"
	testenv.Eventually(t, 10*time.Second, "3 samples", func() bool { return samples(t, base).Last >= 3 })
	mu.Lock()
	states[0].State, states[1].State = "open", "half-open"
	mu.Unlock()
	last := samples(t, base).Last
	testenv.Eventually(t, 10*time.Second, "3 samples more", func() bool { return samples(t, base).Last >= last+3 })

	dom := browse(t, chrome, base, time.Second, "--dump-dom")
	strips := regexp.MustCompile(`<g data-breaker="([^"]+)"[^>]*data-state="([^"]+)"[^>]*>(.*?)</g>`).FindAllStringSubmatch(dom, -1)
	got := map[string]string{}
	for _, s := range strips {
		got[s[1]] = s[2]
		// One rect per run: closed for the first 3 samples or more, then the new state.
		runs := regexp.MustCompile(`<rect [^>]*class="(st\d|stx)"[^>]*data-samples="(\d+)"`).FindAllStringSubmatch(s[3], -1)
		if len(runs) != 2 || runs[0][1] != "st0" || runs[1][1] == "st0" || atoi(runs[0][2]) < 3 || atoi(runs[1][2]) < 3 {
			t.Errorf("strip %s: runs %q, want closed (≥ 3 samples) then its new state (≥ 3)", s[1], runs)
		}
	}
	want := map[string]string{"redis p 127.0.0.1:1": "open", "mysql m db1": "half-open"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("breaker strips %v, want %v", got, want)
	}
	if strings.Contains(dom, `id="breakers-section" hidden`) {
		t.Error("the breakers section is hidden")
	}
	png := filepath.Join(t.TempDir(), "breakers.png")
	browse(t, chrome, base, time.Second, "--screenshot="+png)
	checkPNG(t, png, 1280, 1360)
	if dst := os.Getenv("FAE_BREAKERS_SCREENSHOT"); dst != "" { // to look at it
		b, _ := os.ReadFile(png)
		os.WriteFile(dst, b, 0o644)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
