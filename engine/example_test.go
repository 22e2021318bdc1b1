package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
)

// slowServant answers ping after 200 ms of work, and says when a call has started.
type slowServant struct {
	rpc.FunServant // only ping is served
	started        chan struct{}
}

func (s *slowServant) Ping(ctx context.Context, _ *rpc.Context) (string, error) {
	s.started <- struct{}{}
	time.Sleep(200 * time.Millisecond) // the call's work
	return "pong", nil
}

// ExampleServer_Shutdown drains a server on SIGTERM: a call in flight finishes and
// its client gets the reply, the session is closed once idle, then Shutdown
// returns nil; after it no call is running, so the servant may be closed.
func ExampleServer_Shutdown() {
	svt := &slowServant{started: make(chan struct{}, 1)}
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr = "127.0.0.1:0"
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(svt), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, _ := engine.Listen(cfg)
	go srv.Serve(ln)

	// A client starts a call.
	sock := thrift.NewTSocketConf(ln.Addr().String(), &thrift.TConfiguration{SocketTimeout: 5 * time.Second})
	trans := thrift.NewTBufferedTransport(sock, 4096)
	trans.Open()
	defer trans.Close()
	client := rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil))
	reply := make(chan string, 1)
	go func() {
		pong, err := client.Ping(context.Background(), &rpc.Context{Rid: 1, Reason: "example"})
		reply <- fmt.Sprintf("%s, err %v", pong, err)
	}()
	<-svt.started

	// … SIGTERM arrives while the call runs:
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	fmt.Println("shutdown:", srv.Shutdown(ctx))
	fmt.Println("reply:", <-reply)
	fmt.Println("sessions:", srv.Sessions())
	fmt.Println("calls:", srv.Stats.Calls.Load())
	// Output:
	// shutdown: <nil>
	// reply: pong, err <nil>
	// sessions: 0
	// calls: 1
}
