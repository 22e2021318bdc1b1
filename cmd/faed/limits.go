package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/peer"
)

// raiseFileLimit raises the soft open-file limit (RLIMIT_NOFILE) to the hard
// limit, and warns when the client connections rpc may hold at once
// (engine.Config.ClientFiles: max_outstanding_sessions, the connections
// waiting for a slot and those being refused) exceed it: past the limit accept
// fails with EMFILE, faed retries it, and new connections wait in the kernel's
// listen backlog unanswered. It returns the soft limit in force (0 if unknown).
func raiseFileLimit(rpc *engine.Config, logger *slog.Logger) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logger.Warn("cannot read the open-file limit (RLIMIT_NOFILE)", "err", err)
		return 0
	}
	if lim.Cur < lim.Max {
		raised := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			logger.Warn("cannot raise the open-file limit (RLIMIT_NOFILE) to its hard limit", "soft", lim.Cur, "hard", lim.Max, "err", err)
		} else {
			lim = raised
		}
	}
	if need := rpc.ClientFiles(); uint64(need) > lim.Cur {
		logger.Warn("rpc.max_outstanding_sessions exceeds the open-file limit: under overload accept will fail (EMFILE) and clients wait unanswered in the listen backlog; raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower max_outstanding_sessions",
			"max_outstanding_sessions", rpc.MaxOutstandingSessions, "waiting", rpc.AcceptWaiters(), "refusing", rpc.MaxRefusers(),
			"client_files", need, "open_file_limit", lim.Cur)
	}
	return lim.Cur
}

// peerLookupTimeout bounds resolving the members' host names, all of them, to
// check them against rpc.allow_from at one membership change.
const peerLookupTimeout = 2 * time.Second

// warnPeersOutside logs one warning naming the members of ms (self excepted)
// whose address is outside rpc.allow_from: their forwarded calls would be
// refused at accept. A member registered by name is resolved; one whose name
// does not resolve is named as unchecked. Nothing is logged when allow_from
// is empty or every member is inside.
func warnPeersOutside(rpc *engine.Config, self string, ms []peer.Member, logger *slog.Logger) {
	if len(rpc.AllowFrom) == 0 {
		return
	}
	prefixes := rpc.AllowPrefixes()
	ctx, cancel := context.WithTimeout(context.Background(), peerLookupTimeout)
	defer cancel()
	var outside, unchecked []string
	for _, m := range ms {
		if m.Addr == self {
			continue
		}
		ips, err := memberIPs(ctx, m.Addr)
		if err != nil {
			unchecked = append(unchecked, m.Addr)
			continue
		}
		for _, ip := range ips {
			if !inPrefixes(prefixes, ip) {
				outside = append(outside, m.Addr)
				break
			}
		}
	}
	if len(outside) > 0 || len(unchecked) > 0 {
		logger.Warn("cluster members outside rpc.allow_from: their forwarded calls will be refused",
			"outside", strings.Join(outside, ","), "unchecked", strings.Join(unchecked, ","),
			"allow_from", strings.Join(rpc.AllowFrom, ","))
	}
}

// memberIPs are the addresses of a member's host:port: its IP, or what its name resolves to.
func memberIPs(ctx context.Context, addr string) ([]netip.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

func inPrefixes(prefixes []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
