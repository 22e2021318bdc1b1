//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

// Package sockio: on this platform sockets are read and written as the net
// package does.
package sockio

import "net"

// Wrap returns nc itself: no raw system calls on this platform.
func Wrap(nc net.Conn) net.Conn { return nc }

// PeekState is what a non-blocking peek at a socket found (Peek).
type PeekState int

const (
	PeekEmpty  PeekState = iota // nothing to read yet
	PeekData                    // at least one byte to read
	PeekClosed                  // the end of the stream or an error
)

// PeekSupported is false: Peek cannot look at a socket on this platform.
const PeekSupported = false

// Peek reports PeekData: on this platform a socket cannot be looked at
// without reading it.
func Peek(uintptr) PeekState { return PeekData }

// PeekInto reports PeekData and copies nothing: on this platform a socket
// cannot be looked at without reading it.
func PeekInto(uintptr, []byte) (int, PeekState) { return 0, PeekData }
