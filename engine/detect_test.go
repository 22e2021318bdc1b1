package engine_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// autoModes are the four wires an rpc.protocol auto port detects.
var autoModes = []struct {
	name            string
	compact, framed bool
}{{"binary-buffered", false, false}, {"binary-framed", false, true}, {"compact-buffered", true, false}, {"compact-framed", true, true}}

// dialWire opens a session of the generated client in a protocol and
// transport of its own, closed at the end of the test.
func (ts *testServer) dialWire(t testing.TB, compact, framed bool) *client {
	t.Helper()
	conn := ts.dialRaw(t)
	conf := &thrift.TConfiguration{SocketTimeout: 10 * time.Second}
	var trans thrift.TTransport = thrift.NewTBufferedTransport(thrift.NewTSocketFromConnConf(conn, conf), 4096)
	if framed {
		trans = thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(conn, conf), conf)
	}
	var pf thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(conf)
	if compact {
		pf = thrift.NewTCompactProtocolFactoryConf(conf)
	}
	return &client{rpc.NewFunServantClientFactory(trans, pf), conn}
}

// TestAutoProtocol: one rpc.protocol auto port serves sessions in each of
// the four wires, several calls each, side by side; the framed setting is
// ignored (true here, and buffered sessions are served).
func TestAutoProtocol(t *testing.T) {
	leakCheck(t)
	ts := startServer(t, "tcp", &handler{}, func(c *engine.Config) { c.Protocol, c.Framed = engine.ProtocolAuto, true })
	var clients []*client
	for _, m := range autoModes {
		clients = append(clients, ts.dialWire(t, m.compact, m.framed))
	}
	for round := range 3 {
		for i, c := range clients {
			if s, err := c.Ping(bg, rctx()); err != nil || s != "pong" {
				t.Fatalf("%s call %d: ping = %q, %v", autoModes[i].name, round, s, err)
			}
			x := int32(1000*i + round)
			if got, err := c.Noop(bg, x); err != nil || got != x {
				t.Fatalf("%s call %d: noop(%d) = %d, %v", autoModes[i].name, round, x, got, err)
			}
		}
	}
	if n := ts.Stats.Calls.Load(); n != 24 {
		t.Errorf("Calls = %d, want 24", n)
	}
	if n := ts.Stats.RefusedProtocol.Load() + ts.Stats.EndRefused.Load() + ts.Stats.EndProtocol.Load(); n != 0 {
		t.Errorf("%d sessions refused or ended by a protocol error", n)
	}
}

// unversionedPing is a ping in non-strict binary (no version header: the
// method name's length first), framed or not, as TBinaryProtocol with
// strict_write off writes it.
func unversionedPing(t *testing.T, framed bool, seq int32) []byte {
	var b bytes.Buffer
	b.Write(binary.BigEndian.AppendUint32(nil, 4))
	b.WriteString("ping")
	b.WriteByte(byte(thrift.CALL))
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(seq)))
	versioned := pingRequest(t, false, seq)
	b.Write(versioned[4+4+4+4:]) // the arguments after the strict header (version, name length, "ping", seqid)
	if !framed {
		return b.Bytes()
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(b.Len())), b.Bytes()...)
}

