//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package engine

import "syscall"

const watchSupported = true

// peek looks at the next byte of the socket fd without taking it, and without
// blocking: recv(MSG_PEEK|MSG_DONTWAIT). 0 bytes is the peer's FIN.
func peek(fd uintptr) peekState {
	var b [1]byte
	for {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return peekEmpty
		case err != nil || n == 0:
			return peekClosed
		}
		return peekData
	}
}
