package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/peer"
	"github.com/fae-go/fae/proxy"
)

// Target is one faed node: its address (host:port, or a unix socket path
// when it contains a "/") and the protocol ("binary" or "compact") and
// transport it serves.
type Target struct {
	Addr     string
	Protocol string
	Framed   bool
}

// conn is one open connection to a node.
type conn struct {
	*rpc.FunServantClient
	trans thrift.TTransport
	addr  string // the node's
}

func (c *conn) Close() { c.trans.Close() }

// dial opens a connection to t; timeout bounds the connect and every read
// and write (the original PHP client's 4 s send/recv timeouts by default).
func dial(t Target, timeout time.Duration) (*conn, error) {
	c, trans, err := proxy.Dial(t.Addr, t.Protocol, t.Framed, timeout)
	if err != nil {
		return nil, err
	}
	return &conn{c, trans, t.Addr}, nil
}

// Picker hands out the node of each new connection, round-robin over the
// current set. It is safe for concurrent use; the set may be replaced while
// the run goes on (ZooKeeper membership changes).
type Picker struct {
	targets atomic.Pointer[[]Target]
	next    atomic.Uint64
}

// NewPicker is a Picker over targets (at least one).
func NewPicker(targets []Target) *Picker {
	p := new(Picker)
	p.Set(targets)
	return p
}

// Set replaces the set of nodes; an empty set is ignored (the last known
// nodes stay in use).
func (p *Picker) Set(targets []Target) {
	if len(targets) > 0 {
		p.targets.Store(&targets)
	}
}

// Pick is the next node in round-robin order.
func (p *Picker) Pick() Target {
	ts := *p.targets.Load()
	return ts[(p.next.Add(1)-1)%uint64(len(ts))]
}

// Targets is the current set of nodes.
func (p *Picker) Targets() []Target { return *p.targets.Load() }

// Discover watches the members registered under root in the ZooKeeper
// servers through a peer.Registry that never registers (read-only): it
// returns a Picker over them once the first membership is known, kept up to
// date while the run goes on, and a function that ends the session. Each
// member is dialled in the protocol and transport of its record. Errors:
// bad server addresses, no member within timeout.
func Discover(servers []string, root string, timeout time.Duration) (*Picker, func(), error) {
	var cfg peer.Config
	cfg.SetDefaults()
	cfg.Root = root
	if err := cfg.Validate("peer"); err != nil {
		return nil, nil, fmt.Errorf("-root %q: %v", root, err)
	}
	if err := peer.ValidateServers("-zk", servers); err != nil {
		return nil, nil, err
	}
	reg, err := peer.New(servers, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, nil, fmt.Errorf("zookeeper %v: %w", servers, err)
	}
	p := new(Picker) // empty until the first membership: Pick is not called before
	known := make(chan struct{})
	var once sync.Once
	cancel := reg.Subscribe(func(ms []peer.Member) {
		ts := make([]Target, 0, len(ms))
		for _, m := range ms {
			ts = append(ts, Target{Addr: m.Addr, Protocol: m.Info.Protocol, Framed: m.Info.Framed})
		}
		p.Set(ts)
		if len(ts) > 0 {
			once.Do(func() { close(known) })
		}
	})
	stop := func() { cancel(); reg.Close() }
	select {
	case <-known:
		return p, stop, nil
	case <-time.After(timeout):
		stop()
		return nil, nil, fmt.Errorf("zookeeper %v: no node registered under %s within %s", servers, root, timeout)
	}
}

// String is e.g. "127.0.0.1:9001 (binary, buffered)".
func (t Target) String() string {
	transport := "buffered"
	if t.Framed {
		transport = "framed"
	}
	return t.Addr + " (" + t.Protocol + ", " + transport + ")"
}
