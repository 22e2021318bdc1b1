//go:build (linux && !386) || darwin || dragonfly || freebsd || netbsd || openbsd

package sockio

import (
	"syscall"
	"unsafe"
)

// recvPeek is recv(2) of fd into p with MSG_PEEK|MSG_DONTWAIT, a raw system
// call (recvfrom with no address).
func recvPeek(fd uintptr, p []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return int(r), errno
}
