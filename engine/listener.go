package engine

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// ListenAll opens one listener per address of cfg.Addrs(), in that order: TCP
// for "host:port" or ":port", a unix socket for a path. For each unix socket a
// stale file (one nobody listens on) is removed first, while a live one or a
// file that is not a socket is an error; the socket gets cfg.UnixSocketMode
// and its file is removed when the listener is closed. If one address fails,
// the listeners already opened are closed (their socket files removed) and the
// error names the key and the address, as "rpc.listen_addr[1] /run/fae.sock:
// another process is listening on it". Serve them with Server.ServeAll.
func ListenAll(cfg Config) ([]net.Listener, error) {
	addrs := cfg.Addrs()
	if len(addrs) == 0 {
		return nil, errors.New("rpc.listen_addr: required")
	}
	var mode uint32
	for _, a := range addrs {
		if IsUnixAddr(a) {
			m, err := cfg.SocketMode()
			if err != nil {
				return nil, fmt.Errorf("rpc.unix_socket_mode: %v", err)
			}
			mode = m
			break
		}
	}
	lns := make([]net.Listener, 0, len(addrs))
	for i, a := range addrs {
		l, err := listenOne(a, mode)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("%s %s: %w", addrKey("rpc", i, len(addrs)), a, err)
		}
		lns = append(lns, l)
	}
	return lns, nil
}

// Listen opens the listener of cfg's one address, as ListenAll does. A cfg
// with several addresses is an error: use ListenAll.
func Listen(cfg Config) (net.Listener, error) {
	if n := len(cfg.Addrs()); n > 1 {
		return nil, fmt.Errorf("rpc.listen_addr: %d addresses; engine.Listen opens one, use engine.ListenAll", n)
	}
	lns, err := ListenAll(cfg)
	if err != nil {
		return nil, err
	}
	return lns[0], nil
}

// ListenerAddrs returns the address of each listener of lns, as the log line
// of a started server prints them: a TCP listener's real host:port (port 0
// resolved), a unix socket's path.
func ListenerAddrs(lns []net.Listener) []string {
	addrs := make([]string, len(lns))
	for i, l := range lns {
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// listenOne opens addr: TCP, or a unix socket with file mode mode.
func listenOne(addr string, mode uint32) (net.Listener, error) {
	if !IsUnixAddr(addr) {
		return listenTCP(addr)
	}
	if fi, err := os.Lstat(addr); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, errors.New("exists and is not a socket")
		}
		if c, err := net.Dial("unix", addr); err == nil {
			c.Close()
			return nil, errors.New("another process is listening on it")
		}
		if err := os.Remove(addr); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", addr)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(addr, os.FileMode(mode)); err != nil {
		l.Close()
		return nil, fmt.Errorf("rpc.unix_socket_mode %04o: %w", mode, err)
	}
	return l, nil
}
