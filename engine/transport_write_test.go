package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// writeCounter counts the writes made on a real loopback connection.
type writeCounter struct {
	net.Conn
	writes atomic.Int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// A reply is written in one write syscall up to batchReplyBytes, and in as
// few as streaming allows beyond; the bytes arrive whole and in order, and the
// next reply starts from the session's own buffer again.
func TestReplyWrites(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	wc := &writeCounter{Conn: server}
	tr := newConnTransport(wc, 4096, 5*time.Second, 1<<20, false)
	for _, c := range []struct{ size, writes int }{
		{100, 1}, {10 << 10, 1}, {60 << 10, 1}, {100, 1}, {100 << 10, 3}, {1 << 20, 3},
	} {
		t.Run(fmt.Sprintf("bytes=%d", c.size), func(t *testing.T) {
			head, tail := []byte("head-30-bytes-of-a-reply-hdr.."), []byte{0, 1}
			value := make([]byte, c.size)
			for i := range value {
				value[i] = byte(i % 251)
			}
			want := bytes.Join([][]byte{head, value, tail}, nil)
			got := make(chan []byte, 1)
			go func() {
				b := make([]byte, len(want))
				io.ReadFull(client, b)
				got <- b
			}()
			before := wc.writes.Load()
			tr.beginCall()
			tr.Write(head)
			tr.Write(value)
			tr.WriteString(string(tail))
			if err := tr.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := wc.writes.Load() - before; n != int64(c.writes) {
				t.Errorf("%d writes, want %d", n, c.writes)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Errorf("the reply arrived altered (%d bytes)", len(b))
			}
			if cap(tr.wbuf) != 4096 || tr.batch != nil {
				t.Errorf("after Flush the buffer is %d bytes (batch %v), want the session's 4096", cap(tr.wbuf), tr.batch != nil)
			}
		})
	}
}
