package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// warmup is the unmeasured load before each window: sessions and faed's backend
// connections open, and faed's heap grows to its working size.
const warmup = 500 * time.Millisecond

// BenchmarkServerCPU measures faed's own CPU time per call. A faed binary runs
// as a child process on loopback (binary protocol, buffered transport); a
// closed loop of persistent sessions (one Go client each) keeps it busy for a
// warmup and then a measured window, after which the loop stops by itself.
// Each round reports calls/s, client-side p50 and p99 latency, faed's CPU µs
// per call (utime+stime from /proc/<pid>/stat over the window, divided by the
// calls answered in it), faed's RSS (VmRSS) at the end, and the CPU of every
// other process on the machine over the window, in cores: the noise (for
// mc_get it includes memcached's own work).
// Scenarios: noop (Noop(7)) and mc_get (McGet of a 100-byte item set once
// beforehand through faed, pool "default", memcached 127.0.0.1:11311).
//
// The results are figures in the log and metrics, never pass/fail; the
// benchmark fails only when faed does not start or stop, or a call fails or
// answers wrongly. Environment:
//
//	FAED_BIN            the faed binary measured ("current"); default: built from this tree
//	FAED_BASELINE_BIN   a second faed binary ("baseline"): every scenario then runs
//	                    both, alternately (ABBA order), and the table gives current/baseline
//	FAE_BENCH_SESSIONS  concurrent sessions, default 16 (1..1024)
//	FAE_BENCH_DURATION  measured window of one round, default 3s (100ms..5m), after 500 ms of warmup
//	FAE_BENCH_ROUNDS    rounds per binary and scenario, default 5 (1..100)
//
// The config uses only keys the project has had since commit f929f33.
func BenchmarkServerCPU(b *testing.B) {
	o := cpuBenchOptions(b)
	var rows []scenarioRounds
	for _, sc := range cpuScenarios(o.sessions) {
		b.Run(sc.name, func(b *testing.B) {
			for b.Loop() { // one iteration (all rounds) per -benchtime: the window is fixed
				rows = append(rows, runScenario(b, o, sc))
			}
			reportCPUMetrics(b, rows[len(rows)-1])
		})
	}
	if len(rows) > 0 {
		// To stdout: the testing package prints a parent benchmark's own log only
		// when it fails, and cuts a benchmark's log after 10 lines.
		fmt.Printf("%s\n", o)
		for _, row := range rows {
			fmt.Printf("%s\n", strings.Join(row.log, "\n"))
		}
		fmt.Print(cpuTable(rows))
	}
}

// cpuOptions are the settings of BenchmarkServerCPU (see its environment).
type cpuOptions struct {
	builds   []*buildRounds // current, then the baseline if any; results empty
	sessions int
	window   time.Duration
	rounds   int
}

func (o cpuOptions) String() string {
	s := fmt.Sprintf("faed server CPU per call: %d sessions, %s window after %s warmup, rounds per binary: %d",
		o.sessions, o.window, warmup, o.rounds)
	for _, bd := range o.builds {
		s += fmt.Sprintf("\n  %-8s %s: %s", bd.name, bd.bin, bd.version)
	}
	return s
}

func cpuBenchOptions(b *testing.B) cpuOptions {
	o := cpuOptions{
		sessions: envInt(b, "FAE_BENCH_SESSIONS", concurrency, 1, 1024),
		window:   envDuration(b, "FAE_BENCH_DURATION", 3*time.Second, 100*time.Millisecond, 5*time.Minute),
		rounds:   envInt(b, "FAE_BENCH_ROUNDS", 5, 1, 100),
	}
	current := os.Getenv("FAED_BIN")
	if current == "" {
		current = buildFaed(b, b.TempDir())
	}
	o.builds = append(o.builds, newBuildRounds(b, "current", current))
	if base := os.Getenv("FAED_BASELINE_BIN"); base != "" {
		o.builds = append(o.builds, newBuildRounds(b, "baseline", base))
	}
	return o
}

func envInt(b *testing.B, key string, def, lo, hi int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		b.Fatalf("%s=%q: want an integer in %d..%d", key, v, lo, hi)
	}
	return n
}

func envDuration(b *testing.B, key string, def, lo, hi time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		b.Fatalf("%s=%q: want a duration in %s..%s", key, v, lo, hi)
	}
	return d
}

