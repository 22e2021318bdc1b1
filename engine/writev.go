package engine

import (
	"net"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"
)

// refReplyBytes is the shortest slice of a reply (a binary or string value
// the protocol writes whole) that a session on a TCP or unix socket writes by
// reference instead of copying it into its reply buffer: the reply then goes
// out in one writev(2) of the buffered bytes and the referenced values. A
// 10 KB lc_get reply spent 7 % of faed's CPU copying the value (pprof of make
// bench scenario 3, lc_get 10 KB at c=64); below 2 KiB a copy costs less than
// the iovec it saves.
const refReplyBytes = 2048

// maxReplyRefs bounds the values of one reply written by reference; later
// ones are copied. A reply with more large values than this is rare (a
// map of long strings), and writev takes at most 1,024 iovecs (IOV_MAX).
const maxReplyRefs = 16

// replyRef is one value written by reference: p goes out after wbuf[:at].
type replyRef struct {
	at int
	p  []byte
}

// vectored reports whether conn writes net.Buffers with one writev(2): the
// net package's TCP and unix connections do; a wrapped connection would
// take one write per buffer, so it gets copies instead.
func vectored(conn net.Conn) bool {
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// writeRef records p as the next part of the reply without copying it; it
// reports false when p is to be copied (short, not a vectored connection, or
// maxReplyRefs reached). The caller's slice must stay unchanged until the
// reply is written: Flush writes a reply with references at once (never
// held back for a pipelined batch), so p is read before the processor
// returns, as a copy would have been. Values a servant returns are not
// reused by it after it returns (lcache values are immutable, query cache
// entries and backend replies are the call's own).
func (t *connTransport) writeRef(p []byte) bool {
	if len(p) < refReplyBytes || !t.vectored || len(t.refs) == maxReplyRefs {
		return false
	}
	t.refs = append(t.refs, replyRef{at: len(t.wbuf), p: p})
	return true
}

// writeRefString is writeRef of a string's bytes (strings are immutable).
func (t *connTransport) writeRefString(s string) bool {
	if len(s) < refReplyBytes {
		return false
	}
	return t.writeRef(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// writeVectored writes wbuf with the references in their places, in one
// writev(2) (more only if the socket takes part of it), and forgets the
// references.
func (t *connTransport) writeVectored() error {
	iov, from := t.iov[:0], 0
	for _, r := range t.refs {
		if r.at > from {
			iov = append(iov, t.wbuf[from:r.at])
		}
		iov = append(iov, r.p)
		from = r.at
	}
	if from < len(t.wbuf) {
		iov = append(iov, t.wbuf[from:])
	}
	t.iov, t.iovOut = iov, iov
	var err error
	if t.raw != nil {
		err = t.sockWritev() // lazy deadline: armed only if the socket is full
	} else {
		_, err = t.iovOut.WriteTo(t.conn) // consumes iovOut, not iov (a field: no allocation)
	}
	clear(t.iov)
	clear(t.refs)
	t.refs = t.refs[:0]
	if err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	return nil
}
