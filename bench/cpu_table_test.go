package bench

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
)

// scenarioRounds is every round of one scenario: the current binary's, then
// the baseline's if any.
type scenarioRounds struct {
	name   string
	builds []*buildRounds
	log    []string // one line per round, in the order run
}

// spread is the median, minimum and maximum of a few measurements.
type spread struct{ med, min, max float64 }

func spreadOf(xs []float64) spread {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{med: med, min: s[0], max: s[n-1]}
}

// format prints "med (min–max)" with verb, e.g. "%.1f".
func (s spread) format(verb string) string {
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.med, s.min, s.max)
}

// width is max−min relative to the median, in percent.
func (s spread) width() float64 { return 100 * (s.max - s.min) / s.med }

func (bd *buildRounds) series(f func(loadResult) float64) spread {
	xs := make([]float64, len(bd.results))
	for i, r := range bd.results {
		xs[i] = f(r)
	}
	return spreadOf(xs)
}

func (bd *buildRounds) cpu() spread         { return bd.series(loadResult.cpuPerCall) }
func (bd *buildRounds) callsPerSec() spread { return bd.series(loadResult.callsPerSec) }
func (bd *buildRounds) p50() spread {
	return bd.series(func(r loadResult) float64 { return us(r.p50) })
}
func (bd *buildRounds) p99() spread {
	return bd.series(func(r loadResult) float64 { return us(r.p99) })
}
func (bd *buildRounds) rssMiB() spread {
	return bd.series(func(r loadResult) float64 { return float64(r.rssKiB) / 1024 })
}
func (row scenarioRounds) current() *buildRounds { return row.builds[0] }

// baseline is the baseline's rounds, or nil without a baseline.
func (row scenarioRounds) baseline() *buildRounds {
	if len(row.builds) < 2 {
		return nil
	}
	return row.builds[1]
}

// cpuTable lays out one line per scenario run: for each binary the median and
// (min–max) over its rounds of CPU µs per call and calls/s, then the ratios
// current/baseline of the medians (CPU per call first) and the spread of the
// ratio of CPU per call within each round, then the medians of
// p50/p99 latency and RSS, and the other processes' CPU (median, max) over
// all the rounds: the load that other users of the machine added.
func cpuTable(rows []scenarioRounds) string {
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	withBase := rows[0].baseline() != nil
	head := "scenario\tcurrent CPU µs/call\tcurrent calls/s"
	both := ""
	if withBase {
		head += "\tbaseline CPU µs/call\tbaseline calls/s\tratio CPU/call\tratio calls/s\tpaired CPU/call ratio"
		both = " cur | base"
	}
	head += "\tp50/p99 µs" + both + "\tRSS MiB" + both + "\tothers' CPU cores med (max)"
	fmt.Fprintln(tw, head)
	for _, row := range rows {
		fmt.Fprintln(tw, cpuTableLine(row))
	}
	tw.Flush()
	return sb.String()
}

func cpuTableLine(row scenarioRounds) string {
	cur, base := row.current(), row.baseline()
	line := fmt.Sprintf("%s\t%s\t%s", row.name, cur.cpu().format("%.1f"), cur.callsPerSec().format("%.0f"))
	lat := fmt.Sprintf("%.0f/%.0f", cur.p50().med, cur.p99().med)
	rss := fmt.Sprintf("%.1f", cur.rssMiB().med)
	var others []float64
	for _, bd := range row.builds {
		for _, r := range bd.results {
			others = append(others, r.others)
		}
	}
	if base != nil {
		line += fmt.Sprintf("\t%s\t%s\t%.3f\t%.3f\t%s", base.cpu().format("%.1f"), base.callsPerSec().format("%.0f"),
			cur.cpu().med/base.cpu().med, cur.callsPerSec().med/base.callsPerSec().med, pairedCPURatio(cur, base).format("%.2f"))
		lat += fmt.Sprintf(" | %.0f/%.0f", base.p50().med, base.p99().med)
		rss += fmt.Sprintf(" | %.1f", base.rssMiB().med)
	}
	o := spreadOf(others)
	return line + fmt.Sprintf("\t%s\t%s\t%.2f (%.2f)", lat, rss, o.med, o.max)
}

// pairedCPURatio is the spread of current/baseline CPU per call within each
// round, where the two ran one after the other: a drift of the machine's load
// between rounds cancels out of it.
func pairedCPURatio(cur, base *buildRounds) spread {
	xs := make([]float64, min(len(cur.results), len(base.results)))
	for i := range xs {
		xs[i] = cur.results[i].cpuPerCall() / base.results[i].cpuPerCall()
	}
	return spreadOf(xs)
}

// reportCPUMetrics reports the current binary's medians (and the ratios to
// the baseline) as the benchmark's metrics; ns/op, the length of a whole
// scenario, means nothing here and is suppressed.
func reportCPUMetrics(b *testing.B, row scenarioRounds) {
	cur := row.current()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(cur.cpu().med, "cpu-µs/call")
	b.ReportMetric(cur.callsPerSec().med, "calls/s")
	b.ReportMetric(cur.p99().med, "p99-µs")
	b.ReportMetric(cur.cpu().width(), "cpu-spread-%")
	if base := row.baseline(); base != nil {
		b.ReportMetric(cur.cpu().med/base.cpu().med, "cpu/call-ratio")
		b.ReportMetric(cur.callsPerSec().med/base.callsPerSec().med, "calls/s-ratio")
	}
}
