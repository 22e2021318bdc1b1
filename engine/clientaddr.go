package engine

import (
	"context"
	"net"
	"net/netip"
)

// ClientAddr returns the IP address of the client of the call whose ctx is
// given (the ctx the engine passes to the processor, or one derived from
// it), IPv4-mapped IPv6 addresses unmapped to IPv4. ok is false for a
// unix-socket client and outside an engine session (a nil ctx, a test's
// context.Background()). The address is computed once per session, when it
// is accepted: a call pays one ctx.Value lookup and no allocation.
func ClientAddr(ctx context.Context) (addr netip.Addr, ok bool) {
	if ctx == nil {
		return netip.Addr{}, false
	}
	sess, _ := ctx.Value(sessionKey{}).(*session)
	if sess == nil || !sess.addr.IsValid() {
		return netip.Addr{}, false
	}
	return sess.addr, true
}

// clientAddr is conn's remote IP address, unmapped; the zero Addr for a
// unix-socket connection or any other that is not TCP.
func clientAddr(conn net.Conn) netip.Addr {
	switch a := conn.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil, *net.UnixAddr:
		return netip.Addr{}
	default: // a wrapped conn reporting another net.Addr type
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		return ap.Addr().Unmap()
	}
}
