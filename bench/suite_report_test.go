package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// suiteTarget is one ratio the table prints: num's server CPU per call over
// den's (or their clients' p50 latency, p50: printed at c only), paired round
// by round, at each concurrency of the scenario. Gated ones must be ≤ limit
// (issue 10) and count in "targets missed"; issue 12's have a limit too, at c
// (every level when 0), shown and counted apart; the others have none.
type suiteTarget struct {
	label, scenario, num, den string
	limit                     float64
	gated                     bool
	issue12                   bool
	p50                       bool
	c                         int
}

var suiteTargets = []suiteTarget{
	{"noop: faed / TSimpleServer", "1 noop", "faed", "TSimpleServer", 1, true, false, false, 0},
	{"sessions tcp: faed / TSimpleServer", "2 sessions tcp", "faed", "TSimpleServer", 1, true, false, false, 0},
	{"sessions unix: faed / TSimpleServer", "2 sessions unix", "faed", "TSimpleServer", 1, true, false, false, 0},
	{"lc_get 100 B / noop", "3 lcache", "lc_get 100 B", "noop", 1.2, true, false, false, 0},
	{"lc_get 10 KB / noop", "3 lcache", "lc_get 10 KB", "noop", 1.2, true, false, false, 0},
	{"my_query cacheKey hit / noop", "4 my_query", "faed cacheKey hit", "faed noop", 1.25, true, false, false, 0},
	{"lock forwarded / local (both nodes)", "6 lock forwarded", "forwarded", "local", 2, true, false, false, 0},
	{"sessions unix: faed / raw echo", "2 sessions unix", "faed", "raw echo", 0, false, false, false, 0},
	{"lc_get 10 KB: faed / raw echo of its bytes", "3 lcache", "lc_get 10 KB", "raw echo lc_get 10 KB", 0, false, false, false, 0},
	{"lc_get 100 B / noop floor: their raw echoes", "3 lcache", "raw echo lc_get 100 B", "raw echo noop", 0, false, false, false, 0},
	{"lc_get 10 KB / noop floor: their raw echoes", "3 lcache", "raw echo lc_get 10 KB", "raw echo noop", 0, false, false, false, 0},
	// The Go floor of a proxied Redis GET (bench/baseline/goproxy): what a
	// goroutine-per-connection Go proxy pays against twemproxy before any
	// code of faed runs, and what faed's code adds to it.
	{"redis GET: Go proxy floor / twemproxy", "5 redis GET", "Go proxy floor", "twemproxy", 0, false, false, false, 0},
	{"redis GET: faed / Go proxy floor", "5 redis GET", "faed", "Go proxy floor", 0, false, false, false, 0},
	// Issue 12's targets: "mc_get and rd_call GET at c=64: faed's CPU per
	// call ≤ 1.5× twemproxy's"; "php-fpm session over TCP: faed's CPU per
	// session ≤ 1.1× the raw TCP floor's; noop ≤ 1.15×"; "at one client,
	// p50 of mc_get and rd_call must not rise by more than 10%" (against
	// the same call with coalescing off).
	{"mc_get: faed / twemproxy", "5 mc_get", "faed", "twemproxy", 1.5, false, true, false, 64},
	{"redis GET: faed / twemproxy", "5 redis GET", "faed", "twemproxy", 1.5, false, true, false, 64},
	{"sessions tcp: faed / raw echo", "2 sessions tcp", "faed", "raw echo", 1.1, false, true, false, 0},
	{"noop: faed / raw echo", "1 noop", "faed", "raw echo", 1.15, false, true, false, 0},
	{"mc_get p50: coalesced / coalesce off", "5 mc_get", "faed", "faed coalesce off", 1.1, false, true, true, 1},
	{"redis GET p50: pipelined / pipeline off", "5 redis GET", "faed", "faed pipeline off", 1.1, false, true, true, 1},
}

// find is the point of scenario at c whose variant name starts with variant.
func (s *suite) find(scenario, variant string, c int) *point {
	for _, p := range s.points {
		if p.scenario == scenario && p.c == c && p.variant == variant {
			return p
		}
	}
	for _, p := range s.points {
		if p.scenario == scenario && p.c == c && strings.HasPrefix(p.variant, variant) {
			return p
		}
	}
	return nil
}

