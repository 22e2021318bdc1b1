package engine

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// Listen opens the listener of cfg.ListenAddr: TCP for "host:port" or ":port",
// a unix socket for a path. A stale socket file (one nobody listens on) is removed
// first; a live one is an error. The socket gets cfg.UnixSocketMode and is removed
// when the listener is closed.
func Listen(cfg Config) (net.Listener, error) {
	if !cfg.IsUnix() {
		l, err := net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("rpc.listen_addr %s: %w", cfg.ListenAddr, err)
		}
		return l, nil
	}
	path := cfg.ListenAddr
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("rpc.listen_addr %s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("rpc.listen_addr %s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("rpc.listen_addr %s: removing stale socket: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("rpc.listen_addr %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("rpc.listen_addr %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	mode, _ := cfg.SocketMode()
	if err := os.Chmod(path, os.FileMode(mode)); err != nil {
		l.Close()
		return nil, fmt.Errorf("rpc.unix_socket_mode %s: %w", cfg.UnixSocketMode, err)
	}
	return l, nil
}
