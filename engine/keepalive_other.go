//go:build !linux

package engine

import "net"

// listenTCP opens a TCP listener with Go's defaults: TCP keep-alive set on
// each accepted connection (see keepalive_linux.go).
func listenTCP(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
