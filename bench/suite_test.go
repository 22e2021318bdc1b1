package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// BenchmarkSuite is make bench: every scenario of issue 10, each with its
// baselines in the same run, the variants of a scenario alternating within
// each round (forward, then backward order), and one table at the end, the
// targets first. The servers it needs are its own: faed, the bare
// TSimpleServer (bench/baseline/simple) and the raw echo (bench/baseline/echo)
// built from this tree, and private memcached, Redis, MariaDB, ZooKeeper and
// twemproxy (nutcracker) processes; the server CPU per call and RSS are read
// from /proc of those processes. It writes bench/results/<date>.md and one SVG
// chart per scenario next to it. Run it alone (-benchtime 1x): it is one
// iteration whatever b.N is. Environment:
//
//	FAE_BENCH_WINDOW  measured window of one round, default 1s (100ms..1m), after FAE_BENCH_WARMUP (default 300ms)
//	FAE_BENCH_ROUNDS  rounds per scenario and concurrency, default 5 (1..50; issue 12 asks for at least 5 alternated runs)
//	FAE_BENCH_ONLY    comma-separated scenario numbers to run (default all: 1,2,3,4,5,6,7)
//	FAE_BENCH_PROFILE "scenario/variant/c" (e.g. "3 lcache/lc_get 100 B/64"): after that
//	                  point's rounds, one more 5 s window of it while faed's
//	                  /debug/pprof/profile is read into results/<date>-<slug>.pprof
//	                  (faed of the scenarios that start one faed; not part of the table)
//	FAE_BENCH_MATCH   run only the points whose scenario name contains it (e.g. "redis": of scenario 5, rd_call GET only)
//	FAE_BENCH_LEVELS  comma-separated concurrency levels to run (default: each scenario's own)
//	FAE_BENCH_VARIANTS comma-separated variant names to run (e.g. "faed,twemproxy"; default all)
//	FAED_BIN          the faed binary measured (default: built from this tree), e.g. an older build to compare with
func BenchmarkSuite(b *testing.B) {
	s := newSuite(b)
	for b.Loop() {
		for _, sc := range suiteScenarios {
			if s.only != nil && !s.only[sc.num] {
				continue
			}
			t0 := time.Now()
			sc.run(s)
			s.logf("scenario %s done in %s", sc.num, time.Since(t0).Round(time.Second))
		}
	}
	b.ReportMetric(0, "ns/op")
	s.report()
}

// suiteScenario is one numbered scenario of the issue.
type suiteScenario struct {
	num string
	run func(s *suite)
}

var suiteScenarios = []suiteScenario{
	{"1", scenarioNoop},
	{"2", scenarioSessions},
	{"3", scenarioLcache},
	{"4", scenarioMyQuery},
	{"5", scenarioProxy},
	{"6", scenarioForward},
	{"7", scenarioIdle},
}

// Concurrency levels: scenarios 1, 2 and 5 sweep wide, the others run at two.
var (
	sweepLevels = []int{1, 16, 64, 256}
	twoLevels   = []int{16, 64}
)

// suite is the state of one make bench run.
type suite struct {
	b                           *testing.B
	dir                         string
	start                       time.Time
	window, warmup              time.Duration
	rounds                      int
	only                        map[string]bool
	faedBin, simpleBin, echoBin string
	points                      []*point
	notes                       []string     // lines of scenario 7 and the like, printed after the table
	profile, pprofAddr          string       // FAE_BENCH_PROFILE, and the pprof address of the faed last started
	pprofAddr2                  string       // scenario 6: the second node's pprof address
	match                       string       // FAE_BENCH_MATCH
	levels                      map[int]bool // FAE_BENCH_LEVELS; nil = all
	variants                    []string     // FAE_BENCH_VARIANTS; nil = all
}

func newSuite(b *testing.B) *suite {
	s := &suite{
		b:       b,
		dir:     b.TempDir(),
		start:   time.Now(),
		window:  envDuration(b, "FAE_BENCH_WINDOW", time.Second, 100*time.Millisecond, time.Minute),
		warmup:  envDuration(b, "FAE_BENCH_WARMUP", 300*time.Millisecond, 0, time.Minute),
		rounds:  envInt(b, "FAE_BENCH_ROUNDS", 5, 1, 50),
		profile: os.Getenv("FAE_BENCH_PROFILE"),
		match:   os.Getenv("FAE_BENCH_MATCH"),
	}
	if lv := os.Getenv("FAE_BENCH_LEVELS"); lv != "" {
		s.levels = map[int]bool{}
		for _, f := range strings.Split(lv, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("FAE_BENCH_LEVELS=%q: want comma-separated integers", lv)
			}
			s.levels[n] = true
		}
	}
	if v := os.Getenv("FAE_BENCH_VARIANTS"); v != "" {
		for _, f := range strings.Split(v, ",") {
			s.variants = append(s.variants, strings.TrimSpace(f))
		}
	}
	if s.match != "" || s.levels != nil || s.variants != nil || os.Getenv("FAED_BIN") != "" {
		// A partial run: every scenario may run, and bench/results stay as they are.
		s.only = map[string]bool{}
		for _, sc := range suiteScenarios {
			s.only[sc.num] = true
		}
	}
	if only := os.Getenv("FAE_BENCH_ONLY"); only != "" {
		s.only = map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			s.only[strings.TrimSpace(n)] = true
		}
	}
	if s.faedBin = os.Getenv("FAED_BIN"); s.faedBin == "" {
		s.faedBin = buildFaed(b, s.dir)
	}
	s.simpleBin = goBuild(b, s.dir, "simple", "github.com/fae-go/fae/bench/baseline/simple")
	s.echoBin = goBuild(b, s.dir, "echo", "github.com/fae-go/fae/bench/baseline/echo")
	s.logf("built faed, simple, echo in %s; window %s after %s warmup, %d rounds",
		time.Since(s.start).Round(time.Second), s.window, s.warmup, s.rounds)
	return s
}

