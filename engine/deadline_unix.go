//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package engine

import (
	"io"
	"syscall"
	"unsafe"
)

// readNow is the RawConn read of sockRead: one non-blocking read into rp;
// false (wait for the socket to be readable) on EAGAIN, once rdl is armed.
func (t *connTransport) readNow(fd uintptr) bool {
	for {
		n, err := rawRead(fd, t.rp)
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
		n, err := rawWrite(fd, t.wp[t.wn:])
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

// rawMaxBytes bounds the transfers made without telling the scheduler
// (rawRead, rawWrite, writevNow): the kernel copies at most this much in
// one, a few µs, during which the thread keeps its P. A larger one is an
// ordinary system call.
const rawMaxBytes = 64 << 10

// rawRead is read(2) of fd into p. Up to rawMaxBytes it does not tell the
// scheduler (syscall.RawSyscall, not Syscall): fd is a socket of the net
// package, non-blocking, so the call never waits. An ordinary system call
// marks its P as in a system call and back (entersyscall, exitsyscall), and
// sysmon hands a P that stays so for 20 µs while goroutines wait to another
// thread, which must be woken, while the first finds its P gone on return
// and sleeps: context switches, costly on a busy or virtual machine.
// Measured in make bench (2 alternated runs of 3 rounds): faed's CPU per
// call fell by 8-12% for noop, lc_get and lock at c=16 and 64 (noop at c=1
// by 30%), its context switches per call by a third to a half. err is nil
// or a syscall.Errno.
func rawRead(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 || len(p) > rawMaxBytes {
		return syscall.Read(int(fd), p)
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawWrite is write(2) of p to fd, as rawRead.
func rawWrite(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 || len(p) > rawMaxBytes {
		return syscall.Write(int(fd), p)
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawWritev is writev(2) of iov to fd, as rawRead: without telling the
// scheduler when iov holds at most rawMaxBytes.
func rawWritev(fd uintptr, iov iovecs) (uintptr, syscall.Errno) {
	var total uint64
	for i := range iov {
		total += uint64(iov[i].Len)
	}
	p, n := uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov))
	if total > rawMaxBytes {
		r, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, p, n)
		return r, errno
	}
	r, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, fd, p, n)
	return r, errno
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
		n, errno := rawWritev(fd, t.wiov)
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
