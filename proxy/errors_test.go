package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

// frontHandler is a faed that forwards lc_get and my_merge to its peer and
// returns ServantError of the outcome, as the servant will; ping fails
// locally.
type frontHandler struct {
	rpc.FunServant
	p    *Proxies
	peer Peer
}

func (h *frontHandler) LcGet(ctx context.Context, c *rpc.Context, key string) ([]byte, error) {
	var v []byte
	err := h.p.Call(ctx, h.peer, "lc_get", func(ctx context.Context, fc *rpc.FunServantClient) (err error) {
		v, err = fc.LcGet(ctx, c, key)
		return err
	})
	return v, ServantError(ctx, err)
}

func (h *frontHandler) MyMerge(ctx context.Context, c *rpc.Context, pool, table string, hintID int64, where, key, column, jsonValue string) (*rpc.MysqlMergeResult_, error) {
	var r *rpc.MysqlMergeResult_
	err := h.p.Call(ctx, h.peer, "my_merge", func(ctx context.Context, fc *rpc.FunServantClient) (err error) {
		r, err = fc.MyMerge(ctx, c, pool, table, hintID, where, key, column, jsonValue)
		return err
	})
	return r, ServantError(ctx, err)
}

func (h *frontHandler) Ping(context.Context, *rpc.Context) (string, error) {
	return "", errors.New("local failure")
}

// startFront serves a frontHandler forwarding to peer, its processor wrapped
// in PassExceptions when pass, and returns a client of it.
func startFront(t *testing.T, front, peer Peer, pass bool) *rpc.FunServantClient {
	t.Helper()
	p, _ := newProxies(t, testConfig())
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr, cfg.Protocol, cfg.Framed = "127.0.0.1:0", front.Protocol, front.Framed
	var proc thrift.TProcessor = rpc.NewFunServantProcessor(&frontHandler{p: p, peer: peer})
	if pass {
		proc = thrift.WrapProcessor(proc, PassExceptions)
	}
	srv := engine.NewServer(cfg, proc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := engine.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	front.Addr = ln.Addr().String()
	c, err := dialConn(front, 5*time.Second, true, 4096)
	if err != nil {
		t.Fatal(err)
	}
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.nc.Close() })
	return c.client
}

// wantAppException fails the test unless err is a TApplicationException of typeID and message msg.
func wantAppException(t *testing.T, what string, err error, typeID int32, msg string) {
	t.Helper()
	var ae thrift.TApplicationException
	if !errors.As(err, &ae) || ae.TypeId() != typeID || ae.Error() != msg {
		t.Errorf("%s: %v (%T), want a TApplicationException of type %d: %q", what, err, err, typeID, msg)
	}
}

// What faed's client sees when the peer of a forwarded call answers with an
// exception: a declared one as itself; the peer's INTERNAL_ERROR with one
// "Internal error processing" prefix and the peer named once; another type
// (UNKNOWN_METHOD from a peer without my_merge) with its type id kept, under
// PassExceptions. Local errors are untouched, and the session goes on. Front
// and peer speak different protocols and transports.
func TestExceptionsReachClient(t *testing.T) {
	for i, c := range combos {
		o := combos[len(combos)-1-i]
		t.Run(comboName(c.protocol, c.framed)+"_to_"+comboName(o.protocol, o.framed), func(t *testing.T) {
			tp := startPeer(t, o.protocol, o.framed, func(_ *engine.Config, proc *rpc.FunServantProcessor) {
				delete(proc.ProcessorMap(), "my_merge")
			})
			addr := tp.peer.Addr
			client := startFront(t, Peer{Protocol: c.protocol, Framed: c.framed}, tp.peer, true)

			_, err := client.LcGet(bg, rctx, "miss")
			if m, ok := err.(*rpc.TCacheMissed); !ok || m.GetMessage() != "lcache missed: miss" {
				t.Errorf("lc_get miss: %v (%T), want *rpc.TCacheMissed", err, err)
			}
			_, err = client.LcGet(bg, rctx, "fail:lock table full")
			wantAppException(t, "lc_get fail", err, thrift.INTERNAL_ERROR,
				"Internal error processing lc_get: peer "+addr+": lock table full")
			_, err = client.MyMerge(bg, rctx, "p", "t", 1, "id=1", "k", "c", "{}")
			wantAppException(t, "my_merge", err, thrift.UNKNOWN_METHOD, "peer "+addr+": Unknown function my_merge")
			if err != nil && strings.Count(err.Error(), addr) != 1 {
				t.Errorf("my_merge: %q names the peer %d times, want once", err, strings.Count(err.Error(), addr))
			}
			_, err = client.Ping(bg, rctx)
			wantAppException(t, "local ping", err, thrift.INTERNAL_ERROR, "Internal error processing ping: local failure")
			if v, err := client.LcGet(bg, rctx, "still here"); err != nil || string(v) != "still here" {
				t.Errorf("lc_get after the exceptions = %q, %v", v, err)
			}
		})
	}
}

// Without PassExceptions the type id of a peer's exception becomes
// INTERNAL_ERROR, but the text still names the peer once under one prefix.
func TestExceptionsWithoutPassExceptions(t *testing.T) {
	tp := startPeer(t, "binary", false, func(_ *engine.Config, proc *rpc.FunServantProcessor) {
		delete(proc.ProcessorMap(), "my_merge")
	})
	client := startFront(t, Peer{Protocol: "binary"}, tp.peer, false)
	_, err := client.MyMerge(bg, rctx, "p", "t", 1, "id=1", "k", "c", "{}")
	wantAppException(t, "my_merge", err, thrift.INTERNAL_ERROR,
		"Internal error processing my_merge: peer "+tp.peer.Addr+": Unknown function my_merge")
}

func TestServantError(t *testing.T) {
	if ServantError(bg, nil) != nil {
		t.Error("ServantError(nil) is not nil")
	}
	miss := &rpc.TCacheMissed{}
	if ServantError(bg, miss) != error(miss) {
		t.Error("a declared exception was not returned as is")
	}
	open := &pool.Error{Backend: Backend, Op: "lock", Pool: "a:1", Server: "a:1", Kind: pool.KindBreakerOpen}
	if ServantError(bg, open) != error(open) {
		t.Error("an error other than a peer's exception was not returned as is")
	}
	refused := &pool.Error{Backend: Backend, Op: "lock", Pool: "a:1", Server: "a:1", Kind: pool.KindRefused,
		Err: &ApplicationError{Peer: "a:1", Type: thrift.INTERNAL_ERROR, Message: "boom"}}
	err := ServantError(bg, refused)
	var ae *ApplicationError
	if err.Error() != "peer a:1: boom" || !errors.Is(err, pool.KindRefused) || !errors.As(err, &ae) {
		t.Errorf("ServantError = %q, want \"peer a:1: boom\" still unwrapping to the *pool.Error", err)
	}
}
