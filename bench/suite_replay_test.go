package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// encodeMessage is a whole Thrift message (strict binary protocol, seqid 1)
// of method and typ with body s: the bytes the generated Go client writes
// for a call (typ CALL, s the args) or reads for its reply (typ REPLY, s the
// result), on a buffered transport.
func encodeMessage(method string, typ thrift.TMessageType, s thrift.TStruct) ([]byte, error) {
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, nil)
	ctx := context.Background()
	if err := p.WriteMessageBegin(ctx, method, typ, 1); err != nil {
		return nil, err
	}
	if err := s.Write(ctx, p); err != nil {
		return nil, err
	}
	if err := p.WriteMessageEnd(ctx); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()), nil
}

// lockRequests are the lock calls of keys (reason "bench", benchContext), made
// ahead, and the two replies each can have (took it, or not); every reply
// has the same length.
func lockRequests(keys []string) (reqs, replies [][]byte, err error) {
	for _, k := range keys {
		req, err := encodeMessage("lock", thrift.CALL, &rpc.FunServantLockArgs{C: benchContext, Reason: "bench", Key: k})
		if err != nil {
			return nil, nil, err
		}
		reqs = append(reqs, req)
	}
	for _, took := range []bool{true, false} {
		reply, err := encodeMessage("lock", thrift.REPLY, &rpc.FunServantLockResult{Success: thrift.BoolPtr(took)})
		if err != nil {
			return nil, nil, err
		}
		replies = append(replies, reply)
	}
	return reqs, replies, nil
}

// replayed is a variant's open for a call whose request changes from call
// to call in a way known ahead (scenario 6's lock of the next key): each
// worker, on a kept connection, writes the next of reqs (shared by the
// workers, in turn) and reads a reply, which must equal one of replies (all
// of one length) byte for byte. Like persistent, it costs the load
// generator the same few µs whatever server it drives, where the generated
// Thrift client spent its own encoding and decoding on the measured
// server's cores.
func replayed(addr string, reqs, replies [][]byte) func() (func() error, func(), error) {
	var next atomic.Int64
	return func() (func() error, func(), error) {
		conn, err := net.DialTimeout(netOf(addr), addr, 5*time.Second)
		if err != nil {
			return nil, nil, err
		}
		got := make([]byte, len(replies[0]))
		return func() error {
			req := reqs[next.Add(1)%int64(len(reqs))]
			if err := echoRoundTrip(conn, req, got); err != nil {
				return err
			}
			for _, want := range replies {
				if bytes.Equal(got, want) {
					return nil
				}
			}
			return fmt.Errorf("reply %q is none of the %d expected", got, len(replies))
		}, func() { conn.Close() }, nil
	}
}
