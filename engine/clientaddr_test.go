package engine_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
)

// ClientAddr gives a call the client's IP over TCP (127.0.0.2 when the
// client binds it), none over a unix socket nor outside a session, and
// costs a call no allocation.
func TestClientAddr(t *testing.T) {
	type seen struct {
		addr   string
		ok     bool
		allocs float64
	}
	got := make(chan seen, 1)
	h := &handler{ping: func(ctx context.Context) (string, error) {
		a, ok := engine.ClientAddr(ctx)
		allocs := testing.AllocsPerRun(100, func() { engine.ClientAddr(ctx) })
		got <- seen{a.String(), ok, allocs}
		return "pong", nil
	}}
	for _, c := range []struct {
		network, src string
		want         seen
	}{
		{"tcp", "127.0.0.1", seen{"127.0.0.1", true, 0}},
		{"tcp", "127.0.0.2", seen{"127.0.0.2", true, 0}},
		{"unix", "", seen{"invalid IP", false, 0}},
	} {
		ts := startServer(t, c.network, h, nil)
		var conn net.Conn
		var err error
		if c.network == "tcp" {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.src)}, Timeout: 5 * time.Second}
			conn, err = d.Dial("tcp", ts.addr)
		} else {
			conn, err = net.Dial("unix", ts.addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conf := &thrift.TConfiguration{SocketTimeout: 10 * time.Second}
		trans := thrift.NewTBufferedTransport(thrift.NewTSocketFromConnConf(conn, conf), 4096)
		cl := rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(conf))
		if _, err := cl.Ping(bg, rctx()); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != c.want {
			t.Errorf("%s from %q: ClientAddr %+v, want %+v", c.network, c.src, s, c.want)
		}
	}
	if a, ok := engine.ClientAddr(context.Background()); ok || a.IsValid() {
		t.Errorf("outside a session: %v %v", a, ok)
	}
}