// levelsOf is the concurrency levels scenario ran at, in order.
func (s *suite) levelsOf(scenario string) []int {
	var cs []int
	for _, p := range s.points {
		if p.scenario == scenario && (len(cs) == 0 || cs[len(cs)-1] != p.c) {
			cs = append(cs, p.c)
		}
	}
	return cs
}

// pairedRatio is the spread over rounds of num's server CPU per call over
// den's, or of their p50 latency when p50.
func pairedRatio(num, den *point, p50 bool) spread {
	xs := make([]float64, min(len(num.samples), len(den.samples)))
	for i := range xs {
		if p50 {
			xs[i] = float64(num.samples[i].p50) / float64(den.samples[i].p50)
		} else {
			xs[i] = num.samples[i].cpuPerCall() / den.samples[i].cpuPerCall()
		}
	}
	return spreadOf(xs)
}

// targetsTable is the ratios: one line per target and concurrency, with the
// number of gated targets missed (issue 10) and of issue 12's.
func (s *suite) targetsTable() (string, int, int) {
	var sb strings.Builder
	missed, missed12 := 0, 0
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio of server CPU µs/call (p50: of latency)\tc\tmedian (min–max) of rounds\tcalls/s ratio\tgoal\tmet")
	for _, t := range suiteTargets {
		for _, c := range s.levelsOf(t.scenario) {
			if t.p50 && c != t.c {
				continue
			}
			num, den := s.find(t.scenario, t.num, c), s.find(t.scenario, t.den, c)
			if num == nil || den == nil {
				continue
			}
			r := pairedRatio(num, den, t.p50)
			goal, met := "(not gated)", ""
			switch {
			case t.gated:
				goal, met = fmt.Sprintf("≤ %.2f", t.limit), "yes"
				if r.med > t.limit {
					met = "NO"
					missed++
				}
			case t.issue12 && (t.c == 0 || c == t.c):
				goal, met = fmt.Sprintf("≤ %.2f (issue 12)", t.limit), "yes"
				if r.med > t.limit {
					met = "NO"
					missed12++
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f\t%s\t%s\n", t.label, c, r.format("%.2f"),
				num.series(sample.callsPerSec).med/den.series(sample.callsPerSec).med, goal, met)
		}
	}
	tw.Flush()
	return sb.String(), missed, missed12
}

// pointsTable is every point: calls/s, latency, CPU per call and RSS.
func (s *suite) pointsTable() string {
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tc\tvariant\tcalls/s med (min–max)\tp50 µs\tp99 µs\tserver CPU µs/call\tsyscalls/call\tswitches/call\tbackend CPU µs/call\tserver RSS MiB")
	for _, p := range s.points {
		srv, sys, sw, be, rss := "—", "—", "—", "—", "—"
		if p.server {
			srv = p.series(sample.cpuPerCall).format("%.1f")
			sys = fmt.Sprintf("%.2f", p.series(sample.syscallsPerCall).med)
			sw = fmt.Sprintf("%.2f", p.series(sample.switchesPerCall).med)
			rss = fmt.Sprintf("%.1f", p.series(func(x sample) float64 { return float64(x.rssKiB) / 1024 }).med)
		}
		if p.backend {
			be = fmt.Sprintf("%.1f", p.series(sample.backendPerCall).med)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\n", p.scenario, p.c, p.variant,
			p.series(sample.callsPerSec).format("%.0f"),
			p.series(func(x sample) float64 { return us(x.p50) }).med,
			p.series(func(x sample) float64 { return us(x.p99) }).med, srv, sys, sw, be, rss)
	}
	tw.Flush()
	return sb.String()
}

// machine describes the host: CPU model, cores, kernel, Go version.
func machine() string {
	model := "unknown CPU"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d cores, Linux %s, %s", model, runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version())
}

// report prints the table (targets first) and writes results/<date>.md with
// one SVG chart per scenario next to it.
func (s *suite) report() {
	if len(s.points) == 0 && len(s.notes) == 0 {
		return
	}
	wall := time.Since(s.start).Round(time.Second)
	targets, missed, missed12 := s.targetsTable()
	head := fmt.Sprintf("make bench: %s; %d rounds of a %s window (after %s warmup) per variant, alternating; wall time %s\nmachine: %s\n",
		s.start.Format("2006-01-02 15:04 MST"), s.rounds, s.window, s.warmup, wall, machine())
	table := targets + fmt.Sprintf("targets missed: %d (issue 12's: %d)\n\n", missed, missed12) + s.pointsTable()
	if len(s.notes) > 0 {
		table += "\n" + strings.Join(s.notes, "\n") + "\n"
	}
	fmt.Print("\n" + head + "\n" + table)
	if s.only != nil || s.profile != "" {
		fmt.Println("\na partial or profiling run (FAE_BENCH_ONLY, FAE_BENCH_PROFILE): bench/results left as they are")
		return
	}
	date := s.start.Format("2006-01-02")
	var md strings.Builder
	fmt.Fprintf(&md, "# make bench, %s\n\n- Machine: %s\n- %d rounds of a %s window (after %s warmup) per variant, variants alternating (forward, backward); wall time of the whole `make bench`: %s\n- Server CPU: utime+stime from /proc/<pid>/stat of the measured server process(es) over the window, per call answered; backend: the same of memcached, Redis or MariaDB behind it; RSS: VmRSS at the end of the window; syscalls/call: read and write system calls of the server (syscr + syscw of /proc/<pid>/io); switches/call: context switches of the server's threads (voluntary and not, /proc/<pid>/task/*/status).\n\n```text\n%s```\n\n",
		date, machine(), s.rounds, s.window, s.warmup, wall, table)
	for _, sc := range s.scenarioNames() {
		name := date + "-" + slug(sc) + ".svg"
		if err := os.WriteFile(filepath.Join("results", name), []byte(s.chart(sc).SVG()), 0o644); err != nil {
			s.b.Fatal(err)
		}
		fmt.Fprintf(&md, "![%s](%s)\n", sc, name)
	}
	if err := os.WriteFile(filepath.Join("results", date+".md"), []byte(md.String()), 0o644); err != nil {
		s.b.Fatal(err)
	}
	fmt.Printf("\nwrote bench/results/%s.md and its charts\n", date)
}

func (s *suite) scenarioNames() []string {
	var names []string
	for _, p := range s.points {
		if len(names) == 0 || names[len(names)-1] != p.scenario {
			names = append(names, p.scenario)
		}
	}
	return names
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// chart is scenario's calls/s and p99 against concurrency, a line per variant.
func (s *suite) chart(scenario string) Chart {
	levels := s.levelsOf(scenario)
	c := Chart{Title: "make bench: " + scenario, XLabel: "concurrent workers (c)"}
	for _, l := range levels {
		c.X = append(c.X, fmt.Sprint(l))
	}
	rate, p99 := Panel{Title: "calls/s (median, bar: min–max)"}, Panel{Title: "p99 latency µs (median)"}
	var variants []string
	for _, p := range s.points {
		if p.scenario == scenario && !containsStr(variants, p.variant) {
			variants = append(variants, p.variant)
		}
	}
	for _, v := range variants {
		r := Series{Name: v}
		q := Series{Name: v}
		for _, l := range levels {
			p := s.find(scenario, v, l)
			if p == nil {
				r.Y, r.Low, r.High, q.Y = append(r.Y, math.NaN()), append(r.Low, math.NaN()), append(r.High, math.NaN()), append(q.Y, math.NaN())
				continue
			}
			sp := p.series(sample.callsPerSec)
			r.Y, r.Low, r.High = append(r.Y, sp.med), append(r.Low, sp.min), append(r.High, sp.max)
			q.Y = append(q.Y, p.series(func(x sample) float64 { return us(x.p99) }).med)
		}
		rate.Series, p99.Series = append(rate.Series, r), append(p99.Series, q)
	}
	c.Panels = []Panel{rate, p99}
	return c
}

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
