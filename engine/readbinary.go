package engine

import (
	"context"
	"encoding/binary"
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
	max     int32          // bytes: max_message_bytes
	ct      *connTransport // trans, when the binary protocol reads it unframed: the buffered fast path
	// names are the service's method names (Server.methodNames), each its own
	// key: a message head naming one gives that string, not a new one (the
	// name's allocation was 0.19 µs of a pipelined Redis GET's 11.7, 1.7 %).
	names map[string]string
}

// withExactBinary returns p, a binary or compact protocol of the library,
// with exactBinary's ReadBinary; any other protocol unchanged. names (nil =
// none) are the method names a message head may give without an allocation.
func withExactBinary(p thrift.TProtocol, maxBytes int, names map[string]string) thrift.TProtocol {
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
	e := &exactBinary{TProtocol: p, trans: trans, compact: compact, max: int32(maxBytes), names: names}
	if ct, ok := trans.(*connTransport); ok && !compact && !ct.framed {
		e.ct = ct
	}
	return e
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
		return nil, p.tooLong("a binary", size)
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

// The reads below are the binary protocol's, taken straight from the session's
// read buffer when the bytes are already there (nearly always: a request
// arrives whole in one read of buffer_size), instead of through io.ReadFull,
// connTransport.Read and bufio.Reader.Read per value: a my_query request of
// about 30 values decoded that way cost some 2 µs of faed's CPU (pprof of make
// bench scenario 4). When the bytes are not all buffered, or the session is
// framed or compact, the library's read runs as before; the checks and errors
// are the library's either way (the fast path takes only what they accept).

// buffered returns the next n bytes of the request when the session reads
// the binary protocol unframed and they are in its buffer within the call's
// max_message_bytes; nil otherwise.
func (p *exactBinary) buffered(n int) []byte {
	if p.ct == nil {
		return nil
	}
	return p.ct.buffered(n)
}

func (p *exactBinary) ReadBool(ctx context.Context) (bool, error) {
	if b := p.buffered(1); b != nil {
		p.ct.consume(1)
		return b[0] == 1, nil
	}
	return p.TProtocol.ReadBool(ctx)
}

func (p *exactBinary) ReadI16(ctx context.Context) (int16, error) {
	if b := p.buffered(2); b != nil {
		p.ct.consume(2)
		return int16(binary.BigEndian.Uint16(b)), nil
	}
	return p.TProtocol.ReadI16(ctx)
}

func (p *exactBinary) ReadI32(ctx context.Context) (int32, error) {
	if b := p.buffered(4); b != nil {
		p.ct.consume(4)
		return int32(binary.BigEndian.Uint32(b)), nil
	}
	return p.TProtocol.ReadI32(ctx)
}

func (p *exactBinary) ReadI64(ctx context.Context) (int64, error) {
	if b := p.buffered(8); b != nil {
		p.ct.consume(8)
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return p.TProtocol.ReadI64(ctx)
}

func (p *exactBinary) ReadFieldBegin(ctx context.Context) (string, thrift.TType, int16, error) {
	if b := p.buffered(1); b != nil && thrift.TType(b[0]) == thrift.STOP {
		p.ct.consume(1)
		return "", thrift.STOP, 0, nil
	}
	if b := p.buffered(3); b != nil {
		p.ct.consume(3)
		return "", thrift.TType(b[0]), int16(binary.BigEndian.Uint16(b[1:])), nil
	}
	return p.TProtocol.ReadFieldBegin(ctx)
}

func (p *exactBinary) ReadListBegin(ctx context.Context) (thrift.TType, int, error) {
	if b := p.buffered(5); b != nil {
		if size := int32(binary.BigEndian.Uint32(b[1:])); size >= 0 && size <= p.max {
			p.ct.consume(5)
			return thrift.TType(b[0]), int(size), p.checkCount("list", thrift.TType(b[0]), thrift.STOP, int(size))
		}
	}
	elem, size, err := p.TProtocol.ReadListBegin(ctx)
	if err == nil {
		err = p.checkCount("list", elem, thrift.STOP, size)
	}
	return elem, size, err
}

func (p *exactBinary) ReadSetBegin(ctx context.Context) (thrift.TType, int, error) {
	elem, size, err := p.TProtocol.ReadSetBegin(ctx)
	if err == nil {
		err = p.checkCount("set", elem, thrift.STOP, size)
	}
	return elem, size, err
}

func (p *exactBinary) ReadMapBegin(ctx context.Context) (thrift.TType, thrift.TType, int, error) {
	key, value, size, err := p.TProtocol.ReadMapBegin(ctx)
	if err == nil {
		err = p.checkCount("map", key, value, size)
	}
	return key, value, size, err
}

// checkCount refuses (SIZE_LIMIT, naming max_message_bytes) a list, set or
// map whose declared count of elements of type elem (and value, for a map;
// STOP otherwise) takes more than max_message_bytes either on the wire, at
// the fewest bytes an element can take, or in memory, where the generated
// code allocates room for them all (make(T, 0, count)) before their first
// byte arrives. The library checks the count itself against
// max_message_bytes, a number of bytes: a list header of 60 bytes declaring
// 16 million lists made faed allocate 384 MB at once (found by a hostile
// client's review); now the memory taken before the bytes arrive is at most
// memPerMessageByte × max_message_bytes per container.
func (p *exactBinary) checkCount(what string, elem, value thrift.TType, count int) error {
	wire, mem := p.elemSize(elem)
	if value != thrift.STOP {
		vw, vm := p.elemSize(value)
		wire, mem = wire+vw, mem+vm+8 // a map entry: its key, its value, and about a word of the map's own
	}
	max := int64(p.max)
	if n := int64(count); n*int64(wire) > max || n*int64(mem) > memPerMessageByte*max {
		return thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT, fmt.Errorf(
			"a %s of %d elements (at least %d bytes on the wire, %d in memory) exceeds max_message_bytes (%d bytes; %d in memory)",
			what, count, n*int64(wire), n*int64(mem), max, memPerMessageByte*max))
	}
	return nil
}

// memPerMessageByte is how many bytes of memory checkCount lets a container
// take for each byte of max_message_bytes: a list<string> of short strings
// takes 16 bytes a string in Go against 4 or more on the wire, and a bound
// of 1 refused an rd_call MSET of 550,000 pairs of 8-byte keys and values
// (13.2 MB on the wire, under the default 16 MiB; found by review).
const memPerMessageByte = 4

// elemSize is the fewest bytes an element of type t takes on the wire in the
// session's protocol, and the bytes the generated Go code holds for it in a
// slice or map (a string or binary's header, a struct's pointer, a list's
// slice header, a map's pointer).
func (p *exactBinary) elemSize(t thrift.TType) (wire, mem int) {
	switch t {
	case thrift.BOOL, thrift.BYTE:
		return 1, 1
	case thrift.I16:
		return p.fixedOrVarint(2), 2
	case thrift.I32:
		return p.fixedOrVarint(4), 4
	case thrift.I64:
		return p.fixedOrVarint(8), 8
	case thrift.DOUBLE:
		return 8, 8
	case thrift.STRING:
		return p.fixedOrVarint(4), 16
	case thrift.STRUCT:
		return 1, 8 // its field STOP
	case thrift.MAP:
		return p.fixedOrVarint(6), 8
	case thrift.SET, thrift.LIST:
		return p.fixedOrVarint(5), 24
	}
	return 1, 8
}

// fixedOrVarint is n, the bytes of a fixed-size field of the binary
// protocol, or 1 in the compact protocol, where it is a varint.
func (p *exactBinary) fixedOrVarint(n int) int {
	if p.compact {
		return 1
	}
	return n
}

// tooLong is the error of a string or binary (what) of size bytes, over
// max_message_bytes: the library's kind (SIZE_LIMIT), naming the limit.
func (p *exactBinary) tooLong(what string, size int32) error {
	return thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT, fmt.Errorf(
		"%s of %d bytes exceeds max_message_bytes (%d bytes)", what, size, p.max))
}

