//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"
)

var errUnexpectedBytes = errors.New("bytes from the peer on an idle connection (a late reply)")

// connCheck tells whether an idle connection is still usable before a call
// is written to it (go-redis's conn_check.go does the same): it peeks at the
// socket without blocking, recv(MSG_PEEK|MSG_DONTWAIT). The peer's FIN or a
// reset (the peer closed an idle session, or restarted) and bytes nobody asked
// for (a late reply) are errors; nothing to read is a live connection.
func connCheck(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var state error
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				state = nil
			case err != nil:
				state = err
			case n == 0:
				state = io.EOF
			default:
				state = errUnexpectedBytes
			}
			return true
		}
	})
	if err != nil {
		return err
	}
	return state
}
