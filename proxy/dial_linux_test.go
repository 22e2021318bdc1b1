//go:build linux

package proxy

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/pool"
)

// hungAddr is a loopback address whose connects hang: a socket listening with
// a backlog of 0 that never accepts, its accept queue filled, so that Linux
// drops the next SYNs (a peer host that stopped answering).
func hungAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return addr
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("connects to a listener with a full accept queue did not hang")
	return ""
}

// Concurrent calls to a peer whose connect hangs share one dial: one connect
// tried (io_timeout), its failure given to every call that waited for it,
// counted once by the breaker.
func TestConcurrentDialsShareFailure(t *testing.T) {
	addr := hungAddr(t)
	cfg := testConfig()
	cfg.IOTimeout, cfg.PoolCapacity = time.Second, 8
	p, _ := newProxies(t, cfg)
	peer := Peer{Addr: addr, Protocol: "binary"}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			_, err := lcGet(bg, p, peer, "k")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	if took := time.Since(start); took < time.Second || took > 4*time.Second {
		t.Errorf("calls ended after %s, want about io_timeout 1s", took)
	}
	for err := range errs {
		wantKind(t, err, pool.KindTimeout, addr)
	}
	s, _ := statsOf(p, addr)
	// One dial, unless a goroutine started after the first dial had failed.
	if s.Dials > 2 || s.Dials+s.SharedDialFailures != 8 || s.DialFailures != s.Dials {
		t.Errorf("stats %+v, want 1 connect (2 at most) whose failure the other calls shared", s)
	}
	if s.Breaker != "closed" {
		t.Errorf("breaker %s after %d failed connects (failure_allowance 5), want closed", s.Breaker, s.Dials)
	}
}

// buffer_size and tcp_nodelay reach the peer connections.
func TestSocketOptions(t *testing.T) {
	tp := startPeer(t, "compact", true, nil)
	for _, noDelay := range []bool{true, false} {
		cfg := testConfig()
		cfg.TCPNoDelay, cfg.BufferSize = noDelay, 100
		p, _ := newProxies(t, cfg)
		big := strings.Repeat("x", 10000) // replies and requests far over buffer_size
		if v, err := lcGet(bg, p, tp.peer, big); err != nil || v != big {
			t.Fatalf("lc_get of a 10000-byte key with buffer_size 100: %d bytes, %v", len(v), err)
		}
		pp, _, _ := p.pool(tp.peer)
		pp.mu.Lock()
		c := pp.idle[0]
		pp.mu.Unlock()
		if r, w := c.buf.Reader.Size(), c.buf.Writer.Size(); r != 100 || w != 100 {
			t.Errorf("buffers of %d and %d bytes, want buffer_size 100", r, w)
		}
		raw, err := c.nc.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		raw.Control(func(fd uintptr) { v, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY) })
		if err != nil || (v != 0) != noDelay {
			t.Errorf("TCP_NODELAY = %d (%v), want tcp_nodelay %t", v, err, noDelay)
		}
	}
}
