//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package engine

import (
	"io"
	"syscall"
	"unsafe"

	"github.com/fae-go/fae/internal/sockio"
)

// readNow is the RawConn read of sockRead: one non-blocking read into rp (a
// raw system call: sockio); false (wait for the socket to be readable) on
// EAGAIN, once rdl is armed.
func (t *connTransport) readNow(fd uintptr) bool {
	for {
		n, err := sockio.Read(fd, t.rp)
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
	done, err := sockio.WriteFrom(fd, t.wp, &t.wn)
	switch {
	case !done:
		if !t.wdlSet {
			t.armWrite()
		}
	case err == io.ErrUnexpectedEOF:
		t.werr = err
	case err != nil:
		t.werr = t.opError("write", err)
	}
	return done
}

// iovecs are writev(2)'s buffers.
type iovecs = []syscall.Iovec

// setIovecs makes wiov, writevNow's iovecs, of the non-empty buffers of iov
// and returns it (writevNow drops its head as the socket takes it).
func (t *connTransport) setIovecs() iovecs {
	t.wiov = t.wiov[:0]
	for _, b := range t.iov {
		if len(b) > 0 {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			t.wiov = append(t.wiov, v)
		}
	}
	return t.wiov
}

// writevNow is the RawConn write of sockWritev: non-blocking writev(2) of
// wiov, dropping what each takes; false (wait for the socket to be
// writable) on EAGAIN, once wdl is armed.
func (t *connTransport) writevNow(fd uintptr) bool {
	for len(t.wiov) > 0 {
		n, errno := sockio.Writev(fd, t.wiov)
		switch errno {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if !t.wdlSet {
				t.armWrite()
			}
			return false
		default:
			t.werr = t.opError("write", errno)
			return true
		}
		if n == 0 {
			t.werr = io.ErrUnexpectedEOF
			return true
		}
		t.consumeIovecs(int(n))
	}
	return true
}

// consumeIovecs drops the first n bytes of wiov.
func (t *connTransport) consumeIovecs(n int) {
	for n > 0 && len(t.wiov) > 0 {
		v := &t.wiov[0]
		l := int(v.Len)
		if n < l {
			v.Base = (*byte)(unsafe.Add(unsafe.Pointer(v.Base), n))
			v.SetLen(l - n)
			return
		}
		n -= l
		t.wiov = t.wiov[1:]
	}
}
