package servant

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// RateLimiterName is the registered name of the RateLimiter plugin.
const RateLimiterName = "RateLimiter"

// Defaults of the RateLimiter plugin.
const (
	// DefaultHostMaxCallPerMinute is rpc.host_max_call_per_minute's default:
	// the original's sample value (there a dead key).
	DefaultHostMaxCallPerMinute = 6000
	// DefaultRateLimiterMaxHosts is max_hosts' default: far more php-fpm
	// hosts than a fae cluster serves, 10000 buckets of about 150 bytes.
	DefaultRateLimiterMaxHosts = 10000
	// RateLimiterTopHosts is how many of the hosts most over the limit
	// /svt/stat shows.
	RateLimiterTopHosts = 10
)

func init() {
	if err := RegisterPlugin(RateLimiterName, newRateLimiter); err != nil {
		panic(err)
	}
}

// RateLimiter is the plugin of issue 11's per-client call rate (the
// original's planned, never working RateLimiter and its dead
// rpc.host_max_call_per_minute): a token bucket per client IP
// (golang.org/x/time/rate) filled at host_max_call_per_minute/60 calls per
// second, holding at most burst calls. A call finding its host's bucket
// empty is objected to with a *RateLimitError; the pipeline refuses it when
// the entry has enforce: true, else only counts it (the default, because
// configs written for the original list RateLimiter with 6000/min while it
// did nothing, and a busy php-fpm host makes more than 100 calls/s).
//
// Exempt, and never given a bucket: unix-socket clients (the socket's file
// mode governs them) and the IPs of the cluster's other registered members
// (forwarded calls; so also any client on a member's host).
//
// Burst: the entry's limit, else host_max_call_per_minute/6 (10 seconds of
// calls at the full rate, at least 1): a host may send that many at once
// after a quiet spell, and at most burst + host_max_call_per_minute in any
// minute.
//
// Buckets live in an LRU of at most max_hosts hosts (default 10000,
// hashicorp/golang-lru): past it the least recently seen host is evicted
// (counted) and starts again with a full bucket. Safe for concurrent use;
// a call costs one LRU lookup under its lock and one bucket update.
type RateLimiter struct {
	perMinute int
	burst     int
	maxHosts  int
	limit     rate.Limit
	hosts     *lru.Cache[netip.Addr, *hostBucket]
	counts    *rateCounts // shared with the RateLimiters it replaces or is replaced by
}

// rateCounts are the RateLimiter's counters that outlive a rebuild.
type rateCounts struct {
	evicted atomic.Int64
}

// hostBucket is one host's token bucket and how often it ran empty.
type hostBucket struct {
	host netip.Addr
	lim  *rate.Limiter
	over atomic.Int64
}

// RateLimitError is the objection of RateLimiter to a call over its host's
// rate: "rate limit: host 10.1.2.3 over host_max_call_per_minute 6000".
type RateLimitError struct {
	Host      netip.Addr
	PerMinute int // host_max_call_per_minute
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limit: host %s over host_max_call_per_minute %d", e.Host, e.PerMinute)
}

// newRateLimiter is RateLimiter's PluginFactory. It returns env.Prev itself
// when the rate, burst and max_hosts are unchanged (buckets kept), else a
// new one that keeps Prev's eviction count.
func newRateLimiter(spec PluginSpec, env PluginEnv) (Plugin, error) {
	switch {
	case len(spec.Options) > 0:
		return nil, fmt.Errorf("unknown keys %v (RateLimiter takes name, limit, enforce, max_hosts)", slices.Sorted(maps.Keys(spec.Options)))
	case spec.Limit < 0:
		return nil, fmt.Errorf("limit: the burst must be 0 (default) or more, got %d", spec.Limit)
	case spec.MaxHosts < 0:
		return nil, fmt.Errorf("max_hosts: must be 0 (default %d) or more, got %d", DefaultRateLimiterMaxHosts, spec.MaxHosts)
	case env.HostMaxCallPerMinute < 1:
		return nil, fmt.Errorf("rpc.host_max_call_per_minute: must be at least 1 with RateLimiter, got %d", env.HostMaxCallPerMinute)
	}
	r := &RateLimiter{perMinute: env.HostMaxCallPerMinute, burst: spec.Limit, maxHosts: spec.MaxHosts,
		limit: rate.Limit(float64(env.HostMaxCallPerMinute) / 60)}
	if r.burst == 0 {
		r.burst = max(1, r.perMinute/6)
	}
	if r.maxHosts == 0 {
		r.maxHosts = DefaultRateLimiterMaxHosts
	}
	prev, _ := env.Prev.(*RateLimiter)
	if prev != nil && prev.perMinute == r.perMinute && prev.burst == r.burst && prev.maxHosts == r.maxHosts {
		return prev, nil
	}
	r.counts = new(rateCounts)
	if prev != nil {
		r.counts = prev.counts
	}
	var err error
	r.hosts, err = lru.NewWithEvict(r.maxHosts, func(netip.Addr, *hostBucket) { r.counts.evicted.Add(1) })
	return r, err
}

// Before takes a token from the bucket of c's host; an empty bucket is a
// *RateLimitError. Unix-socket clients and peers pass untouched.
func (r *RateLimiter) Before(c Call) error {
	if !c.Client.IsValid() || c.Peer {
		return nil
	}
	b, ok := r.hosts.Get(c.Client)
	if !ok {
		nb := &hostBucket{host: c.Client, lim: rate.NewLimiter(r.limit, r.burst)}
		if prev, found, _ := r.hosts.PeekOrAdd(c.Client, nb); found {
			b = prev
		} else {
			b = nb
		}
	}
	if b.lim.Allow() {
		return nil
	}
	b.over.Add(1)
	return &RateLimitError{Host: c.Client, PerMinute: r.perMinute}
}

// After does nothing: the rate counts calls started.
func (r *RateLimiter) After(Call, error, time.Duration) {}

// RateLimiterStats are RateLimiter's figures (its PluginStat.Detail).
type RateLimiterStats struct {
	PerMinute int   `json:"host_max_call_per_minute"`
	Burst     int   `json:"burst"`
	MaxHosts  int   `json:"max_hosts"`
	Hosts     int   `json:"hosts"`     // hosts with a bucket now
	Evictions int64 `json:"evictions"` // hosts evicted to stay within max_hosts, since start
	// Top are the hosts with a bucket whose calls found it empty most often
	// (refused, or counted with enforce off), most first: at most
	// RateLimiterTopHosts. A host evicted loses its count.
	Top []HostOver `json:"top"`
}

// HostOver is one host of RateLimiterStats.Top.
type HostOver struct {
	Host string `json:"host"`
	Over int64  `json:"over"` // calls over the rate since it got its bucket
}

// Stats implements Statser: it walks the buckets (at most max_hosts).
func (r *RateLimiter) Stats() any {
	st := RateLimiterStats{PerMinute: r.perMinute, Burst: r.burst, MaxHosts: r.maxHosts,
		Evictions: r.counts.evicted.Load(), Top: []HostOver{}}
	buckets := r.hosts.Values()
	st.Hosts = len(buckets)
	for _, b := range buckets {
		if n := b.over.Load(); n > 0 {
			st.Top = append(st.Top, HostOver{Host: b.host.String(), Over: n})
		}
	}
	slices.SortFunc(st.Top, func(a, b HostOver) int { return cmp.Or(cmp.Compare(b.Over, a.Over), cmp.Compare(a.Host, b.Host)) })
	if len(st.Top) > RateLimiterTopHosts {
		st.Top = st.Top[:RateLimiterTopHosts]
	}
	return st
}
