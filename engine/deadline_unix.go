//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package engine

import (
	"io"
	"syscall"
)

// readNow is the RawConn read of sockRead: one non-blocking read into rp;
// false (wait for the socket to be readable) on EAGAIN, once rdl is armed.
func (t *connTransport) readNow(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), t.rp)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if !t.rdlSet {
				t.armRead()
			}
			return false
		case err != nil:
			t.rn, t.rerr = 0, t.opError("read", err)
		case n == 0:
			t.rn, t.rerr = 0, io.EOF
		default:
			t.rn, t.rerr = n, nil
		}
		return true
	}
}

// writeNow is the RawConn write of sockWrite: non-blocking writes of wp from
// wn on; false (wait for the socket to be writable) on EAGAIN, once wdl is
// armed.
func (t *connTransport) writeNow(fd uintptr) bool {
	for t.wn < len(t.wp) {
		n, err := syscall.Write(int(fd), t.wp[t.wn:])
		if n > 0 {
			t.wn += n
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if !t.wdlSet {
				t.armWrite()
			}
			return false
		case err != nil:
			t.werr = t.opError("write", err)
			return true
		case n == 0:
			t.werr = io.ErrUnexpectedEOF // as internal/poll's Write
			return true
		}
	}
	return true
}
