// Package bench holds fae's benchmarks (make bench: BenchmarkSuite and the Go
// benchmarks of the process), the baselines they compare faed with
// (baseline/simple, baseline/echo), and this small SVG chart writer for their
// results.
package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Series is one line of a chart: a name and one value per X position (NaN
// where it has none), with optional low and high values drawn as a bar.
type Series struct {
	Name         string
	Y, Low, High []float64 // len(Y) == len(Chart.X); Low and High empty, or as long as Y
}

// Panel is one plot of a chart: a title (the Y quantity and unit) and its series.
type Panel struct {
	Title  string
	Series []Series
}

// Chart is a figure of panels side by side sharing categorical X positions
// (e.g. the concurrency levels), each panel's Y axis linear from 0.
type Chart struct {
	Title  string
	XLabel string
	X      []string
	Panels []Panel
}

// palette gives each series of a panel its colour, in order (the Okabe–Ito
// colour-blind-safe palette).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"}

// Chart geometry, in SVG user units (px).
const (
	panelW, panelH = 420, 300 // one panel, axes included
	plotL, plotR   = 64, 16   // margins of the plot area inside a panel
	plotT, plotB   = 28, 44
	headerH        = 30
	legendRowH     = 18
)

// SVG renders the chart as a standalone SVG document.
func (c Chart) SVG() string {
	names := c.seriesNames()
	w := panelW * len(c.Panels)
	h := headerH + panelH + legendRowH*((len(names)+2)/3) + 8
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&sb, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&sb, `<text x="%d" y="20" font-size="14" text-anchor="middle">%s</text>`+"\n", w/2, html.EscapeString(c.Title))
	for i, p := range c.Panels {
		c.panel(&sb, p, float64(i*panelW), headerH, names)
	}
	for i, n := range names {
		x, y := 16+(i%3)*(w/3), headerH+panelH+legendRowH*(i/3)+10
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			x, y, palette[i%len(palette)], x+20, y+5, html.EscapeString(n))
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

// seriesNames is every series name in the order first seen: one colour each across panels.
func (c Chart) seriesNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, p := range c.Panels {
		for _, s := range p.Series {
			if !seen[s.Name] {
				seen[s.Name] = true
				names = append(names, s.Name)
			}
		}
	}
	return names
}

func (c Chart) panel(sb *strings.Builder, p Panel, ox, oy float64, names []string) {
	x0, x1 := ox+plotL, ox+panelW-plotR
	y0, y1 := oy+panelH-plotB, oy+plotT // y0 is the bottom (value 0)
	top := niceCeil(panelMax(p))
	fmt.Fprintf(sb, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, oy+16, html.EscapeString(p.Title))
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := y0 - (y0-y1)*float64(i)/4
		fmt.Fprintf(sb, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			x0, y, x1, y, x0-4, y+4, shortNum(v))
	}
	fmt.Fprintf(sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", x0, y0, x1, y0)
	xAt := func(i int) float64 { return x0 + (x1-x0)*(float64(i)+0.5)/float64(len(c.X)) }
	for i, x := range c.X {
		fmt.Fprintf(sb, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", xAt(i), y0+14, html.EscapeString(x))
	}
	fmt.Fprintf(sb, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, y0+32, html.EscapeString(c.XLabel))
	yAt := func(v float64) float64 { return y0 - (y0-y1)*v/top }
	for _, s := range p.Series {
		colour := palette[indexOf(names, s.Name)%len(palette)]
		var pts []string
		for i, v := range s.Y {
			if math.IsNaN(v) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(i), yAt(v)))
			if len(s.Low) == len(s.Y) && len(s.High) == len(s.Y) {
				fmt.Fprintf(sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", xAt(i), yAt(s.Low[i]), xAt(i), yAt(s.High[i]), colour)
			}
			fmt.Fprintf(sb, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", xAt(i), yAt(v), colour)
		}
		fmt.Fprintf(sb, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), colour)
	}
}

func indexOf(names []string, n string) int {
	for i, x := range names {
		if x == n {
			return i
		}
	}
	return 0
}

// panelMax is the largest value drawn in p (1 if none is positive).
func panelMax(p Panel) float64 {
	m := 0.0
	for _, s := range p.Series {
		for _, vs := range [][]float64{s.Y, s.High} {
			for _, v := range vs {
				if !math.IsNaN(v) && v > m {
					m = v
				}
			}
		}
	}
	if m <= 0 {
		return 1
	}
	return m
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

// shortNum prints v with k or M for thousands and millions.
func shortNum(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.2f", v/1e6), ".00") + "M"
	case v >= 1e3:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e3), ".0") + "k"
	default:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
	}
}
