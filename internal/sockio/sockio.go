//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

// Package sockio reads and writes the net package's sockets without the
// scheduler's system-call bookkeeping: syscall.RawSyscall, not Syscall.
//
// Every socket of the net package is non-blocking (it is registered with the
// runtime's poller), so read(2), write(2) and writev(2) on it never wait:
// they move what the kernel has or takes and return, or fail with EAGAIN.
// An ordinary system call marks its P as in a system call and back
// (entersyscall, exitsyscall), and sysmon hands a P that stays so for 20 µs
// while goroutines wait to another thread, which must be woken, while the
// first finds its P gone on return and sleeps; each such handoff also keeps
// sysmon waking every 20 µs for the next millisecond. Context switches and
// timer wake-ups are what a busy or virtual machine makes costly: in make
// bench (mc_get at 64 callers, 1 December 2026) sysmon's thread alone took
// 8% of a CPU, 4,700 wake-ups a second. A raw call keeps its P for the few
// µs the kernel takes to copy at most MaxBytes; larger transfers, which may
// take longer, stay ordinary system calls.
package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// MaxBytes bounds the transfers made as raw system calls: the kernel copies
// at most this much (64 KiB) in one, a few µs, during which the thread keeps
// its P (the garbage collector's stop-the-world waits for it too).
const MaxBytes = 64 << 10

// Read is read(2) of fd, a non-blocking socket, into p: a raw system call up
// to MaxBytes, an ordinary one above. err is nil or a syscall.Errno; n is 0
// with err nil at the end of the stream (or for an empty p).
func Read(fd uintptr, p []byte) (n int, err error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > MaxBytes {
		return syscall.Read(int(fd), p)
	}
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// Write is write(2) of p to fd, a non-blocking socket, as Read: it may take
// part of p only.
func Write(fd uintptr, p []byte) (n int, err error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > MaxBytes {
		return syscall.Write(int(fd), p)
	}
	r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// Writev is writev(2) of iov (not empty) to fd, a non-blocking socket, as
// Read: raw when iov holds at most MaxBytes. It returns the bytes written.
func Writev(fd uintptr, iov []syscall.Iovec) (uintptr, syscall.Errno) {
	var total uint64
	for i := range iov {
		total += uint64(iov[i].Len)
	}
	p, n := uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov))
	if total > MaxBytes {
		r, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, p, n)
		return r, errno
	}
	r, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, fd, p, n)
	return r, errno
}

// PeekState is what a non-blocking peek at a socket found (Peek).
type PeekState int

const (
	PeekEmpty  PeekState = iota // nothing to read yet
	PeekData                    // at least one byte to read
	PeekClosed                  // the end of the stream (the peer's FIN) or an error such as a reset
)

// PeekSupported is whether Peek looks at the socket on this platform.
const PeekSupported = true

// Peek looks at the next byte of fd, a socket, without taking it and
// without waiting (PeekInto of one byte).
func Peek(fd uintptr) PeekState {
	var b [1]byte
	_, state := PeekInto(fd, b[:])
	return state
}

// PeekInto copies into p (not empty) what fd, a socket, has to read, up to
// len(p) bytes, without taking it and without waiting: recv(2) with
// MSG_PEEK|MSG_DONTWAIT, a raw system call where the platform has one. n is
// the bytes copied (PeekData only); 0 bytes is the peer's FIN (PeekClosed).
func PeekInto(fd uintptr, p []byte) (n int, state PeekState) {
	for {
		r, errno := recvPeek(fd, p)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK:
			return 0, PeekEmpty
		case errno != 0 || r == 0:
			return 0, PeekClosed
		}
		return r, PeekData
	}
}

// Conn is a TCP or unix-socket net.Conn whose Read and Write of up to
// MaxBytes are raw system calls (Read, Write), waiting for the socket through
// the runtime's poller as net.Conn does, under the connection's deadlines.
// Everything else is the wrapped connection's. Results are net.Conn's:
// io.EOF at the end of the stream, a *net.OpError otherwise (an expired
// deadline's satisfies os.ErrDeadlineExceeded and Timeout, a closed
// connection's net.ErrClosed). Read and Write allocate nothing: the
// functions they hand the RawConn are made once, in Wrap, and work on the
// Conn's fields, which a lock per direction keeps to one Read and one Write
// at a time (net.Conn allows concurrent calls; the socket serialises them
// anyway).
type Conn struct {
	net.Conn
	raw syscall.RawConn

	rmu    sync.Mutex // one Read at a time on rp, rn, rerr
	rp     []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wmu     sync.Mutex // one Write at a time on wp, wn, werr
	wp      []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// Wrap returns nc as a *Conn when it is a socket of the net package (a
// syscall.Conn: *net.TCPConn, *net.UnixConn), else nc itself.
func Wrap(nc net.Conn) net.Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &Conn{Conn: nc, raw: raw}
	c.readFn, c.writeFn = c.readNow, c.writeNow
	return c
}

// SyscallConn is the socket's syscall.RawConn, as the wrapped connection's:
// a *Conn is a syscall.Conn too.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.raw, nil }

// Read reads into p, as net.Conn's Read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 || len(p) > MaxBytes {
		return c.Conn.Read(p)
	}
	c.rmu.Lock()
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.raw.Read(c.readFn)
	n, rerr := c.rn, c.rerr
	c.rp, c.rerr = nil, nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case rerr != nil:
		return 0, c.opError("read", os.NewSyscallError("read", rerr))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readNow is Read's RawConn function: one read(2) of rp, false (wait until
// readable) on EAGAIN.
func (c *Conn) readNow(fd uintptr) bool {
	for {
		n, err := Read(fd, c.rp)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case nil:
			c.rn = n
		default:
			c.rerr = err
		}
		return true
	}
}

// Write writes all of p, as net.Conn's Write.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 || len(p) > MaxBytes {
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.raw.Write(c.writeFn)
	nn, werr := c.wn, c.werr
	c.wp, c.werr = nil, nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return nn, c.opError("write", err)
	case werr != nil:
		return nn, c.opError("write", werr)
	}
	return nn, nil
}

// writeNow is Write's RawConn function: write(2)s of wp from wn on until it
// is all written, false (wait until writable) on EAGAIN.
func (c *Conn) writeNow(fd uintptr) bool {
	done, err := WriteFrom(fd, c.wp, &c.wn)
	switch {
	case err == io.ErrUnexpectedEOF:
		c.werr = err
	case err != nil:
		c.werr = os.NewSyscallError("write", err)
	}
	return done
}

// WriteFrom writes p from *off on to fd, a non-blocking socket, advancing
// *off by what the socket takes, until p is all written (true, nil), the
// socket is full (false, nil: wait until it is writable and call again), or
// the write fails (true, and a syscall.Errno, or io.ErrUnexpectedEOF for a
// write that took nothing, as internal/poll's Write). EINTR is retried.
func WriteFrom(fd uintptr, p []byte, off *int) (done bool, err error) {
	for *off < len(p) {
		n, e := Write(fd, p[*off:])
		if n > 0 {
			*off += n
		}
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return false, nil
		case e != nil:
			return true, e
		case n == 0:
			return true, io.ErrUnexpectedEOF
		}
	}
	return true, nil
}

// opError is err as net.Conn's Read or Write (op) would return it: the
// RawConn's own *net.OpError (Op "raw-read" or "raw-write") renamed, or err
// wrapped in one.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
