//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package engine

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
)

// withFD runs f on conn's file descriptor (the net package's: non-blocking).
func withFD(t *testing.T, conn net.Conn, f func(fd uintptr)) {
	t.Helper()
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Control(f); err != nil {
		t.Fatal(err)
	}
}

// rawRead, rawWrite and rawWritev answer as read(2), write(2) and writev(2)
// on the net package's non-blocking sockets, below rawMaxBytes (without
// telling the scheduler) and above it (an ordinary system call): EAGAIN on
// an empty socket, the bytes in order, a partial write when the socket is
// full, 0 at the end of the stream.
func TestRawSyscallsAsReadWrite(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			server, client := loopbackPair(t, network)
			buf := make([]byte, 1024)
			withFD(t, server, func(fd uintptr) {
				if n, err := rawRead(fd, buf); !errors.Is(err, syscall.EAGAIN) {
					t.Errorf("read of an empty socket: %d, %v; want EAGAIN", n, err)
				}
			})
			small := bytes.Repeat([]byte("s"), 100)
			a, b := []byte("head;"), bytes.Repeat([]byte("v"), 3000)
			withFD(t, server, func(fd uintptr) {
				if n, err := rawWrite(fd, small); n != len(small) || err != nil {
					t.Errorf("write of %d bytes: %d, %v", len(small), n, err)
				}
				iov := make(iovecs, 2)
				iov[0] = syscall.Iovec{Base: &a[0]}
				iov[0].SetLen(len(a))
				iov[1] = syscall.Iovec{Base: &b[0]}
				iov[1].SetLen(len(b))
				if n, errno := rawWritev(fd, iov); int(n) != len(a)+len(b) || errno != 0 {
					t.Errorf("writev of %d bytes: %d, %v", len(a)+len(b), n, errno)
				}
			})
			want := bytes.Join([][]byte{small, a, b}, nil)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("the client read %q..., %v", got[:min(len(got), 16)], err)
			}

			// Above rawMaxBytes, and until the socket is full: partial writes, then EAGAIN.
			big := make([]byte, 4*rawMaxBytes)
			total := 0
			withFD(t, server, func(fd uintptr) {
				for range 1000 {
					n, err := rawWrite(fd, big)
					if errors.Is(err, syscall.EAGAIN) {
						return
					}
					if err != nil || n <= 0 {
						t.Fatalf("write of %d bytes: %d, %v", len(big), n, err)
					}
					total += n
				}
				t.Fatal("the socket never filled")
			})
			if total == 0 {
				t.Fatal("nothing was written before EAGAIN")
			}
			done := make(chan error, 1)
			go func() {
				_, err := io.CopyN(io.Discard, client, int64(total))
				done <- err
			}()
			if err := <-done; err != nil {
				t.Fatal(err)
			}

			// The client writes, then leaves: the bytes, then the end of the stream.
			client.Write([]byte("bye"))
			client.Close()
			var read []byte
			for len(read) < 3 {
				withFD(t, server, func(fd uintptr) {
					n, err := rawRead(fd, buf)
					if err != nil && !errors.Is(err, syscall.EAGAIN) {
						t.Fatalf("read: %v", err)
					}
					read = append(read, buf[:max(n, 0)]...)
				})
			}
			if string(read) != "bye" {
				t.Fatalf("read %q, want bye", read)
			}
			for {
				var n int
				var err error
				withFD(t, server, func(fd uintptr) { n, err = rawRead(fd, buf) })
				if errors.Is(err, syscall.EAGAIN) {
					continue // the FIN is on its way
				}
				if n != 0 || err != nil {
					t.Fatalf("read after the client left: %d, %v; want 0, nil", n, err)
				}
				break
			}
		})
	}
}
