package bench

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// The chart is well-formed XML naming every series once in its legend, with
// a point per value (none for NaN) and a polyline per series and panel.
func TestChartSVG(t *testing.T) {
	c := Chart{Title: "t <&>", XLabel: "c", X: []string{"1", "16", "64"}, Panels: []Panel{
		{Title: "calls/s", Series: []Series{
			{Name: "faed", Y: []float64{10, 2000, 3000}, Low: []float64{9, 1900, 2900}, High: []float64{11, 2100, 3100}},
			{Name: "echo", Y: []float64{20, math.NaN(), 4000}},
		}},
		{Title: "p99", Series: []Series{{Name: "faed", Y: []float64{1, 2, 3}}, {Name: "echo", Y: []float64{1, 2, 3}}}},
	}}
	svg := c.SVG()
	dec := xml.NewDecoder(strings.NewReader(svg))
	counts := map[string]int{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
	if counts["circle"] != 3+2+3+3 || counts["polyline"] != 4 {
		t.Errorf("%d circles, %d polylines; want 11 and 4", counts["circle"], counts["polyline"])
	}
	for _, n := range []string{">faed<", ">echo<", "t &lt;&amp;&gt;"} {
		if strings.Count(svg, n) != 1 {
			t.Errorf("%q appears %d times, want once", n, strings.Count(svg, n))
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for v, want := range map[float64]float64{0.7: 1, 3: 5, 4100: 5000, 21000: 25000, 100: 100} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}
