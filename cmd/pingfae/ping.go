package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/proxy"
)

// target is one node to ping: its address (host:port, or a unix socket path
// when it contains a "/"), the protocol and transport it serves, and a note
// for the output ("" = none).
type target struct {
	addr, protocol string
	framed         bool
	note           string
}

func (t target) String() string {
	transport := "buffered"
	if t.framed {
		transport = "framed"
	}
	s := t.addr + " (" + t.protocol + ", " + transport
	if t.note != "" {
		s += "; " + t.note
	}
	return s + ")"
}

// pingAll pings the targets, at most o.parallel at once, writes their lines
// to w in the targets' order (each node's lines as they come once the
// nodes before it are done), and returns the addresses of the nodes that
// failed a ping.
func pingAll(ctx context.Context, targets []target, o *options, w io.Writer) (failed []string) {
	lines := make([]chan string, len(targets))
	ok := make([]bool, len(targets))
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		lines[i] = make(chan string, min(o.loops+2, 1024))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(lines[i])
			sem <- struct{}{}
			defer func() { <-sem }()
			ok[i] = pingNode(ctx, t, o.loops, o.timeout, lines[i])
		}()
	}
	for i := range targets {
		for line := range lines[i] {
			fmt.Fprintln(w, line)
		}
	}
	wg.Wait()
	for i, t := range targets {
		if !ok[i] {
			failed = append(failed, t.addr)
		}
	}
	return failed
}

// pingNode pings t loops times, one ping after another on one connection
// (opened again after a failure), sending one line per ping and, when loops
// > 1, a closing line with the round trips to out. It reports whether every
// ping was answered.
func pingNode(ctx context.Context, t target, loops int, timeout time.Duration, out chan<- string) bool {
	var c *conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	var rtts []time.Duration
	for i := 1; i <= loops && ctx.Err() == nil; i++ {
		start := time.Now()
		answer, err := func() (string, error) {
			if c == nil {
				var err error
				if c, err = dial(t, timeout); err != nil {
					return "", fmt.Errorf("connect: %w", err)
				}
			}
			return c.Ping(ctx, pingContext())
		}()
		rtt := time.Since(start)
		if err != nil {
			out <- fmt.Sprintf("%s #%d: FAILED after %s: %v", t, i, ms(rtt), err)
			if c != nil {
				c.Close()
				c = nil
			}
			continue
		}
		rtts = append(rtts, rtt)
		out <- fmt.Sprintf("%s #%d: %s: %s", t, i, ms(rtt), answer)
	}
	if loops > 1 {
		out <- fmt.Sprintf("%s: %d/%d answered%s", t.addr, len(rtts), loops, stats(rtts))
	}
	return len(rtts) == loops
}

// stats is ", round trip min/avg/max …" of rtts ("" when empty).
func stats(rtts []time.Duration) string {
	if len(rtts) == 0 {
		return ""
	}
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, d := range rtts {
		lo, hi, sum = min(lo, d), max(hi, d), sum+d
	}
	avg := sum / time.Duration(len(rtts))
	return fmt.Sprintf(", round trip min/avg/max %s/%s/%s", ms(lo), ms(avg), ms(hi))
}

// ms formats d in milliseconds with 3 decimals, e.g. "0.412ms".
func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }

// conn is one open connection to a node.
type conn struct {
	*rpc.FunServantClient
	trans thrift.TTransport
}

func (c *conn) Close() { c.trans.Close() }

// dial opens a connection to t in its protocol and transport; timeout
// bounds the connect and every read and write.
func dial(t target, timeout time.Duration) (*conn, error) {
	c, trans, err := proxy.Dial(t.addr, t.protocol, t.framed, timeout)
	if err != nil {
		return nil, err
	}
	return &conn{c, trans}, nil
}

var ridSeq atomic.Int64

func init() { ridSeq.Store(time.Now().UnixNano()) }

// pingContext is the Context of one ping: a fresh rid, reason "pingfae".
func pingContext() *rpc.Context {
	return &rpc.Context{Rid: ridSeq.Add(1), Reason: "pingfae"}
}
