//go:build linux && 386

package sockio

import "syscall"

// recvPeek is recv(2) of fd into p with MSG_PEEK|MSG_DONTWAIT: linux/386
// reaches recvfrom through socketcall(2), which has no system call number
// of its own (SYS_RECVFROM), so through the syscall package.
func recvPeek(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, err := syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err != nil {
		if errno, ok := err.(syscall.Errno); ok {
			return 0, errno
		}
		return 0, syscall.EINVAL
	}
	return n, 0
}
