package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/thrift/lib/go/thrift"
)

// exactBinary is a session's protocol with ReadBinary replaced. The Thrift
// library's (v0.17, binary and compact protocols alike) reads every binary
// value, however short, through a bytes.Buffer that grows to 512 bytes
// (bytes.MinRead) and returns that buffer whole: a value of one byte (2 bytes
// on the wire in compact, 5 in binary) costs about 1.6 KB of allocation and
// holds at least 512 bytes until the call ends. A request of many short
// binaries (a list<binary> such as mg_inserts' docs) thus allocates over 300
// (binary) or 800 (compact) times its size, so that one request of
// max_message_bytes (default 16 MiB) could hold 2 to 4 GiB. Found with
// FuzzSession's allocation bound (TestFuzzManyShortValues,
// engine/fuzzalloc_test.go).
//
// This ReadBinary reads the length as the library does, refuses it as the
// library does (negative: NEGATIVE_SIZE, over max_message_bytes: SIZE_LIMIT,
// before allocating), and allocates exactly that length. A length larger
// than the bytes that follow allocates at most max_message_bytes, once: the
// short read then ends the session.
type exactBinary struct {
	thrift.TProtocol
	trans   thrift.TRichTransport // what p reads from
	compact bool
	max     int32 // bytes: max_message_bytes
}

// withExactBinary returns p, a binary or compact protocol of the library,
// with exactBinary's ReadBinary; any other protocol unchanged.
func withExactBinary(p thrift.TProtocol, maxBytes int) thrift.TProtocol {
	var compact bool
	switch p.(type) {
	case *thrift.TBinaryProtocol:
	case *thrift.TCompactProtocol:
		compact = true
	default:
		return p
	}
	trans, ok := p.Transport().(thrift.TRichTransport)
	if !ok { // as the library's constructors do: RichTransport adds no buffer
		trans = thrift.NewTRichTransport(p.Transport())
	}
	return &exactBinary{TProtocol: p, trans: trans, compact: compact, max: int32(maxBytes)}
}

// ReadBinary reads one binary value (see exactBinary).
func (p *exactBinary) ReadBinary(ctx context.Context) ([]byte, error) {
	var size int32
	var err error
	if p.compact {
		size, err = p.readVarint32()
	} else {
		size, err = p.ReadI32(ctx)
	}
	switch {
	case err != nil:
		return nil, thrift.NewTProtocolException(err)
	case size < 0:
		return nil, thrift.NewTProtocolExceptionWithType(thrift.NEGATIVE_SIZE, fmt.Errorf("negative size: %d", size))
	case size > p.max:
		return nil, thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT, fmt.Errorf("size exceeded max allowed: %d", size))
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(p.trans, buf); err != nil {
		return nil, thrift.NewTProtocolException(err)
	}
	return buf, nil
}

// errVarint is a compact varint longer than 10 bytes.
var errVarint = errors.New("compact protocol: varint longer than 10 bytes")

// readVarint32 reads a compact protocol varint as the library does (the low
// 32 bits of a varint of up to 64), bounded to the 10 bytes a 64-bit varint takes.
func (p *exactBinary) readVarint32() (int32, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		b, err := p.trans.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return int32(v), nil
		}
	}
	return 0, thrift.NewTProtocolExceptionWithType(thrift.INVALID_DATA, errVarint)
}
