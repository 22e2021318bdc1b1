//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package engine

import "github.com/fae-go/fae/internal/sockio"

const watchSupported = true

// peek looks at the next byte of the socket fd without taking it, and without
// blocking (sockio.Peek): 0 bytes is the peer's FIN.
func peek(fd uintptr) peekState { return sockio.Peek(fd) }