func (p *exactBinary) ReadString(ctx context.Context) (string, error) {
	if b := p.buffered(4); b != nil {
		size := int32(binary.BigEndian.Uint32(b))
		if size > p.max {
			return "", p.tooLong("a string", size)
		}
		if size >= 0 {
			if b := p.buffered(4 + int(size)); b != nil {
				s := string(b[4:])
				p.ct.consume(4 + int(size))
				return s, nil
			}
		}
	}
	return p.TProtocol.ReadString(ctx)
}

// knownName reads a message head's name from the buffer when it is one of
// names: that string, true; else nothing is read.
func (p *exactBinary) knownName() (string, bool) {
	b := p.buffered(4)
	if b == nil || len(p.names) == 0 {
		return "", false
	}
	size := int32(binary.BigEndian.Uint32(b))
	if size < 0 || size > p.max {
		return "", false
	}
	if b = p.buffered(4 + int(size)); b == nil {
		return "", false
	}
	name, ok := p.names[string(b[4:])] // no allocation: the compiler looks the bytes up as they are
	if ok {
		p.ct.consume(4 + int(size))
	}
	return name, ok
}

// ReadMessageBegin reads a message head (readMessageBegin) and refuses one
// that is not a call (INVALID_DATA, ending the session): a REPLY or
// EXCEPTION is no request, and FunServant has no oneway method, so a ONEWAY
// call would get a reply its client does not read, and read it as the reply
// of its next call. The library runs them all as calls (found by a hostile
// client's review).
func (p *exactBinary) ReadMessageBegin(ctx context.Context) (string, thrift.TMessageType, int32, error) {
	name, typ, seq, err := p.readMessageBegin(ctx)
	if err == nil && typ != thrift.CALL {
		err = thrift.NewTProtocolExceptionWithType(thrift.INVALID_DATA, fmt.Errorf(
			"message %s of type %d (%s): faed takes calls (type 1) only, and FunServant has no oneway method", name, typ, messageTypeName(typ)))
	}
	return name, typ, seq, err
}

