package servant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/peer"
)

func mustRateLimiter(t testing.TB, spec PluginSpec, perMinute int, prev Plugin) *RateLimiter {
	t.Helper()
	p, err := newRateLimiter(spec, PluginEnv{HostMaxCallPerMinute: perMinute, Prev: prev})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*RateLimiter)
}

func hostCall(ip string) Call {
	return Call{Method: "ping", Context: validCtx(), Client: netip.MustParseAddr(ip)}
}

// Each host has its own bucket of `limit` calls, refilled at
// host_max_call_per_minute/60 per second (1 per minute here, so that no
// token comes back during the test); unix-socket clients and peers have none.
func TestRateLimiterBuckets(t *testing.T) {
	r := mustRateLimiter(t, PluginSpec{Name: RateLimiterName, Limit: 3}, 1, nil)
	for i := range 3 {
		if err := r.Before(hostCall("10.1.2.3")); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	err := r.Before(hostCall("10.1.2.3"))
	var rl *RateLimitError
	if !errors.As(err, &rl) || err.Error() != "rate limit: host 10.1.2.3 over host_max_call_per_minute 1" {
		t.Fatalf("4th call: %v", err)
	}
	if err := r.Before(hostCall("10.1.2.4")); err != nil {
		t.Fatalf("another host: %v", err)
	}
	for range 10 {
		if err := r.Before(Call{Method: "ping", Context: validCtx()}); err != nil {
			t.Fatalf("unix-socket client: %v", err)
		}
		c := hostCall("10.1.2.3")
		c.Peer = true
		if err := r.Before(c); err != nil {
			t.Fatalf("peer: %v", err)
		}
	}
	st := r.Stats().(RateLimiterStats)
	want := RateLimiterStats{PerMinute: 1, Burst: 3, MaxHosts: DefaultRateLimiterMaxHosts, Hosts: 2,
		Top: []HostOver{{Host: "10.1.2.3", Over: 1}}}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
}

// The default burst is 10 s of calls: host_max_call_per_minute/6.
func TestRateLimiterDefaultBurst(t *testing.T) {
	r := mustRateLimiter(t, PluginSpec{Name: RateLimiterName}, 6000, nil)
	if r.burst != 1000 {
		t.Fatalf("burst %d, want 1000", r.burst)
	}
	if r := mustRateLimiter(t, PluginSpec{Name: RateLimiterName}, 5, nil); r.burst != 1 {
		t.Fatalf("burst of 5/min %d, want 1", r.burst)
	}
}

// max_hosts bounds the buckets: the least recently seen host is evicted,
// counted, and starts again with a full bucket. Top shows at most
// RateLimiterTopHosts hosts, the most over first.
func TestRateLimiterBoundedHosts(t *testing.T) {
	r := mustRateLimiter(t, PluginSpec{Name: RateLimiterName, Limit: 1, MaxHosts: 12}, 1, nil)
	for i := range 12 {
		for range i + 2 { // host i: 1 call within the burst, i+1 over
			r.Before(hostCall(fmt.Sprintf("10.0.0.%d", i)))
		}
	}
	st := r.Stats().(RateLimiterStats)
	if st.Hosts != 12 || st.Evictions != 0 || len(st.Top) != RateLimiterTopHosts ||
		st.Top[0] != (HostOver{"10.0.0.11", 12}) || st.Top[9] != (HostOver{"10.0.0.2", 3}) {
		t.Fatalf("stats %+v", st)
	}
	if err := r.Before(hostCall("10.0.1.1")); err != nil { // evicts 10.0.0.0
		t.Fatal(err)
	}
	if err := r.Before(hostCall("10.0.0.0")); err != nil { // a new bucket: evicts 10.0.0.1
		t.Fatalf("an evicted host's new bucket: %v", err)
	}
	if st := r.Stats().(RateLimiterStats); st.Hosts != 12 || st.Evictions != 2 {
		t.Fatalf("after 2 evictions: %+v", st)
	}
}

// A rebuild with the same rate, burst and max_hosts (a reload that changed
// something else, enforce included, or a membership change) keeps the
// RateLimiter and its buckets; another rate makes a new one that keeps the
// eviction count.
func TestRateLimiterRebuild(t *testing.T) {
	spec := PluginSpec{Name: RateLimiterName, Limit: 1, MaxHosts: 1}
	r := mustRateLimiter(t, spec, 1, nil)
	r.Before(hostCall("10.0.0.1"))
	r.Before(hostCall("10.0.0.2")) // evicts 10.0.0.1
	spec.Enforce = true
	if same := mustRateLimiter(t, spec, 1, r); same != r {
		t.Fatal("unchanged settings: a new RateLimiter")
	}
	r2 := mustRateLimiter(t, spec, 2, r)
	if r2 == r {
		t.Fatal("another rate: the same RateLimiter")
	}
	if st := r2.Stats().(RateLimiterStats); st.Evictions != 1 || st.Hosts != 0 || st.PerMinute != 2 {
		t.Fatalf("rebuilt: %+v", st)
	}
}

// Through the pipeline over real sockets: with enforce a TCP client over
// its bucket is refused with the limit in the message while the unix-socket
// client goes on; a registered peer's address is exempt.
func TestRateLimiterEnforced(t *testing.T) {
	cfg := pluginConfig(PluginSpec{Name: RateLimiterName, Limit: 2, Enforce: true})
	cfg.HostMaxCallPerMinute = 1
	s := newTestServant(t, cfg, Options{})
	tcp, unix := serve(t, s)
	ctx := context.Background()
	for i := range 2 {
		if _, err := tcp.Ping(ctx, validCtx()); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	_, err := tcp.Ping(ctx, validCtx())
	var ae thrift.TApplicationException
	want := "plugin RateLimiter refused the call: rate limit: host 127.0.0.1 over host_max_call_per_minute 1"
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), want) {
		t.Fatalf("over the limit: %v, want %q", err, want)
	}
	for range 5 {
		if _, err := unix.Ping(ctx, validCtx()); err != nil {
			t.Fatalf("unix-socket client: %v", err)
		}
	}
	s.SetMembers([]peer.Member{{Addr: "127.0.0.1:1"}}) // this node is no member (Self ""): 127.0.0.1 is a peer
	for range 5 {
		if _, err := tcp.Ping(ctx, validCtx()); err != nil {
			t.Fatalf("peer: %v", err)
		}
	}
	ps := s.Plugins()
	if len(ps) != 1 || ps[0].Refused != 1 || ps[0].WouldRefuse != 0 {
		t.Fatalf("plugin stats %+v", ps)
	}
	if st := ps[0].Detail.(RateLimiterStats); st.Hosts != 1 || len(st.Top) != 1 || st.Top[0].Over != 1 {
		t.Fatalf("rate limiter stats %+v (the membership change kept its buckets?)", st)
	}
}

// BenchmarkRateLimiterBefore is the RateLimiter's cost per call, from every
// core at once: each worker a host of its own (of 64), buckets never empty.
func BenchmarkRateLimiterBefore(b *testing.B) {
	r := mustRateLimiter(b, PluginSpec{Name: RateLimiterName}, 1<<30, nil)
	var workers atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := hostCall(fmt.Sprintf("10.0.0.%d", workers.Add(1)%64))
		for pb.Next() {
			if err := r.Before(c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPipelinePlugins is the call pipeline around an empty body without
// plugins and with RateLimiter (a ctx outside a session: the call is seen,
// the host exempt): the chain's own cost.
func BenchmarkPipelinePlugins(b *testing.B) {
	for _, specs := range [][]PluginSpec{nil, {{Name: RateLimiterName}}} {
		b.Run(fmt.Sprintf("plugins=%d", len(specs)), func(b *testing.B) {
			s, err := New(pluginConfig(specs...), Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(s.Close)
			c := &rpc.Context{Rid: 1, Reason: "bench"}
			for Traced(c.Rid, 1) { // untraced, as most calls
				c.Rid++
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				run(s, ctx, "ping", c, true, nil, func(*generation) (int, error) { return 0, nil })
			}
		})
	}
}
