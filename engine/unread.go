package engine

import "github.com/apache/thrift/lib/go/thrift"

// Unread is the part of the request being processed that its session holds
// in its read buffer, not yet read by the protocol: for a processor that
// decodes the arguments of a frequent call from those bytes itself instead
// of through the generated code (servant's my_query cache hits). The bytes
// are the session's buffer: they stay as they are only until the session
// next reads its connection, which it does after the call, or for the
// client's state when the call is watched (WatchClient): a caller copies
// what it keeps, and what it still needs before it waits on a backend.
type Unread struct{ t *connTransport }

// UnreadOf returns the Unread of iprot when iprot is a session's input
// protocol speaking the binary protocol unframed (the only one whose bytes
// are the values' own); the zero Unread otherwise. A protocol wrapped by a
// processor middleware is seen through when the wrapper has an Unwrap
// method returning the protocol it wraps.
func UnreadOf(iprot thrift.TProtocol) Unread {
	for {
		switch p := iprot.(type) {
		case *exactBinary:
			return Unread{p.ct} // nil unless binary and unframed
		case interface{ Unwrap() thrift.TProtocol }:
			iprot = p.Unwrap()
		default:
			return Unread{}
		}
	}
}

// Bytes returns the request's bytes buffered and not yet read, at most what
// the call may still read under max_message_bytes; nil for the zero Unread.
// The request may go on past them (a request longer than the buffer): a
// decoder that runs out of them leaves the request to the protocol.
func (u Unread) Bytes() []byte {
	if u.t == nil || u.t.framed {
		return nil
	}
	n := min(u.t.br.Buffered(), u.t.maxBytes-u.t.read)
	if n <= 0 {
		return nil
	}
	b, _ := u.t.br.Peek(n)
	return b
}

// Discard marks the first n bytes of Bytes read.
func (u Unread) Discard(n int) { u.t.consume(n) }
