package proxy

import (
	"net"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// Dial opens one unpooled session to the faed at addr (host:port, or a unix
// socket path: any addr with a "/") in its protocol ("binary" or "compact")
// and transport (framed or buffered with a 4 KiB buffer), as a client
// program would: the tools' way in (pingfae, stress). timeout bounds the
// connect and every read and write. Close the returned transport to end the
// session. The error is the connect's.
func Dial(addr, protocol string, framed bool, timeout time.Duration) (*rpc.FunServantClient, thrift.TTransport, error) {
	conf := &thrift.TConfiguration{ConnectTimeout: timeout, SocketTimeout: timeout}
	var sock *thrift.TSocket
	if strings.Contains(addr, "/") {
		sock = thrift.NewTSocketFromAddrConf(&net.UnixAddr{Name: addr, Net: "unix"}, conf)
	} else {
		sock = thrift.NewTSocketConf(addr, conf)
	}
	var trans thrift.TTransport = thrift.NewTBufferedTransport(sock, 4096)
	if framed {
		trans = thrift.NewTFramedTransportConf(sock, conf)
	}
	var pf thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(conf)
	if protocol == "compact" {
		pf = thrift.NewTCompactProtocolFactoryConf(conf)
	}
	if err := trans.Open(); err != nil {
		return nil, nil, err
	}
	return rpc.NewFunServantClientFactory(trans, pf), trans, nil
}
