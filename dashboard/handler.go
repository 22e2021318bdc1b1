package dashboard

import (
	"embed"
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/fae-go/fae/servant"
)

//go:embed assets
var assets embed.FS

// ServeHTTP serves the page and its data (GET and HEAD only):
//
//	/              the page (index.html)
//	/dash.js       its script; /dash.css its style sheet
//	/api/samples   Page as JSON; ?since=N gives only the samples after seq N
//
// Anything else is 404. Every answer is marked no-store: the page is live.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "/", "/index.html":
		d.serveAsset(w, "assets/index.html", "text/html; charset=utf-8")
	case "/dash.js":
		d.serveAsset(w, "assets/dash.js", "text/javascript; charset=utf-8")
	case "/dash.css":
		d.serveAsset(w, "assets/dash.css", "text/css; charset=utf-8")
	case "/api/samples":
		d.serveSamples(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (d *Dashboard) serveAsset(w http.ResponseWriter, name, ctype string) {
	b, err := assets.ReadFile(name)
	if err != nil { // embedded at build time: cannot happen
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Write(b)
}

// Page is the JSON of /api/samples: the header's figures, the names of the
// per-backend and per-breaker series, and the samples.
type Page struct {
	Version   string  `json:"version"`
	Build     string  `json:"build"`
	Go        string  `json:"go"`
	Started   string  `json:"started"`  // RFC 3339
	UptimeS   int64   `json:"uptime_s"` // seconds since Started
	Self      string  `json:"self"`     // this node's address
	Nodes     []Node  `json:"nodes"`    // the cluster's nodes sorted by address, this one included; this one alone without a cluster
	IntervalS float64 `json:"interval_s"`
	Capacity  int     `json:"capacity"` // samples kept
	// Backends name the pairs of Sample.Backends; Breakers the entries of
	// Sample.Breakers (null when no breaker state is known).
	Backends        []string     `json:"backends"`
	Breakers        []BreakerKey `json:"breakers"`
	BackendsDropped int64        `json:"backends_dropped"` // see maxBackends
	BreakersDropped int64        `json:"breakers_dropped"` // see maxBreakers
	Last            uint64       `json:"last"`             // seq of the newest sample (0 = none yet): the next ?since=
	Samples         []Sample     `json:"samples"`
	// Reasons are the calls by normalised reason since start, the
	// MaxPageReasons busiest (servant.FunServant.Reasons); ReasonsTotal the
	// calls of every reason.
	Reasons      []servant.ReasonCount `json:"reasons"`
	ReasonsTotal int64                 `json:"reasons_total"`
	// PoolModes are the backend pools switched to read_only or degraded now
	// (servant.FunServant.PoolModes); empty when none.
	PoolModes []servant.PoolMode `json:"pool_modes"`
}

// MaxPageReasons is how many reasons the page lists: the busiest, as the
// original's "reason[...]" percentages, without the long tail.
const MaxPageReasons = 20

// Node is one node of the header.
type Node struct {
	Addr string `json:"addr"` // its advertised RPC address
	// Dashboard is the URL of its dashboard; "" when it has none (off, or
	// unknown: a record without dashboard_addr).
	Dashboard string `json:"dashboard"`
	Self      bool   `json:"self"` // this node
	Leaving   bool   `json:"leaving"`
}

func (d *Dashboard) serveSamples(w http.ResponseWriter, r *http.Request) {
	var since uint64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "since: not a sample number: "+strconv.Quote(v), http.StatusBadRequest)
			return
		}
		since = n
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(d.page(since))
}

// page builds the Page of the samples after since.
func (d *Dashboard) page(since uint64) Page {
	p := Page{Version: d.src.Version, Build: d.src.BuildID, Go: runtime.Version(),
		Started: d.src.Started.Format(time.RFC3339), UptimeS: int64(time.Since(d.src.Started).Seconds()),
		Self: d.src.Self, Nodes: d.nodes(), IntervalS: d.interval.Seconds(), Capacity: len(d.s.ring)}
	p.Samples = d.s.since(since)
	if d.src.Servant != nil {
		rs := d.src.Servant.Reasons()
		for _, r := range rs {
			p.ReasonsTotal += r.Calls
		}
		p.Reasons = rs[:min(len(rs), MaxPageReasons)]
		p.PoolModes = d.src.Servant.PoolModes()
	}
	s := d.s
	s.mu.RLock()
	p.Backends, p.Breakers = append([]string{}, s.backends...), append([]BreakerKey(nil), s.breakers...)
	p.BackendsDropped, p.BreakersDropped, p.Last = s.backendsDropped, s.breakersDropped, s.next-1
	s.mu.RUnlock()
	return p
}

// nodes lists the cluster's members with their dashboards' URLs, this node
// included (a proxy-only node is not a member: it is added). Without a
// cluster, or before ZooKeeper answered, it is this node alone.
func (d *Dashboard) nodes() []Node {
	self := Node{Addr: d.src.Self, Dashboard: dashboardURL(d.src.Self, d.src.SelfDashboard), Self: true}
	if d.src.Peers == nil {
		return []Node{self}
	}
	p := d.src.Peers()
	out := make([]Node, 0, len(p.Members)+1)
	found := false
	for _, m := range p.Members {
		n := Node{Addr: m.Addr, Dashboard: dashboardURL(m.Addr, m.Info.DashboardAddr), Leaving: m.Info.Leaving}
		if p.Self != "" && m.Addr == p.Self {
			n.Self, n.Dashboard, found = true, self.Dashboard, true
		}
		out = append(out, n)
	}
	if !found {
		out = append(out, self)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// dashboardURL is the URL of the dashboard at dash ("" = none) of the node
// at nodeAddr (host:port). A dashboard address without a host, or on an
// unspecified one (0.0.0.0, ::), is reached at the node's host.
func dashboardURL(nodeAddr, dash string) string {
	if dash == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(dash)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, _, err := net.SplitHostPort(nodeAddr); err == nil && h != "" {
			host = h
		}
	}
	if host == "" {
		return ""
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
