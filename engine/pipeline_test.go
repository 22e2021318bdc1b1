package engine_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// countingListener counts the writes made to the connections it accepts:
// instrumentation of real TCP connections (how many write calls the engine
// made), nothing faked.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// servePipelined serves noop on a counting TCP listener and returns its address.
func servePipelined(t *testing.T, framed bool) (string, *countingListener) {
	t.Helper()
	ts := startServer(t, "tcp", &handler{}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	go ts.Serve(cl)
	return ln.Addr().String(), cl
}

// TestPipelinedRepliesCoalesced: calls a client pipelines (written together,
// before any reply) are answered in order, each with its own seq id and
// value, in a few writes rather than one per call; calls made one at a time
// get one write each, at once.
func TestPipelinedRepliesCoalesced(t *testing.T) {
	addr, cl := servePipelined(t, false)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 100
	var batch bytes.Buffer
	for i := range int32(n) {
		batch.Write(noopRequest(t, false, i+1, 1000+i))
	}
	if _, err := conn.Write(batch.Bytes()); err != nil {
		t.Fatal(err)
	}
	rr := newReplyReader(conn, false)
	for i := range int32(n) {
		var res rpc.FunServantNoopResult
		name, seq, err := rr.read(&res)
		if err != nil || name != "noop" || seq != i+1 || res.GetSuccess() != 1000+i {
			t.Fatalf("reply %d: %s seq %d = %d, %v; want noop seq %d = %d", i, name, seq, res.GetSuccess(), err, i+1, 1000+i)
		}
	}
	if w := cl.writes.Load(); w > n/4 {
		t.Errorf("%d pipelined calls answered in %d writes, want at most %d", n, w, n/4)
	}
	before := cl.writes.Load()
	for i := range int32(5) {
		if _, err := conn.Write(noopRequest(t, false, 500+i, i)); err != nil {
			t.Fatal(err)
		}
		var res rpc.FunServantNoopResult
		if _, seq, err := rr.read(&res); err != nil || seq != 500+i || res.GetSuccess() != i {
			t.Fatalf("call %d one at a time: seq %d = %d, %v", i, seq, res.GetSuccess(), err)
		}
	}
	if w := cl.writes.Load() - before; w != 5 {
		t.Errorf("5 calls one at a time answered in %d writes, want 5", w)
	}
}

// TestPipelinedRepliesBeforeEnd: when a session ends on a malformed request
// pipelined behind good ones, the good ones' replies, held back while the
// next request was buffered, are still written before the connection closes.
func TestPipelinedRepliesBeforeEnd(t *testing.T) {
	addr, _ := servePipelined(t, false)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var batch bytes.Buffer
	for i := range int32(3) {
		batch.Write(noopRequest(t, false, i+1, i))
	}
	batch.Write([]byte{0x80, 0x01, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff}) // a call whose name length is -1
	if _, err := conn.Write(batch.Bytes()); err != nil {
		t.Fatal(err)
	}
	rr := newReplyReader(conn, false)
	for i := range int32(3) {
		var res rpc.FunServantNoopResult
		if _, seq, err := rr.read(&res); err != nil || seq != i+1 || res.GetSuccess() != i {
			t.Fatalf("reply %d: seq %d = %d, %v", i, seq, res.GetSuccess(), err)
		}
	}
	rest, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("after the replies: %v", err)
	}
	t.Logf("after the 3 replies: %d bytes, then the close", len(rest))
}
