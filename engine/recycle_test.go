package engine_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// TestRecycledSessionsKeepNoState runs, over real TCP, sessions that end in
// every way a session can end with its transport recycled (the kit of
// transport and protocol objects a next session takes: recycle) or not,
// each followed by a good session whose two calls must be answered as on a
// fresh server: nothing of the ended session (bytes read ahead, a reply
// half written, a message half read, an exception being written) may reach it.
func TestRecycledSessionsKeepNoState(t *testing.T) {
	ts := startServer(t, "tcp", &handler{}, nil)
	ping := pingRequest(t, false, 1)
	noop := noopRequest(t, false, 2, 7)
	reply := request(t, false, "ping", 3, &rpc.FunServantPingArgs{C: rctx()})
	reply[7] = byte(thrift.REPLY) // a REPLY message where a CALL must be
	huge := binary.BigEndian.AppendUint32(append([]byte(nil), noop[:4]...), 1<<30)
	ends := []struct {
		name string
		send []byte
		read bool // read the reply before closing
	}{
		{"one call", ping, true},
		{"a call, the client gone before its reply", noop, false},
		{"half a message", ping[:len(ping)/2], false},
		{"a call and half the next", append(append([]byte(nil), noop...), ping[:9]...), true},
		{"a REPLY message", reply, false},
		{"a method name of 1 GiB", huge, false},
		{"not Thrift", []byte("GET / HTTP/1.1\r\n\r\n"), false},
	}
	for i := range 40 {
		for _, e := range ends {
			c := ts.dialRaw(t)
			if _, err := c.Write(e.send); err != nil {
				t.Fatal(err)
			}
			if e.read {
				var r rpc.FunServantNoopResult
				var p rpc.FunServantPingResult
				var res thrift.TStruct = &p
				if e.send[8] == 'n' { // the first call's name (after the version and the name's length) is noop
					res = &r
				}
				if _, _, err := newReplyReader(c, false).read(res); err != nil {
					t.Fatalf("round %d, %s: %v", i, e.name, err)
				}
			}
			c.Close()

			g := ts.dialRaw(t)
			x := int32(i*100 + 11)
			if _, err := g.Write(append(noopRequest(t, false, int32(i), x), pingRequest(t, false, int32(i+1))...)); err != nil {
				t.Fatal(err)
			}
			rr := newReplyReader(g, false)
			var nr rpc.FunServantNoopResult
			if name, seq, err := rr.read(&nr); err != nil || name != "noop" || seq != int32(i) || nr.GetSuccess() != x {
				t.Fatalf("round %d, after %s: noop(%d) answered %s seq %d = %d, %v; want noop seq %d = %d", i, e.name, x, name, seq, nr.GetSuccess(), err, i, x)
			}
			var pr rpc.FunServantPingResult
			if name, seq, err := rr.read(&pr); err != nil || name != "ping" || seq != int32(i+1) || pr.GetSuccess() == "" {
				t.Fatalf("round %d, after %s: ping answered %s seq %d %q, %v", i, e.name, name, seq, pr.GetSuccess(), err)
			}
			g.Close()
		}
	}
	testenv.Eventually(t, 5*time.Second, "every session ended", func() bool { return ts.Stats.SessionsActive.Load() == 0 })
}
