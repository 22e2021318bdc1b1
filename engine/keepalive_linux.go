package engine

import (
	"context"
	"net"
	"syscall"
)

// TCP keep-alive of client connections: the values Go's net package gives an
// accepted connection by default (net.ListenConfig.KeepAlive 0: idle 15 s,
// interval 15 s, 9 probes), so that a client whose host vanished is found
// dead within about 2.5 minutes even with session_timeout 0.
const (
	keepAliveIdleSeconds     = 15
	keepAliveIntervalSeconds = 15
	keepAliveCount           = 9
)

// listenTCP opens a TCP listener whose accepted connections have TCP
// keep-alive on with the values above. Go's default sets them on each
// accepted connection, four setsockopt system calls per connection (about
// 4% of faed's CPU in a php-fpm session of one ping, pprof of make bench
// scenario 2); on Linux an accepted socket inherits them from the listening
// socket (tcp_create_openreq_child), so they are set there once
// (TestListenKeepAliveInherited checks an accepted connection).
func listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1, Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			for _, o := range []struct{ level, opt, v int }{
				{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdleSeconds},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveIntervalSeconds},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
			} {
				if err == nil {
					err = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.v)
				}
			}
		})
		if cerr != nil {
			return cerr
		}
		return err
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}
