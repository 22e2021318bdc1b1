// Package bench holds fae's benchmark suites. Figures, not pass/fail:
//
//	make bench    (go test -run '^$' -bench . -benchtime 3s ./bench/...)
package bench

import (
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/servant"
)

// BenchmarkNoop measures noop calls/s over loopback TCP, binary protocol,
// buffered transport, 16 concurrent sessions (one Go client each), through
// fae's engine and, as the baseline in the same run, through the Apache Thrift
// library's own TSimpleServer serving the same processor.
func BenchmarkNoop(b *testing.B) {
	noop := func(addr string) func(int) (func() error, func()) {
		return func(int) (func() error, func()) {
			c, done := dialFaed(b, addr)
			return func() error { _, err := c.Noop(context.Background(), 1); return err }, done
		}
	}
	b.Run("server=fae/sessions=16", func(b *testing.B) {
		runConcurrent(b, noop(serveFaed(b, servant.Config{IdgenWorkerID: 1})))
	})
	b.Run("server=thrift-TSimpleServer/sessions=16", func(b *testing.B) {
		svt, err := servant.New(servant.Config{IdgenWorkerID: 1}, servant.Options{})
		if err != nil {
			b.Fatal(err)
		}
		sock, err := thrift.NewTServerSocket("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		if err := sock.Listen(); err != nil {
			b.Fatal(err)
		}
		srv := thrift.NewTSimpleServer4(rpc.NewFunServantProcessor(svt), sock, thrift.NewTBufferedTransportFactory(4096),
			thrift.NewTBinaryProtocolFactoryConf(nil))
		go srv.Serve()
		defer srv.Stop()
		runConcurrent(b, noop(sock.Addr().String()))
	})
}
