package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/fae-go/fae/peer"
)

// Defaults of the flags. Where the original stress tool had the flag, the
// default is the original's (ORIGINAL-FAE.md §8.3).
const (
	defaultC1       = 10   // the original's -c1
	defaultC2       = 5000 // the original's -c2
	defaultStep     = 10   // the original's step between levels
	defaultRounds   = 100  // the original's -n
	defaultOpenC    = 64   // open-loop workers when -c is not given
	defaultHost     = "127.0.0.1"
	defaultPort     = "9001" // the original's fixed port (faed's default rpc.listen_addr)
	defaultTimeout  = 4 * time.Second
	defaultZKWait   = 10 * time.Second
	maxPayloadBytes = 1 << 20 // faed's default lcache max_item_bytes
)

// options are the parsed flags.
type options struct {
	c, c1, c2, step, n, loop, x, payload int
	rate                                 float64
	d, timeout, zkTimeout                time.Duration
	host, addr, zk, root, protocol       string
	framed, keepalive                    bool
	logoff, erroff, neatstat, json       bool
	myArgs                               string
	targets                              Targets
}

// parseFlags parses args; errors are bad flags (flag.ErrHelp for -h).
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{targets: DefaultTargets()}
	fs := flag.NewFlagSet("stress", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.c, "c", 0, "concurrency: sessions at once (closed loop) or at most outstanding (open loop, default 64); 0 = sweep -c1..-c2")
	fs.IntVar(&o.c1, "c1", defaultC1, "closed-loop sweep: first concurrency level")
	fs.IntVar(&o.c2, "c2", defaultC2, "closed-loop sweep: last concurrency level")
	fs.IntVar(&o.step, "step", defaultStep, "closed-loop sweep: step between levels")
	fs.IntVar(&o.n, "n", defaultRounds, "rounds per level: n × c sessions in all (default 100; none when -d is given and -n is not)")
	fs.DurationVar(&o.d, "d", 0, "duration per level (0 = bounded by -n only)")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: sessions per second, latency counted from when each is due (0 = closed loop)")
	fs.IntVar(&o.loop, "loop", 1, "rounds of the -x calls per session")
	fs.IntVar(&o.x, "x", DefaultX, "calls of a round, a bitmask: 1 noop, 2 ping, 4 id_next, 8 lcache, 16 memcache, 32 mongo, 64 mysql, 128 redis")
	fs.BoolVar(&o.keepalive, "keepalive", false, "keep each worker's connection across sessions (default: connect and close per session, as php-fpm)")
	fs.StringVar(&o.host, "host", defaultHost, "faed host (port 9001, as the original)")
	fs.StringVar(&o.addr, "addr", "", "faed address: host:port or a unix socket path (overrides -host)")
	fs.StringVar(&o.zk, "zk", "", "ZooKeeper servers host:port,…: spread sessions round-robin over the nodes registered under -root")
	fs.StringVar(&o.root, "root", "/fae", "the registration root in ZooKeeper (faed's peer.root)")
	fs.DurationVar(&o.zkTimeout, "zk-timeout", defaultZKWait, "wait this long for the first node in ZooKeeper")
	fs.StringVar(&o.protocol, "protocol", "binary", "Thrift protocol: binary or compact (with -zk: each node's record decides)")
	fs.BoolVar(&o.framed, "framed", false, "framed transport instead of buffered (with -zk: each node's record decides)")
	fs.IntVar(&o.payload, "payload", 100, "bytes of each value written (lc_set, mc_set, redis SET, the mongo document)")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "bound of each connect and of each call's read and write (the PHP client's 4s)")
	fs.BoolVar(&o.logoff, "logoff", false, "print only the progress lines and the report (no banner, no per-error lines)")
	fs.BoolVar(&o.erroff, "erroff", false, "do not print each error (they are still counted)")
	fs.BoolVar(&o.neatstat, "neatstat", true, "short progress lines; false adds totals, live connections and goroutines")
	fs.BoolVar(&o.json, "json", false, "print the final report as JSON on stdout (progress goes to stderr)")
	t := &o.targets
	fs.StringVar(&t.McPool, "mc-pool", t.McPool, "memcache pool (-x 16)")
	fs.StringVar(&t.RdPool, "rd-pool", t.RdPool, "redis pool (-x 128)")
	fs.StringVar(&t.MgPool, "mg-pool", t.MgPool, "mongodb pool (-x 32)")
	fs.StringVar(&t.MgTable, "mg-table", t.MgTable, "mongodb collection (-x 32)")
	fs.StringVar(&t.MyPool, "my-pool", t.MyPool, "my_query pool (-x 64)")
	fs.StringVar(&t.MyTable, "my-table", t.MyTable, "my_query table (-x 64)")
	fs.Int64Var(&t.MyHint, "my-hint", t.MyHint, "my_query hintId (-x 64; 0 for a global pool)")
	fs.StringVar(&t.MySQL, "my-sql", t.MySQL, "my_query statement (-x 64)")
	fs.StringVar(&o.myArgs, "my-args", strings.Join(t.MyArgs, ","), "my_query arguments, comma-separated (-x 64)")
	fs.StringVar(&t.MyCacheKey, "my-cachekey", t.MyCacheKey, "cacheKey of the first my_query of a round (-x 64)")
	fs.StringVar(&t.KeyPrefix, "key-prefix", t.KeyPrefix, "prefix of the keys written (lc, mc, redis, mongo _id)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if o.d > 0 && !given["n"] {
		o.n = 0
	}
	t.PayloadSize = o.payload
	t.MyArgs = nil
	if o.myArgs != "" {
		t.MyArgs = strings.Split(o.myArgs, ",")
	}
	if o.addr == "" {
		o.addr = net.JoinHostPort(o.host, defaultPort)
	}
	return o, o.validate(fs.Args(), given)
}

