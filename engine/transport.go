package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// connTransport is the thrift.TTransport of one session: a buffered net.Conn that
// enforces the per-call limits. The session calls beginCall when a request's first
// byte has arrived; from then on reads are bounded by maxBytes, and the reply's
// first write arms the write deadline (io_timeout covers reading the request and
// writing the reply, not the servant's work in between).
type connTransport struct {
	conn      net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	ioTimeout time.Duration
	maxBytes  int

	read    int  // bytes read for the current call
	writing bool // the reply of the current call has started
}

// errMessageTooLarge ends a session whose request is longer than max_message_bytes.
type errMessageTooLarge struct{ limit int }

func (e errMessageTooLarge) Error() string {
	return fmt.Sprintf("message exceeds max_message_bytes (%d bytes)", e.limit)
}

func newConnTransport(conn net.Conn, bufSize int, ioTimeout time.Duration, maxBytes int) *connTransport {
	return &connTransport{
		conn:      conn,
		br:        bufio.NewReaderSize(conn, bufSize),
		bw:        bufio.NewWriterSize(conn, bufSize),
		ioTimeout: ioTimeout,
		maxBytes:  maxBytes,
	}
}

// beginCall resets the per-call state and arms the read deadline.
func (t *connTransport) beginCall() {
	t.read, t.writing = 0, false
	if t.ioTimeout > 0 {
		t.conn.SetReadDeadline(time.Now().Add(t.ioTimeout))
	}
}

// checkUnversionedHead rejects at once an unframed binary-protocol request that
// starts with an unversioned method-name length over maxBytes (such as an HTTP
// request sent to the RPC port: "GET " reads as 1.2 GB), instead of waiting for
// those bytes until io_timeout. Versioned heads (top bit set) pass.
func (t *connTransport) checkUnversionedHead() error {
	head, err := t.br.Peek(4)
	if err != nil {
		return nil // the protocol reports it
	}
	if n := int32(binary.BigEndian.Uint32(head)); n >= 0 && int(n) > t.maxBytes {
		return thrift.NewTTransportExceptionFromError(errMessageTooLarge{t.maxBytes})
	}
	return nil
}

func (t *connTransport) Read(p []byte) (int, error) {
	if left := t.maxBytes - t.read; len(p) > left {
		if left <= 0 {
			return 0, thrift.NewTTransportExceptionFromError(errMessageTooLarge{t.maxBytes})
		}
		p = p[:left]
	}
	n, err := t.br.Read(p)
	t.read += n
	if err != nil {
		return n, thrift.NewTTransportExceptionFromError(err)
	}
	return n, nil
}

func (t *connTransport) Write(p []byte) (int, error) {
	if !t.writing {
		t.writing = true
		if t.ioTimeout > 0 {
			t.conn.SetWriteDeadline(time.Now().Add(t.ioTimeout))
		}
	}
	n, err := t.bw.Write(p)
	if err != nil {
		return n, thrift.NewTTransportExceptionFromError(err)
	}
	return n, nil
}

func (t *connTransport) Flush(context.Context) error {
	if err := t.bw.Flush(); err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	return nil
}

func (t *connTransport) ReadByte() (byte, error) {
	if t.read >= t.maxBytes {
		return 0, thrift.NewTTransportExceptionFromError(errMessageTooLarge{t.maxBytes})
	}
	b, err := t.br.ReadByte()
	if err != nil {
		return 0, thrift.NewTTransportExceptionFromError(err)
	}
	t.read++
	return b, nil
}

func (t *connTransport) WriteByte(c byte) error {
	_, err := t.Write([]byte{c})
	return err
}

func (t *connTransport) WriteString(s string) (int, error) {
	if !t.writing {
		return t.Write([]byte(s))
	}
	n, err := t.bw.WriteString(s)
	if err != nil {
		return n, thrift.NewTTransportExceptionFromError(err)
	}
	return n, nil
}

func (t *connTransport) Close() error           { return t.conn.Close() }
func (t *connTransport) Open() error            { return nil }
func (t *connTransport) IsOpen() bool           { return true }
func (t *connTransport) RemainingBytes() uint64 { return ^uint64(0) }
