//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

// Package sockio: on this platform sockets are read and written as the net
// package does.
package sockio

import "net"

// Wrap returns nc itself: no raw system calls on this platform.
func Wrap(nc net.Conn) net.Conn { return nc }
