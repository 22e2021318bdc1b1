//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package engine

// readNow and writeNow are never called here: without watchSupported no
// transport gets a RawConn (deadlines are armed eagerly).
func (t *connTransport) readNow(uintptr) bool  { return true }
func (t *connTransport) writeNow(uintptr) bool { return true }

type iovecs = []struct{}

func (t *connTransport) writevNow(uintptr) bool { return true }
func (t *connTransport) setIovecs() iovecs      { return nil }
