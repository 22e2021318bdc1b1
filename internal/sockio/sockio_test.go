//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
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

// Read, Write and Writev answer as read(2), write(2) and writev(2)
// on the net package's non-blocking sockets, below MaxBytes (without
// telling the scheduler) and above it (an ordinary system call): EAGAIN on
// an empty socket, the bytes in order, a partial write when the socket is
// full, 0 at the end of the stream.
func TestRawSyscallsAsReadWrite(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			server, client := testenv.LoopbackPair(t, network)
			buf := make([]byte, 1024)
			withFD(t, server, func(fd uintptr) {
				if n, err := Read(fd, buf); !errors.Is(err, syscall.EAGAIN) {
					t.Errorf("read of an empty socket: %d, %v; want EAGAIN", n, err)
				}
			})
			small := bytes.Repeat([]byte("s"), 100)
			a, b := []byte("head;"), bytes.Repeat([]byte("v"), 3000)
			withFD(t, server, func(fd uintptr) {
				if n, err := Write(fd, small); n != len(small) || err != nil {
					t.Errorf("write of %d bytes: %d, %v", len(small), n, err)
				}
				iov := make([]syscall.Iovec, 2)
				iov[0] = syscall.Iovec{Base: &a[0]}
				iov[0].SetLen(len(a))
				iov[1] = syscall.Iovec{Base: &b[0]}
				iov[1].SetLen(len(b))
				if n, errno := Writev(fd, iov); int(n) != len(a)+len(b) || errno != 0 {
					t.Errorf("writev of %d bytes: %d, %v", len(a)+len(b), n, errno)
				}
			})
			want := bytes.Join([][]byte{small, a, b}, nil)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("the client read %q..., %v", got[:min(len(got), 16)], err)
			}

			// Above MaxBytes, and until the socket is full: partial writes, then EAGAIN.
			big := make([]byte, 4*MaxBytes)
			total := 0
			withFD(t, server, func(fd uintptr) {
				for range 1000 {
					n, err := Write(fd, big)
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
					n, err := Read(fd, buf)
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
				withFD(t, server, func(fd uintptr) { n, err = Read(fd, buf) })
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

// A wrapped connection reads and writes as net.Conn: the bytes both ways in
// order, small and large (above MaxBytes: the net package's own calls)
// alike, waiting for the socket; an expired read deadline as a timeout
// (os.ErrDeadlineExceeded, Timeout); io.EOF once the other end has left; a
// closed connection's net.ErrClosed; and error texts naming read or write.
func TestConnAsNetConn(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			server, client := testenv.LoopbackPair(t, network)
			sc := Wrap(server)
			if _, ok := sc.(*Conn); !ok {
				t.Fatalf("a %s connection was not wrapped: %T", network, sc)
			}
			// Both ways at once, each direction far more than the socket buffers hold.
			sizes := []int{1, 100, MaxBytes, MaxBytes + 1, 3 << 20, 7}
			var want bytes.Buffer
			for i, n := range sizes {
				want.Write(bytes.Repeat([]byte{byte('a' + i)}, n))
			}
			var wg sync.WaitGroup
			var echoErr error
			wg.Add(1)
			go func() { // the client echoes what it reads
				defer wg.Done()
				_, echoErr = io.CopyN(client, client, int64(want.Len()))
			}()
			readDone := make(chan []byte, 1)
			go func() {
				got := make([]byte, want.Len())
				buf := make([]byte, 5000)
				off := 0
				for off < len(got) {
					n, err := sc.Read(buf)
					if err != nil {
						t.Errorf("read after %d bytes: %v", off, err)
						break
					}
					off += copy(got[off:], buf[:n])
				}
				readDone <- got
			}()
			for i, n := range sizes {
				if w, err := sc.Write(bytes.Repeat([]byte{byte('a' + i)}, n)); w != n || err != nil {
					t.Fatalf("write %d of %d bytes: %d, %v", i, n, w, err)
				}
			}
			if got := <-readDone; !bytes.Equal(got, want.Bytes()) {
				t.Fatal("the echo came back altered")
			}
			wg.Wait()
			if echoErr != nil {
				t.Fatal(echoErr)
			}

			sc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			_, err := sc.Read(make([]byte, 10))
			var ne net.Error
			if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("read past the deadline: %v, want a timeout", err)
			}
			if oe := (*net.OpError)(nil); !errors.As(err, &oe) || oe.Op != "read" {
				t.Fatalf("read past the deadline: %v, want a *net.OpError of Op read", err)
			}
			sc.SetReadDeadline(time.Time{})

			client.Write([]byte("bye"))
			client.Close()
			got, err := io.ReadAll(sc)
			if string(got) != "bye" || err != nil {
				t.Fatalf("after the client left: %q, %v; want bye and the end of the stream", got, err)
			}
			sc.Close()
			if _, err := sc.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read of a closed connection: %v, want net.ErrClosed", err)
			}
			if _, err := sc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write of a closed connection: %v, want net.ErrClosed", err)
			}
		})
	}
}

// A connection that is not a socket of the net package is left as it is.
func TestWrapLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe end) = %T, want it unchanged", got)
	}
}

// Conn's Read and Write allocate nothing (they were a closure and its
// captured variables each, about one allocation per backend call), and two
// goroutines reading one Conn at once each get whole reads of their own.
func TestConnAllocatesNothing(t *testing.T) {
	server, client := testenv.LoopbackPair(t, "tcp")
	sc := Wrap(server)
	msg, buf := []byte("0123456789"), make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := sc.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(msg); {
			n, err := sc.Read(buf[got:len(msg)])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Fatalf("a Write and a Read of a wrapped connection made %v allocations, want 0", allocs)
	}

	const readers, each = 4, 1000
	var wg sync.WaitGroup
	counts := make([]int, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 1)
			for counts[i] < each {
				n, err := sc.Read(b)
				if err != nil || n != 1 || b[0] != 'x' {
					t.Errorf("reader %d: %d %q %v", i, n, b[:n], err)
					return
				}
				counts[i]++
			}
		}()
	}
	if _, err := client.Write(bytes.Repeat([]byte{'x'}, readers*each)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