// messageTypeName names a Thrift message type.
func messageTypeName(t thrift.TMessageType) string {
	switch t {
	case thrift.CALL:
		return "CALL"
	case thrift.REPLY:
		return "REPLY"
	case thrift.EXCEPTION:
		return "EXCEPTION"
	case thrift.ONEWAY:
		return "ONEWAY"
	}
	return "unknown"
}

// readMessageBegin reads a strict (versioned) message head from the buffer;
// anything else (an unversioned head, bytes still to come) the library reads.
func (p *exactBinary) readMessageBegin(ctx context.Context) (string, thrift.TMessageType, int32, error) {
	b := p.buffered(4)
	if b == nil || int32(binary.BigEndian.Uint32(b)) >= 0 {
		return p.TProtocol.ReadMessageBegin(ctx)
	}
	head := int32(binary.BigEndian.Uint32(b))
	typeID := thrift.TMessageType(head & 0x0ff)
	if int64(head)&thrift.VERSION_MASK != thrift.VERSION_1 {
		return p.TProtocol.ReadMessageBegin(ctx) // the library's BAD_VERSION
	}
	p.ct.consume(4)
	name, ok := p.knownName()
	if !ok {
		var err error
		if name, err = p.ReadString(ctx); err != nil {
			return name, typeID, 0, thrift.NewTProtocolException(err)
		}
	}
	seqID, err := p.ReadI32(ctx)
	if err != nil {
		return name, typeID, seqID, thrift.NewTProtocolException(err)
	}
	return name, typeID, seqID, nil
}
