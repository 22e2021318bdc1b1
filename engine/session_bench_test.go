package engine_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
)

// benchWires are the server configs of BenchmarkSession, each with the
// client wire it is called in: the fixed settings and rpc.protocol auto
// detecting the same wire.
var benchWires = []struct {
	name             string
	protocol         string
	compact, framed  bool // the client's wire
	serverFramedFlag bool
}{
	{"binary-buffered", "binary", false, false, false},
	{"auto/binary-buffered", engine.ProtocolAuto, false, false, false},
	{"compact-framed", "compact", true, true, true},
	{"auto/compact-framed", engine.ProtocolAuto, true, true, false},
}

func benchCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSession measures, for each fixed wire and for auto detecting
// it, a noop call on one long session over loopback (call: what a call of
// a session costs, detection excluded) and a session of one call (session:
// connect, detection, the call, close). cpu-ns/op is the process's CPU per
// op, client and server together: steadier than ns/op on a shared machine.
func BenchmarkSession(b *testing.B) {
	for _, w := range benchWires {
		ts := startServer(b, "tcp", &handler{}, func(c *engine.Config) { c.Protocol, c.Framed = w.protocol, w.serverFramedFlag })
		b.Run("call/"+w.name, func(b *testing.B) {
			c := benchDial(b, ts, w.compact, w.framed)
			cpu := benchCPU()
			for i := 0; b.Loop(); i++ {
				if x, err := c.Noop(bg, int32(i)); err != nil || x != int32(i) {
					b.Fatalf("noop: %d, %v", x, err)
				}
			}
			b.ReportMetric(float64(benchCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
		b.Run("session/"+w.name, func(b *testing.B) {
			cpu := benchCPU()
			for b.Loop() {
				c := benchDial(b, ts, w.compact, w.framed)
				if x, err := c.Noop(bg, 7); err != nil || x != 7 {
					b.Fatalf("noop: %d, %v", x, err)
				}
				c.trans.Close()
			}
			b.ReportMetric(float64(benchCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// benchClient is a session of the generated client and its transport.
type benchClient struct {
	*rpc.FunServantClient
	trans thrift.TTransport
}

func benchDial(b *testing.B, ts *testServer, compact, framed bool) benchClient {
	conf := &thrift.TConfiguration{SocketTimeout: 10 * time.Second, ConnectTimeout: 5 * time.Second}
	sock := thrift.NewTSocketConf(ts.addr, conf)
	var trans thrift.TTransport = thrift.NewTBufferedTransport(sock, 4096)
	if framed {
		trans = thrift.NewTFramedTransportConf(sock, conf)
	}
	if err := trans.Open(); err != nil {
		b.Fatal(err)
	}
	var pf thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(conf)
	if compact {
		pf = thrift.NewTCompactProtocolFactoryConf(conf)
	}
	return benchClient{rpc.NewFunServantClientFactory(trans, pf), trans}
}