// buildRounds is one faed binary and the results of its rounds in one scenario.
type buildRounds struct {
	name, bin, version string
	results            []loadResult
}

// newBuildRounds checks that bin runs (faed -version) and keeps what it says.
func newBuildRounds(b *testing.B, name, bin string) *buildRounds {
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil {
		b.Fatalf("%s faed %s -version: %v\n%s", name, bin, err, out)
	}
	return &buildRounds{name: name, bin: bin, version: strings.TrimSpace(string(out))}
}

// cpuScenario is one kind of call measured.
type cpuScenario struct {
	name     string
	servants string                          // added to the servants section of faed.cf
	setup    func(b *testing.B, addr string) // once per scenario, on the first faed started
	call     callFunc
}

func cpuScenarios(sessions int) []cpuScenario {
	host, port, _ := net.SplitHostPort(memcacheAddrs[0])
	key := fmt.Sprintf("kvtest:bench:cpu:%d", time.Now().UnixNano())
	value := bytes.Repeat([]byte{'v'}, 100)
	return []cpuScenario{
		{name: "noop", call: func(s *session) error {
			x, err := s.client.Noop(context.Background(), 7)
			if err == nil && x != 7 {
				err = fmt.Errorf("noop(7) answered %d", x)
			}
			return err
		}},
		{name: "mc_get",
			servants: fmt.Sprintf(`memcache: { servers: [ { pool: "default", host: %q, port: %s } ], max_idle_conns_per_server: %d }`,
				host, port, sessions),
			setup: func(b *testing.B, addr string) { mcSetOnce(b, addr, key, value) },
			call: func(s *session) error {
				d, err := s.client.McGet(context.Background(), benchContext, "default", key)
				if err == nil && !bytes.Equal(d.GetData(), value) {
					err = fmt.Errorf("mc_get %s answered %d bytes, want the %d set", key, len(d.GetData()), len(value))
				}
				return err
			}},
	}
}

// mcSetOnce stores key=value (an hour's expiry) through the faed at addr.
func mcSetOnce(b *testing.B, addr, key string, value []byte) {
	testenv.RequireServer(b, "memcached", testenv.MemcacheAddr)
	s, err := dialSession(addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	ok, err := s.client.McSet(context.Background(), benchContext, "default", key, &rpc.TMemcacheData{Data: value}, 3600)
	if err != nil || !ok {
		b.Fatalf("mc_set %s: %v, %v", key, ok, err)
	}
}

// runScenario runs o.rounds rounds of sc on every binary; with two binaries
// the order alternates (current, baseline, baseline, current, …) so that a
// drift of the machine's load falls on both alike.
func runScenario(b *testing.B, o cpuOptions, sc cpuScenario) scenarioRounds {
	dir := b.TempDir()
	row := scenarioRounds{name: sc.name}
	for _, bd := range o.builds {
		row.builds = append(row.builds, &buildRounds{name: bd.name, bin: bd.bin, version: bd.version})
	}
	for r := range o.rounds {
		order := slices.Clone(row.builds)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, bd := range order {
			res := runRound(b, dir, bd.bin, sc, o, r == 0 && bd == order[0])
			bd.results = append(bd.results, res)
			row.log = append(row.log, fmt.Sprintf("%s round %d/%d %-8s %8.0f calls/s %6.1f µs CPU/call  p50 %6.0f µs  p99 %6.0f µs  RSS %5.1f MiB  others %.2f cores",
				sc.name, r+1, o.rounds, bd.name, res.callsPerSec(), res.cpuPerCall(), us(res.p50), us(res.p99),
				float64(res.rssKiB)/1024, res.others))
		}
	}
	return row
}

// runRound starts bin, loads it for warmup and window, and stops it.
func runRound(b *testing.B, dir, bin string, sc cpuScenario, o cpuOptions, first bool) loadResult {
	f := startFaedProc(b, bin, dir, sc.servants)
	if first && sc.setup != nil {
		sc.setup(b, f.addr)
	}
	pool, err := openSessions(f.addr, o.sessions)
	if err != nil {
		b.Fatalf("%s: opening %d sessions to faed %s: %v", sc.name, o.sessions, bin, err)
	}
	res, err := runLoad(f, pool, sc.call, warmup, o.window)
	closeSessions(pool)
	if err != nil {
		b.Fatalf("%s on faed %s: %v\n%s", sc.name, bin, err, f.output())
	}
	f.stop(b)
	return res
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
