package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/metrics"
	"github.com/fae-go/fae/peer"
)

func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// The page, its assets and the samples over a real HTTP server.
func TestHandler(t *testing.T) {
	src, svt, st := testSources(t)
	d := New(src, Options{Interval: time.Hour, Capacity: 8}) // samples taken by hand below
	defer d.Stop()
	ping(t, svt, 10)
	st.Calls.Add(10)
	d.s.sample(time.Now())
	d.s.sample(time.Now())
	ts := httptest.NewServer(d)
	defer ts.Close()

	for _, c := range []struct{ path, ctype, has string }{
		{"/", "text/html", `<script src="dash.js">`},
		{"/dash.js", "text/javascript", "api/samples?since="},
		{"/dash.css", "text/css", "font"},
	} {
		code, h, body := get(t, "GET", ts.URL+c.path)
		if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), c.ctype) || !strings.Contains(body, c.has) ||
			h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d %q %q, want 200 %s containing %q", c.path, code, h.Get("Content-Type"), h.Get("Cache-Control"), c.ctype, c.has)
		}
		if rest := strings.ReplaceAll(body, "http://www.w3.org/2000/svg", ""); strings.Contains(rest, "//") &&
			(strings.Contains(rest, "http:") || strings.Contains(rest, "https:")) {
			t.Errorf("GET %s refers to another site: the page must work offline", c.path)
		}
	}
	code, _, body := get(t, "GET", ts.URL+"/api/samples")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); code != 200 || err != nil {
		t.Fatalf("/api/samples: %d %v %s", code, err, body)
	}
	if p.Version != "v" || p.Build != "b" || p.Self != "127.0.0.1:9001" || p.Last != 2 || len(p.Samples) != 2 ||
		p.Samples[0].Calls <= 0 || p.IntervalS != 3600 || p.Capacity != 8 || len(p.Nodes) != 1 || !p.Nodes[0].Self {
		t.Errorf("/api/samples: %+v", p)
	}
	code, _, body = get(t, "GET", ts.URL+"/api/samples?since=1")
	if err := json.Unmarshal([]byte(body), &p); code != 200 || err != nil || len(p.Samples) != 1 || p.Samples[0].Seq != 2 {
		t.Errorf("?since=1: %d %v %s", code, err, body)
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{{"GET", "/api/samples?since=x", 400}, {"POST", "/api/samples", 405}, {"GET", "/nope", 404}, {"HEAD", "/", 200}} {
		if code, _, _ := get(t, c.method, ts.URL+c.path); code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, code, c.code)
		}
	}
}

// The header's nodes: every member, sorted, with a link to its dashboard
// from its record (none when off), and this node even when it is not a
// member (a proxy-only node).
func TestNodes(t *testing.T) {
	members := []peer.Member{
		{Addr: "10.0.0.3:9001", Info: peer.MemberInfo{DashboardAddr: ""}},              // dashboard off
		{Addr: "10.0.0.1:9001", Info: peer.MemberInfo{DashboardAddr: "10.0.0.1:9102"}}, // as faed advertises it
		{Addr: "10.0.0.2:9001", Info: peer.MemberInfo{DashboardAddr: ":9102"}},         // no host: the node's
		{Addr: "10.0.0.4:9001", Info: peer.MemberInfo{DashboardAddr: "0.0.0.0:9102"}},  // every interface: the node's host
		{Addr: "[fd00::5]:9001", Info: peer.MemberInfo{DashboardAddr: "[::]:9102", Leaving: true}},
	}
	self := "10.0.0.1:9001"
	src := Sources{Self: self, SelfDashboard: "10.0.0.1:9102",
		Peers: func() metrics.Peers { return metrics.Peers{Self: self, Members: members} }}
	d := &Dashboard{src: src}
	want := []Node{
		{Addr: "10.0.0.1:9001", Dashboard: "http://10.0.0.1:9102/", Self: true},
		{Addr: "10.0.0.2:9001", Dashboard: "http://10.0.0.2:9102/"},
		{Addr: "10.0.0.3:9001"},
		{Addr: "10.0.0.4:9001", Dashboard: "http://10.0.0.4:9102/"},
		{Addr: "[fd00::5]:9001", Dashboard: "http://[fd00::5]:9102/", Leaving: true},
	}
	if got := d.nodes(); !equalNodes(got, want) {
		t.Errorf("nodes:\n got %+v\nwant %+v", got, want)
	}

	// A proxy-only node (not a member) is listed too; before ZooKeeper
	// answers (no member) it is alone; without a cluster it is alone.
	d.src.Self, d.src.SelfDashboard = "10.0.0.9:9001", "127.0.0.1:9102"
	d.src.Peers = func() metrics.Peers { return metrics.Peers{Members: members[:1]} }
	if got := d.nodes(); len(got) != 2 || got[1].Addr != "10.0.0.9:9001" || !got[1].Self ||
		got[1].Dashboard != "http://127.0.0.1:9102/" {
		t.Errorf("proxy-only node: %+v", got)
	}
	d.src.Peers = nil
	if got := d.nodes(); len(got) != 1 || got[0] != (Node{Addr: "10.0.0.9:9001", Dashboard: "http://127.0.0.1:9102/", Self: true}) {
		t.Errorf("no cluster: %+v", got)
	}
}

func equalNodes(a, b []Node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
