package engine

import (
	"net"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// TestTransportRecycled: a transport recycled at a session's end is taken
// again by a next session, with its protocol objects, and with nothing of
// the ended session: its connection, its session, its deadlines, its
// buffers and the state of its last call are those of a new transport.
func TestTransportRecycled(t *testing.T) {
	bufs := newIdleBuffers(4096)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := &Server{protocols: [2]thrift.TProtocolFactory{thrift.NewTBinaryProtocolFactoryConf(nil), thrift.NewTCompactProtocolFactoryConf(nil)}}
	reused := 0
	for range 100 { // sync.Pool may drop an item (always under -race, now and then): most rounds reuse
		t1 := newPooledConnTransport(a, nil, bufs, time.Second, 1<<20, false)
		sp := srv.newSessionProtocol(t1, wire{})
		t1.sess, t1.read, t1.writing, t1.rdl, t1.rdlSet, t1.deferred = &session{}, 99, true, time.Now(), true, false
		if !t1.release() {
			t.Fatal("release failed with nothing buffered")
		}
		t1.recycle()
		t2 := newPooledConnTransport(b, nil, bufs, 2*time.Second, 2<<20, false)
		if t2 != t1 {
			continue
		}
		reused++
		if t2.conn != b || t2.sess != nil || t2.read != 0 || t2.writing || !t2.rdl.IsZero() || t2.rdlSet || t2.ioTimeout != 2*time.Second || t2.maxBytes != 2<<20 || t2.br == nil || t2.small == nil {
			t.Fatalf("recycled transport kept state: conn %v sess %v read %d writing %v rdl %v/%v io %v max %d", t2.conn == b, t2.sess, t2.read, t2.writing, t2.rdl, t2.rdlSet, t2.ioTimeout, t2.maxBytes)
		}
		if sp2 := srv.newSessionProtocol(t2, wire{}); sp2.in != sp.in || sp2.out != sp.out {
			t.Fatal("the protocol objects were made again for a recycled transport")
		}
		t2.release()
		t2.recycle()
	}
	if reused == 0 {
		t.Fatal("no transport was reused in 100 sessions")
	}
}
