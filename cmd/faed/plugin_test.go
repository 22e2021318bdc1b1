package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The plugin chain and the RateLimiter plugin through the faed binary
// (issue 11): counting mode, enforce mode, reloads changing the list.

// pluginConf is a faed.cf with a TCP and a unix-socket listener, 1 call per
// minute per host (so that no token comes back during the test) and plugins
// as the plugin.plugins list.
func pluginConf(sock, plugins string) string {
	return fmt.Sprintf(`{
    http_listen_addr: "127.0.0.1:0"
    reload_watchdog_interval: "0s"
    plugin: { plugins: %s }
    rpc: { listen_addr: ["127.0.0.1:0", %q], host_max_call_per_minute: 1 }
    servants: { lcache: { max_items: 10 } }
}`, plugins, sock)
}

// pluginStat is one line of /svt/stat's plugins.
type pluginStat struct {
	Name        string `json:"name"`
	Configured  bool   `json:"configured"`
	Enforce     bool   `json:"enforce"`
	Refused     int64  `json:"refused"`
	WouldRefuse int64  `json:"would_refuse"`
	Detail      struct {
		PerMinute int `json:"host_max_call_per_minute"`
		Burst     int `json:"burst"`
		Hosts     int `json:"hosts"`
		Top       []struct {
			Host string `json:"host"`
			Over int64  `json:"over"`
		} `json:"top"`
	} `json:"detail"`
}

func pluginStats(t *testing.T, f *faed) []pluginStat {
	t.Helper()
	body, code := httpGet(t, "http://"+f.httpAddr+"/svt/stat")
	if code != 200 {
		t.Fatalf("/svt/stat: %d %s", code, body)
	}
	var st struct {
		Plugins []pluginStat `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/svt/stat: %v", err)
	}
	return st.Plugins
}

// reloadPlugins rewrites f's plugin list, sends SIGHUP and waits for the
// n-th successful reload.
func reloadPlugins(t *testing.T, f *faed, sock, plugins string, n int) {
	t.Helper()
	rewriteConf(t, f, pluginConf(sock, plugins))
	f.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, f, fmt.Sprintf(`msg="config reloaded".* reloads_ok=%d `, n), 1)
}

// TestRateLimiterPlugin: RateLimiter with a burst of 5 at 1 call/min.
//   - Counting (the default): 20 pings from 127.0.0.1 all succeed; /svt/stat
//     and /metrics count 15 would-be refusals, and /svt/stat names the host.
//   - A reload sets enforce: true (the buckets are kept): the next ping from
//     127.0.0.1 is refused with the limit in the message; a client from
//     127.0.0.2 (its own bucket) and the unix-socket client (exempt) go on.
//   - A reload with an unknown name fails, naming the known plugins; the
//     running chain stays.
//   - A reload with no plugins: 127.0.0.1 is served again; the counts stay.
func TestRateLimiterPlugin(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "faed.sock")
	f := startFaedIn(t, dir, pluginConf(sock, `[{name: "RateLimiter", limit: 5}]`))
	tcpAddr := strings.Split(f.rpcAddr, ",")[0]
	m := allModes[0]
	f.rpcAddr, f.unix = tcpAddr, false
	tcp := f.dial(t, m)
	f.rpcAddr, f.unix = sock, true
	unix := f.dial(t, m)

	for i := range 20 {
		if _, err := tcp.Ping(bg, ctx()); err != nil {
			t.Fatalf("counting mode, ping %d: %v", i, err)
		}
	}
	ps := pluginStats(t, f)
	if len(ps) != 1 || ps[0].Name != "RateLimiter" || !ps[0].Configured || ps[0].Enforce ||
		ps[0].WouldRefuse != 15 || ps[0].Refused != 0 || ps[0].Detail.Burst != 5 || ps[0].Detail.PerMinute != 1 ||
		len(ps[0].Detail.Top) != 1 || ps[0].Detail.Top[0].Host != "127.0.0.1" || ps[0].Detail.Top[0].Over != 15 {
		t.Fatalf("counting mode: /svt/stat plugins %+v, want 15 would-be refusals of 127.0.0.1", ps)
	}
	got := scrape(t, f.httpAddr)
	if n := got[`fae_plugin_refusals_total{enforced="false",plugin="RateLimiter"}`]; n != 15 {
		t.Errorf("fae_plugin_refusals_total enforced=false = %v, want 15", n)
	}
	if n := got["fae_ratelimit_hosts"]; n != 1 {
		t.Errorf("fae_ratelimit_hosts = %v, want 1", n)
	}

	reloadPlugins(t, f, sock, `[{name: "RateLimiter", limit: 5, enforce: true}]`, 1)
	_, err := tcp.Ping(bg, ctx())
	var ae thrift.TApplicationException
	wantMsg := "plugin RateLimiter refused the call: rate limit: host 127.0.0.1 over host_max_call_per_minute 1"
	if !strings.Contains(fmt.Sprint(err), wantMsg) || !errors.As(err, &ae) {
		t.Fatalf("enforced, over the limit: %v, want a TApplicationException %q", err, wantMsg)
	}
	if _, err := tcp.Ping(bg, ctx()); err == nil {
		t.Fatal("enforced: the session's next call was served")
	}
	for i := range 10 {
		if _, err := unix.Ping(bg, ctx()); err != nil {
			t.Fatalf("unix-socket client, ping %d: %v", i, err)
		}
	}
	other := dialFrom(t, tcpAddr, "127.0.0.2")
	for i := range 5 {
		if _, err := other.Ping(bg, ctx()); err != nil {
			t.Fatalf("client from 127.0.0.2, ping %d (its own bucket of 5): %v", i, err)
		}
	}
	if n := scrape(t, f.httpAddr)[`fae_plugin_refusals_total{enforced="true",plugin="RateLimiter"}`]; n != 2 {
		t.Errorf("fae_plugin_refusals_total enforced=true = %v, want 2", n)
	}

	rewriteConf(t, f, pluginConf(sock, `[{name: "Nope"}]`))
	f.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, f, `msg="config reload failed; the running config stays".*unknown plugin \\"Nope\\" \(known: RateLimiter\)`, 1)
	if _, err := tcp.Ping(bg, ctx()); err == nil {
		t.Fatal("after a failed reload: RateLimiter no longer enforced")
	}

	reloadPlugins(t, f, sock, `[]`, 2)
	for i := range 5 {
		if _, err := tcp.Ping(bg, ctx()); err != nil {
			t.Fatalf("no plugins, ping %d: %v", i, err)
		}
	}
	ps = pluginStats(t, f)
	if len(ps) != 1 || ps[0].Configured || ps[0].Refused != 3 || ps[0].WouldRefuse != 15 {
		t.Fatalf("no plugins: /svt/stat plugins %+v, want RateLimiter not configured, its counts kept", ps)
	}
}

// dialFrom opens a binary buffered session to addr from the loopback address src.
func dialFrom(t *testing.T, addr, src string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conf := &thrift.TConfiguration{SocketTimeout: 10 * time.Second}
	trans := thrift.NewTBufferedTransport(thrift.NewTSocketFromConnConf(conn, conf), 4096)
	c := &client{rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(conf)), trans}
	t.Cleanup(c.Close)
	return c
}
