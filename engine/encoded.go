package engine

import "github.com/apache/thrift/lib/go/thrift"

// BinaryTransport returns the transport under oprot when oprot is a session's
// output protocol (as the engine hands it to the processor) speaking the
// binary protocol: bytes already encoded in the binary protocol, such as a
// struct kept in a cache, may then be written to it as they are, between the
// protocol's own writes (TBinaryProtocol buffers nothing of its own). It
// returns nil for any other protocol (compact, or one the engine did not
// make), whose caller must write the value through the protocol instead.
// A protocol wrapped by a processor middleware is seen through when the
// wrapper has an Unwrap method returning the protocol it wraps.
func BinaryTransport(oprot thrift.TProtocol) thrift.TTransport {
	for {
		switch p := oprot.(type) {
		case *replyCounter:
			oprot = p.TProtocol
		case *exactBinary:
			if _, ok := p.TProtocol.(*thrift.TBinaryProtocol); ok {
				return p.TProtocol.Transport()
			}
			return nil
		case *thrift.TBinaryProtocol:
			return p.Transport()
		case interface{ Unwrap() thrift.TProtocol }:
			oprot = p.Unwrap()
		default:
			return nil
		}
	}
}
