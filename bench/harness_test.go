package bench

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/servant"
)

// concurrency is the number of concurrent sessions (through faed) or callers (direct) of every benchmark here.
const concurrency = 16

// serveFaed serves a servant for cfg with fae's engine on loopback TCP until
// the benchmark ends, and returns its address.
func serveFaed(b *testing.B, cfg servant.Config) string {
	svt, err := servant.New(cfg, servant.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var ec engine.Config
	ec.SetDefaults()
	ec.ListenAddr = "127.0.0.1:0"
	ec.SessionTimeout, ec.IOTimeout = 0, 0
	srv := engine.NewServer(ec, rpc.NewFunServantProcessor(svt), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", ec.ListenAddr)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close(); svt.Close() })
	return ln.Addr().String()
}

// dialFaed opens one session (binary protocol, buffered transport).
func dialFaed(b *testing.B, addr string) (*rpc.FunServantClient, func()) {
	sock := thrift.NewTSocketConf(addr, &thrift.TConfiguration{ConnectTimeout: 5 * time.Second})
	trans := thrift.NewTBufferedTransport(sock, 4096)
	if err := trans.Open(); err != nil {
		b.Fatal(err)
	}
	return rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil)), func() { trans.Close() }
}

// runConcurrent runs b.N calls spread over exactly concurrency goroutines,
// each with the call that setup made for it (outside the timing), and reports calls/s.
func runConcurrent(b *testing.B, setup func(w int) (call func() error, done func())) {
	calls := make([]func() error, concurrency)
	for w := range calls {
		call, done := setup(w)
		defer done()
		if err := call(); err != nil { // warm up: connections open, the key is there
			b.Fatal(err)
		}
		calls[w] = call
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, call := range calls {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