func (o *options) validate(rest []string, given map[string]bool) error {
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected arguments %q", rest)
	case o.protocol != "binary" && o.protocol != "compact":
		return fmt.Errorf("-protocol must be binary or compact, got %q", o.protocol)
	case o.c < 0 || o.c1 < 1 || o.c2 < o.c1 || o.step < 1:
		return fmt.Errorf("need -c ≥ 0, 1 ≤ -c1 ≤ -c2 and -step ≥ 1 (got -c %d -c1 %d -c2 %d -step %d)", o.c, o.c1, o.c2, o.step)
	case o.n < 0 || o.d < 0 || (o.n == 0 && o.d == 0):
		return errors.New("the load needs a bound: -n rounds > 0 or -d duration > 0")
	case o.loop < 1:
		return fmt.Errorf("-loop must be at least 1, got %d", o.loop)
	case o.rate < 0:
		return fmt.Errorf("-rate must be ≥ 0, got %g", o.rate)
	case o.rate > 0 && (given["c1"] || given["c2"] || given["step"]):
		return errors.New("-rate (open loop) runs one level: use -c, not -c1/-c2/-step")
	case o.payload < 0 || o.payload > maxPayloadBytes:
		return fmt.Errorf("-payload must be 0..%d bytes, got %d", maxPayloadBytes, o.payload)
	case o.timeout <= 0 || o.zkTimeout <= 0:
		return errors.New("-timeout and -zk-timeout must be positive")
	case o.zk != "" && given["addr"]:
		return errors.New("-zk and -addr exclude each other")
	}
	if o.zk != "" {
		cfg := peer.Config{Root: o.root, SessionTimeout: peer.DefaultSessionTimeout}
		if err := cfg.Validate("peer"); err != nil {
			return fmt.Errorf("-root %q: %v", o.root, err)
		}
		return peer.ValidateServers("-zk", strings.Split(o.zk, ","))
	}
	return nil
}

// levels are the concurrency levels to run: -c, or -c1 to -c2 by -step
// (the open loop's default is defaultOpenC).
func (o *options) levels() []int {
	switch {
	case o.c > 0:
		return []int{o.c}
	case o.rate > 0:
		return []int{defaultOpenC}
	}
	var ls []int
	for c := o.c1; c <= o.c2; c += o.step {
		ls = append(ls, c)
	}
	return ls
}

// load is the Load of level c.
func (o *options) load(c int) Load {
	return Load{Workers: c, Rate: o.rate, Sessions: int64(o.n) * int64(c), Duration: o.d, Loop: o.loop,
		KeepAlive: o.keepalive, Timeout: o.timeout}
}