func goBuild(tb testing.TB, dir, name, pkg string) string {
	tb.Helper()
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// logf prints a progress line with the time since the start.
func (s *suite) logf(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

// runLevels runs scenario at each concurrency of levels: every variant's
// workers open, then s.rounds rounds, the variants in forward order in even
// rounds and backward in odd ones, so that a drift of the machine's load falls
// on all alike.
func (s *suite) runLevels(scenario string, levels []int, vs []variant) {
	if !strings.Contains(scenario, s.match) {
		return
	}
	if s.variants != nil {
		vs = slices.DeleteFunc(slices.Clone(vs), func(v variant) bool { return !slices.Contains(s.variants, v.name) })
	}
	for _, c := range levels {
		if s.levels != nil && !s.levels[c] {
			continue
		}
		pts := make([]*point, len(vs))
		ws := make([]*workers, len(vs))
		for i, v := range vs {
			pts[i] = &point{scenario: scenario, variant: v.name, c: c, server: len(v.server) > 0, backend: len(v.backend) > 0}
			w, err := openWorkers(v, c)
			if err != nil {
				s.b.Fatalf("%s c=%d: %v", scenario, c, err)
			}
			ws[i] = w
		}
		for r := range s.rounds {
			order := make([]int, len(vs))
			for i := range order {
				order[i] = i
			}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, i := range order {
				smp, err := measure(vs[i], ws[i], s.warmup, s.window)
				if err != nil {
					s.b.Fatalf("%s c=%d round %d: %v", scenario, c, r+1, err)
				}
				pts[i].samples = append(pts[i].samples, smp)
				s.logf("%-16s c=%-3d round %d %-22s %8.0f calls/s  p50 %6.0f µs  p99 %7.0f µs  server %6.1f µs/call %5.2f syscalls/call %5.2f switches/call  backend %5.1f µs/call  RSS %6.1f MiB",
					scenario, c, r+1, vs[i].name, smp.callsPerSec(), us(smp.p50), us(smp.p99), smp.cpuPerCall(),
					smp.syscallsPerCall(), smp.switchesPerCall(), smp.backendPerCall(), float64(smp.rssKiB)/1024)
			}
		}
		for i, v := range vs {
			if s.profile == fmt.Sprintf("%s/%s/%d", scenario, v.name, c) {
				s.profileWindow(v, ws[i])
			}
		}
		for _, w := range ws {
			w.close()
		}
		s.points = append(s.points, pts...)
	}
}

// startChild runs bin with args as a child process until the benchmark ends
// and returns once addr (host:port, or a unix socket path) accepts connections.
func (s *suite) startChild(name, addr, bin string, args ...string) *exec.Cmd {
	s.b.Helper()
	cmd := exec.Command(bin, args...)
	out := new(testenv.SyncBuffer)
	cmd.Stdout, cmd.Stderr, cmd.Dir = out, out, s.dir
	if err := cmd.Start(); err != nil {
		s.b.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.b.Cleanup(func() { cmd.Process.Kill(); <-done })
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	deadline := time.Now().Add(faedStartTimeout)
	for {
		if c, err := net.DialTimeout(network, addr, time.Second); err == nil {
			c.Close()
			return cmd
		}
		select {
		case <-done:
			s.b.Fatalf("%s exited before listening on %s: %s", name, addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.b.Fatalf("%s not listening on %s within %s: %s", name, addr, faedStartTimeout, out.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval of the start-up wait
	}
}

// profileWindow runs one 5 s window of v while reading the CPU profile of
// each faed of the scenario (s.pprofAddr; scenario 6 also s.pprofAddr2, the
// second node's), and writes them under results/ (the second with "-node2").
func (s *suite) profileWindow(v variant, w *workers) {
	if s.pprofAddr == "" {
		s.b.Fatalf("FAE_BENCH_PROFILE %q: no faed with pprof in this scenario", s.profile)
	}
	type got struct {
		body []byte
		err  error
	}
	addrs := []string{s.pprofAddr}
	if s.pprofAddr2 != "" {
		addrs = append(addrs, s.pprofAddr2)
	}
	chs := make([]chan got, len(addrs))
	for i, addr := range addrs {
		chs[i] = make(chan got, 1)
		go func() {
			resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=5")
			if err != nil {
				chs[i] <- got{err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			chs[i] <- got{body, err}
		}()
	}
	smp, err := measure(v, w, 0, 5500*time.Millisecond)
	if err != nil {
		s.b.Fatal(err)
	}
	var name string
	for i, ch := range chs {
		g := <-ch
		if g.err != nil {
			s.b.Fatalf("pprof: %v", g.err)
		}
		suffix := ""
		if i > 0 {
			suffix = "-node2"
		}
		name = filepath.Join("results", s.start.Format("2006-01-02")+"-"+slug(s.profile)+suffix+".pprof")
		if err := os.WriteFile(name, g.body, 0o644); err != nil {
			s.b.Fatal(err)
		}
	}
	s.logf("profiled %s: %.0f calls/s, %.1f µs/call; go tool pprof -top bench/%s", s.profile, smp.callsPerSec(), smp.cpuPerCall(), name)
}
