package proxy

import (
	"encoding/binary"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// appendCall appends the request of a forwarded lock or unlock call, its
// message head (strict: version and type, name, sequence id) and its
// arguments, in the binary protocol: byte for byte what the generated code
// writes through a TBinaryProtocol with strict write (TestAppendCallAsGenerated),
// in some 40 ns where the generated code's field-by-field calls through the
// protocol and its transport took 0.5 µs in a loop and 1.1 µs of a forwarded
// lock's CPU at node 0 (pprof of make bench scenario 6 at c=64). ok is false
// for any other arguments, which the caller encodes through the protocol.
func appendCall(b []byte, method string, seq int32, args thrift.TStruct) (_ []byte, ok bool) {
	var c *rpc.Context
	var reason, key string
	switch a := args.(type) {
	case *rpc.FunServantLockArgs:
		c, reason, key = a.C, a.Reason, a.Key
	case *rpc.FunServantUnlockArgs:
		c, reason, key = a.C, a.Reason, a.Key
	default:
		return b, false
	}
	b = binary.BigEndian.AppendUint32(b, uint32(thrift.VERSION_1)|uint32(thrift.CALL))
	b = appendString(b, method)
	b = binary.BigEndian.AppendUint32(b, uint32(seq))
	b = append(b, byte(thrift.STRUCT), 0, 1) // 1: Context c
	if c != nil {
		b = append(b, byte(thrift.I64), 0, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(c.Rid))
		b = append(b, byte(thrift.STRING), 0, 2)
		b = appendString(b, c.Reason)
		b = append(b, byte(thrift.I64), 0, 3)
		b = binary.BigEndian.AppendUint64(b, uint64(c.UID))
		if c.Sticky != nil {
			v := byte(0)
			if *c.Sticky {
				v = 1
			}
			b = append(b, byte(thrift.BOOL), 0, 4, v)
		}
	}
	b = append(b, byte(thrift.STOP))
	b = append(b, byte(thrift.STRING), 0, 2) // 2: string reason
	b = appendString(b, reason)
	b = append(b, byte(thrift.STRING), 0, 3) // 3: string key
	b = appendString(b, key)
	return append(b, byte(thrift.STOP)), true
}

// appendString appends s as the binary protocol writes a string: its length
// (4 bytes, big-endian), then its bytes.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
