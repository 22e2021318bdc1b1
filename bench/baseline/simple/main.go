// Command simple is the bare-server baseline of make bench: the FunServant
// service generated from idl/servant.thrift, served by the Thrift library's
// own TSimpleServer (a goroutine per connection, binary protocol, buffered
// transport, as faed speaks by default) with a handler that does nothing but
// answer noop(x) with x and ping with "pong". Every other method is absent
// (a call of one panics the connection's goroutine): it is only a yardstick.
//
// Usage: simple -addr 127.0.0.1:PORT | /path/to.sock
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// handler answers noop and ping; the embedded nil interface stands for the rest.
type handler struct{ rpc.FunServant }

func (handler) Noop(_ context.Context, x int32) (int32, error) { return x, nil }

func (handler) Ping(context.Context, *rpc.Context) (string, error) { return "pong", nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:9011", "host:port, or a unix socket path (starting with /)")
	flag.Parse()
	var a net.Addr
	var err error
	if strings.HasPrefix(*addr, "/") {
		os.Remove(*addr)
		a, err = net.ResolveUnixAddr("unix", *addr)
	} else {
		a, err = net.ResolveTCPAddr("tcp", *addr)
	}
	if err != nil {
		log.Fatal(err)
	}
	srv := thrift.NewTSimpleServer4(rpc.NewFunServantProcessor(handler{}),
		thrift.NewTServerSocketFromAddrTimeout(a, 0),
		thrift.NewTBufferedTransportFactory(4096),
		thrift.NewTBinaryProtocolFactoryConf(nil))
	if err := srv.Serve(); err != nil {
		log.Fatal(err)
	}
}
