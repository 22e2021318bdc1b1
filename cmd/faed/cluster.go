package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/peer"
	"github.com/fae-go/fae/proxy"
	"github.com/fae-go/fae/servant"
)

// leaveTimeout bounds leaving the cluster on purpose (SIGTERM): marking the
// znode leaving, letting peers see it, deleting it.
const leaveTimeout = 3 * time.Second

// cluster is this node's part in the cluster: its ZooKeeper registry and its
// advertised address; nil without etcd_servers (a single node).
type cluster struct {
	reg    *peer.Registry
	self   string // the advertised address; "" with server_mode false
	unsub  func()
	logger *slog.Logger
}

// joinCluster opens the ZooKeeper session of etcd_servers (without waiting
// for it: faed serves as a one-node cluster until ZooKeeper answers) and
// works out the advertised address from rpc.advertise_addr or the listener.
// It returns nil without etcd_servers.
func joinCluster(cfg *config.Config, lns []net.Listener, logger *slog.Logger) (*cluster, error) {
	if len(cfg.EtcdServers) == 0 {
		return nil, nil
	}
	reg, err := peer.New(cfg.EtcdServers, cfg.Peer, logger)
	if err != nil {
		return nil, fmt.Errorf("etcd_servers: %w", err)
	}
	c := &cluster{reg: reg, logger: logger}
	if cfg.ServerMode {
		src, err := cfg.RPC.PeerAddr(lns)
		if err == nil {
			c.self, err = peer.AdvertiseAddr(src, nil)
		}
		if err != nil {
			reg.Close()
			return nil, fmt.Errorf("rpc.advertise_addr: cannot work out the address peers reach this node at: %w", err)
		}
	}
	return c, nil
}

// advertised is the address this node registers under ("" when none).
func (c *cluster) advertised() string {
	if c == nil {
		return ""
	}
	return c.self
}

// options gives the servant what it needs of the cluster.
func (c *cluster) options(opts *servant.Options) {
	if c == nil {
		return
	}
	opts.Self, opts.ZK, opts.IDConflict = c.self, c.reg, c.reg.Conflict
	if c.self != "" { // it registers: ids wait for its worker id to be confirmed
		opts.IDConflict = c.reg.IDReady
	}
}

// start routes the servant by the membership (and warns, at each change, of
// members outside rpc.allow_from) and, in server mode, registers
// this node once its listener accepts, with its HTTP API and dashboard
// addresses ("" = off).
func (c *cluster) start(cfg *config.Config, svt *servant.FunServant, httpAddr, dashAddr string) error {
	if c == nil {
		return nil
	}
	rpcCfg := cfg.RPC
	c.unsub = c.reg.Subscribe(func(ms []peer.Member) {
		svt.SetMembers(ms)
		warnPeersOutside(&rpcCfg, c.self, ms, c.logger)
	})
	if c.self == "" {
		return nil
	}
	protocol, framed := cfg.RPC.PeerWire() // binary buffered for rpc.protocol auto
	return c.reg.Register(peer.MemberInfo{Version: version, Pid: os.Getpid(), Started: time.Now(),
		Protocol: protocol, Framed: framed, HTTPAddr: httpAddr,
		DashboardAddr: dashAddr, IdgenWorkerID: cfg.Servants.IdgenWorkerID}, c.self)
}

// leave takes the node out of the cluster on purpose: peers drop it at once
// and stop forwarding to it, while it goes on answering what they already sent.
func (c *cluster) leave(logger *slog.Logger) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := c.reg.Leave(ctx); err != nil {
		logger.Warn("leaving the cluster", "err", err)
	}
}

// close ends the ZooKeeper session.
func (c *cluster) close() {
	if c == nil {
		return
	}
	if c.unsub != nil {
		c.unsub()
	}
	c.reg.Close()
}

// forwarded are the methods a node may forward to a key's owner: their
// processors pass a peer's exception type through (proxy.PassExceptions).
var forwarded = map[string]bool{"lock": true, "unlock": true, "my_query": true, "my_bulk_exec": true,
	"my_merge": true, "my_evict": true}

// passPeerExceptions is proxy.PassExceptions for the forwarded methods only,
// so that the other methods (noop, ping…) pay nothing for it.
func passPeerExceptions(name string, next thrift.TProcessorFunction) thrift.TProcessorFunction {
	if !forwarded[name] {
		return next
	}
	return proxy.PassExceptions(name, next)
}
