package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// flushAndRead flushes tr's reply and reads it at the connection's other end
// (client), where it must arrive as want.
func flushAndRead(t *testing.T, tr *connTransport, client net.Conn, want []byte) {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(want))
		io.ReadFull(client, b)
		got <- b
	}()
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("the reply arrived altered (%d bytes, want %d)", len(b), len(want))
	}
}

// On a TCP or unix socket, values of refReplyBytes or more go out by
// reference (not copied into the reply buffer), in order between the
// buffered bytes, up to maxReplyRefs of them; later ones, shorter ones and
// strings alike arrive whole. A reply with references is never held back.
func TestReplyWritesByReference(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		for _, nvalues := range []int{1, 3, maxReplyRefs + 2} {
			t.Run(fmt.Sprintf("%s/values=%d", network, nvalues), func(t *testing.T) {
				server, client := testenv.LoopbackPair(t, network)
				tr := newConnTransport(server, 4096, 5*time.Second, 1<<20, false)
				if !tr.vectored {
					t.Fatalf("a %s connection is not written vectored", network)
				}
				var want bytes.Buffer
				tr.beginCall()
				for i := range nvalues {
					head := []byte(fmt.Sprintf("head %d;", i))
					value := bytes.Repeat([]byte{byte('a' + i)}, refReplyBytes+i*1000)
					tr.Write(head)
					before := len(tr.wbuf)
					if i%2 == 0 {
						tr.Write(value)
					} else {
						tr.WriteString(string(value))
					}
					copied := len(tr.wbuf) - before
					if i < maxReplyRefs && copied != 0 {
						t.Errorf("value %d: %d bytes copied into the reply buffer, want it written by reference", i, copied)
					}
					want.Write(head)
					want.Write(value)
				}
				tr.Write([]byte{0})
				want.WriteByte(0)
				flushAndRead(t, tr, client, want.Bytes())
				if len(tr.refs) != 0 || len(tr.wbuf) != 0 || tr.deferred {
					t.Errorf("after Flush: %d references, %d bytes buffered, deferred %v", len(tr.refs), len(tr.wbuf), tr.deferred)
				}
			})
		}
	}
}

// A reply by reference larger than the socket's buffers goes out in several
// writev(2) calls, each taking up where the last one stopped (within a value
// too), waiting for the socket under the lazy deadline in between.
func TestReplyWritesByReferencePartial(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			server, client := testenv.LoopbackPair(t, network)
			raw, err := server.(syscall.Conn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			tr := newPooledConnTransport(server, raw, newIdleBuffers(4096), 5*time.Second, 1<<20, false)
			if tr.raw == nil || !tr.vectored {
				t.Skip("no lazy deadlines on this platform: the writev(2) of sockWritev is not used")
			}
			var want bytes.Buffer
			tr.beginCall()
			for i := range 5 {
				head := []byte(fmt.Sprintf("head %d;", i))
				value := make([]byte, 3<<20+i*777)
				for j := range value {
					value[j] = byte(i*31 + j*7)
				}
				tr.Write(head)
				tr.Write(value)
				want.Write(head)
				want.Write(value)
			}
			flushAndRead(t, tr, client, want.Bytes())
			if !tr.wdlSet {
				t.Error("the reply never waited for the socket: the test did not cover a partial writev")
			}
			for i, v := range tr.wiov[:cap(tr.wiov)] {
				if v.Base != nil {
					t.Fatalf("iovec %d still points into the reply after Flush", i)
				}
			}
		})
	}
}

// A connection that is not the net package's own (here one wrapped to count
// writes) gets copies: net.Buffers would take one write per buffer on it.
func TestReplyWritesWrappedConnCopies(t *testing.T) {
	server, _ := testenv.LoopbackPair(t, "tcp")
	tr := newConnTransport(&writeCounter{Conn: server}, 4096, 5*time.Second, 1<<20, false)
	if tr.vectored {
		t.Fatal("a wrapped connection is written vectored")
	}
	tr.beginCall()
	tr.Write(make([]byte, refReplyBytes))
	if len(tr.refs) != 0 || len(tr.wbuf) != refReplyBytes {
		t.Errorf("%d references, %d bytes buffered: want the value copied", len(tr.refs), len(tr.wbuf))
	}
}