// TestAutoProtocolNonStrict: non-strict binary cannot be detected, so an
// auto port answers such a call, buffered or framed, with a
// TApplicationException INVALID_PROTOCOL naming the problem (in strict
// binary, which non-strict readers read too), closes the connection and
// counts it in RefusedProtocol; bytes that are no call at all are closed
// unanswered and counted too. A port with protocol binary serves the same
// bytes (the original's behaviour, unchanged), and the auto port goes on
// serving strict clients.
func TestAutoProtocolNonStrict(t *testing.T) {
	leakCheck(t)
	auto := startServer(t, "tcp", &handler{}, func(c *engine.Config) { c.Protocol = engine.ProtocolAuto })
	for _, framed := range []bool{false, true} {
		start := time.Now()
		conn := auto.dialRaw(t)
		if _, err := conn.Write(unversionedPing(t, framed, 7)); err != nil {
			t.Fatal(err)
		}
		name, seq, err := newReplyReader(conn, framed).read(&rpc.FunServantPingResult{})
		var ae thrift.TApplicationException
		if !errors.As(err, &ae) || ae.TypeId() != thrift.INVALID_PROTOCOL || name != "ping" || seq != 7 ||
			!strings.HasPrefix(ae.Error(), "faed: rpc.protocol auto reads strict binary") {
			t.Fatalf("framed %v: reply %q seq %d err %v, want INVALID_PROTOCOL %q", framed, name, seq, err, engine.ProtocolMismatchMessage)
		}
		readClosed(t, conn, 5*time.Second)
		if took := time.Since(start); took > time.Second { // io_timeout is 2s: it waited for bytes that never came
			t.Errorf("framed %v: answered and closed after %s", framed, took)
		}
	}
	garbage := auto.dialRaw(t)
	garbage.Write([]byte("\x00\x00\x00\x05hello, not thrift"))
	if took := readClosed(t, garbage, 5*time.Second); took > time.Second {
		t.Errorf("garbage closed after %s", took)
	}
	testenv.Eventually(t, 5*time.Second, "three refusals counted", func() bool {
		return auto.Stats.RefusedProtocol.Load() == 3 && auto.Stats.EndRefused.Load() == 3
	})
	if s, err := auto.dialWire(t, false, false).Ping(bg, rctx()); err != nil || s != "pong" {
		t.Errorf("strict binary after the refusals: %q, %v", s, err)
	}
	if !strings.Contains(auto.log.String(), "non-strict binary on an rpc.protocol auto port") {
		t.Errorf("no log line for the refusal:\n%s", auto.log.String())
	}

	plain := startServer(t, "tcp", &handler{}, nil)
	conn := plain.dialRaw(t)
	conn.Write(unversionedPing(t, false, 8))
	var res rpc.FunServantPingResult
	if name, seq, err := newReplyReader(conn, false).read(&res); err != nil || name != "ping" || seq != 8 || res.GetSuccess() != "pong" {
		t.Errorf("protocol binary, non-strict ping: %q seq %d %v, err %v", name, seq, res.GetSuccess(), err)
	}
}

// TestAutoProtocolOverload: an auto port's overload refusal answers in the
// protocol and transport the refused connection's first bytes show.
func TestAutoProtocolOverload(t *testing.T) {
	leakCheck(t)
	ts := startServer(t, "tcp", &handler{}, func(c *engine.Config) {
		c.Protocol, c.MaxOutstandingSessions, c.AcceptWait = engine.ProtocolAuto, 1, 0
	})
	live := ts.dialWire(t, false, false)
	if _, err := live.Ping(bg, rctx()); err != nil {
		t.Fatal(err)
	}
	for _, m := range autoModes {
		_, err := ts.dialWire(t, m.compact, m.framed).Ping(bg, rctx())
		if err == nil || !strings.Contains(err.Error(), "faed overloaded: 1 sessions") {
			t.Errorf("%s at limit 1: err %v, want faed overloaded", m.name, err)
		}
	}
	conn := ts.dialRaw(t)
	conn.Write(unversionedPing(t, false, 3))
	if _, _, err := newReplyReader(conn, false).read(&rpc.FunServantPingResult{}); err == nil ||
		!strings.Contains(err.Error(), "rpc.protocol auto") {
		t.Errorf("non-strict binary at limit 1: err %v, want the protocol refusal", err)
	}
	testenv.Eventually(t, 5*time.Second, "refusals counted", func() bool {
		return ts.Stats.RefusedOverload.Load() == 4 && ts.Stats.RefusedProtocol.Load() == 1
	})
}

// TestAutoProtocolEarlyEOF: a client that sends one byte and leaves is
// counted as a transport end, not as a protocol refusal.
func TestAutoProtocolEarlyEOF(t *testing.T) {
	leakCheck(t)
	ts := startServer(t, "tcp", &handler{}, func(c *engine.Config) { c.Protocol = engine.ProtocolAuto })
	conn := ts.dialRaw(t)
	conn.Write([]byte{0x80})
	conn.(*net.TCPConn).CloseWrite()
	readClosed(t, conn, 5*time.Second)
	testenv.Eventually(t, 5*time.Second, "the session ended", func() bool { return ts.Sessions() == 0 })
	if n, p := ts.Stats.EndTransport.Load(), ts.Stats.RefusedProtocol.Load(); n != 1 || p != 0 {
		t.Errorf("EndTransport %d RefusedProtocol %d, want 1 0", n, p)
	}
}
