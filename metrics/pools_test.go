package metrics_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// poolsConf is a memcache pool of one live server and one dead address
// (failure_allowance 2, no retry within the test), and an lcache.
const poolsConf = `{
	rpc: { listen_addr: "127.0.0.1:0" }
	servants: {
		lcache: {}
		memcache: {
			timeout: "1s"
			breaker: { failure_allowance: 2, retry_interval: "1h" }
			servers: [ { pool: "p", host: "127.0.0.1", port: %s }, { pool: "p", host: "127.0.0.1", port: %s } ]
		}
	}
}`

// poolRow is the /svt/stat "pools" row of server.
func poolRow(t *testing.T, svt map[string]any, server string) map[string]any {
	t.Helper()
	for _, r := range at(t, svt, "pools").([]any) {
		if row := r.(map[string]any); row["server"] == server {
			return row
		}
	}
	t.Fatalf("no pools row for %s in %v", server, at(t, svt, "pools"))
	return nil
}

// A pool with a live server and a dead address: calls spread over both open
// the dead one's breaker (its dial side) and keep the live one's closed, as
// PoolStats, /svt/stat and /metrics all say; the live server's connections
// are shown open and idle.
func TestPoolsAndBreakers(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	live := testenv.MemcacheAddr
	dead := testenv.FreeAddr(t)
	_, livePort, _ := net.SplitHostPort(live)
	_, deadPort, _ := net.SplitHostPort(dead)
	n := startNodeConf(t, fmt.Sprintf(poolsConf, livePort, deadPort))
	row := func(server string) pool.ServerStats {
		for _, r := range n.svt.PoolStats() {
			if r.Server == server {
				return r
			}
		}
		t.Fatalf("no PoolStats row for %s", server)
		return pool.ServerStats{}
	}
	ctx := context.Background()
	i, liveOK := 0, 0
	testenv.Eventually(t, 10*time.Second, "the dead server's breaker open and a get answered by the live one", func() bool {
		i++
		if _, err := n.client.McGet(ctx, &rpc.Context{Rid: int64(i), Reason: "pools"}, "p", fmt.Sprintf("kvtest:pools:%d", i)); isMiss(err) {
			liveOK++
		}
		return row(dead).Breaker == "open" && liveOK > 0
	})
	if d, l := row(dead), row(live); d.Dial != "open" || d.Command != "closed" || d.Open != 0 ||
		l.Breaker != "closed" || l.Open < 1 || l.Idle != l.Open || l.InUse != 0 {
		t.Fatalf("PoolStats: dead %+v, live %+v", d, l)
	}

	svt := n.getJSON(t, "/svt/stat", 200)
	d, l := poolRow(t, svt, dead), poolRow(t, svt, live)
	if d["backend"] != "memcache" || d["pool"] != "p" || d["breaker"] != "open" || d["dial_breaker"] != "open" ||
		d["command_breaker"] != "closed" || d["open"] != 0.0 {
		t.Errorf("/svt/stat dead server: %v", d)
	}
	if l["breaker"] != "closed" || l["open"].(float64) < 1 || l["idle"] != l["open"] || l["in_use"] != 0.0 {
		t.Errorf("/svt/stat live server: %v", l)
	}

	// Labels as the exposition sorts them: by name.
	breaker := func(server, side string) string {
		return fmt.Sprintf(`fae_breaker_state{backend="memcache",breaker="%s",pool="p",server="%s"}`, side, server)
	}
	connections := func(server, state string) string {
		return fmt.Sprintf(`fae_pool_connections{backend="memcache",pool="p",server="%s",state="%s"}`, server, state)
	}
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{breaker(dead, "dial"), 2},
		{breaker(dead, "command"), 0},
		{breaker(live, "dial"), 0},
		{breaker(live, "command"), 0},
		{connections(dead, "open"), 0},
		{connections(live, "open"), l["open"].(float64)},
		{connections(live, "idle"), l["open"].(float64)},
		{connections(live, "in_use"), 0},
		{fmt.Sprintf(`fae_pool_waiting_calls{backend="memcache",pool="p",server="%s"}`, live), 0},
	} {
		if got := n.scrape(t, tc.series); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.series, got, tc.want)
		}
	}
}

func isMiss(err error) bool {
	_, ok := err.(*rpc.TCacheMissed)
	return ok
}

// Failed calls through the real engine are counted by message with digits
// folded (/engine/stat rpc.failures); lc_get hits and misses are counted in
// /svt/stat and /metrics.
func TestFailuresAndLcacheCounts(t *testing.T) {
	const N = 7
	n := startNode(t)
	ctx := context.Background()
	for i := range N {
		// rid 0 is refused by the servant: a TApplicationException for the engine
		if _, err := n.client.Ping(ctx, &rpc.Context{Rid: 0, Reason: fmt.Sprint("r", i)}); err == nil {
			t.Fatal("ping with rid 0 answered")
		}
	}
	var failures []any
	testenv.Eventually(t, 5*time.Second, "N failures counted", func() bool {
		failures = at(t, n.getJSON(t, "/engine/stat", 200), "rpc", "failures").([]any)
		return len(failures) > 0 && at(t, failures[0], "count") == float64(N)
	})
	if len(failures) != 1 || at(t, failures[0], "message") != "invalid context: rid is ?" {
		t.Fatalf("failures: %v", failures)
	}

	if _, err := n.client.LcSet(ctx, &rpc.Context{Rid: 1, Reason: "lc"}, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k", "x", "k", "y", "z"} {
		n.client.LcGet(ctx, &rpc.Context{Rid: 1, Reason: "lc"}, k)
	}
	lc := at(t, n.getJSON(t, "/svt/stat", 200), "lcache")
	if at(t, lc, "hits") != 2.0 || at(t, lc, "misses") != 3.0 {
		t.Errorf("/svt/stat lcache: %v, want 2 hits, 3 misses", lc)
	}
	if h, m := n.scrape(t, `fae_lcache_total{result="hit"}`), n.scrape(t, `fae_lcache_total{result="miss"}`); h != 2 || m != 3 {
		t.Errorf("fae_lcache_total: hit %v, miss %v", h, m)
	}
	if rows := at(t, n.getJSON(t, "/svt/stat", 200), "cluster", "by_peer").([]any); len(rows) != 0 {
		t.Errorf("forwarded by peer without a cluster: %v", rows)
	}
}
