package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkReplyWrite writes one reply per op through a session's
// connTransport onto a loopback TCP connection, as the processor does (a
// 30-byte head, the value, a 2-byte tail, Flush), while a goroutine reads
// the replies off the other end: the cost of the write syscalls a reply takes.
func BenchmarkReplyWrite(b *testing.B) {
	for _, size := range []int{100, 10 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			server, err := ln.Accept()
			if err != nil {
				b.Fatal(err)
			}
			defer server.Close()
			reply := 30 + size + 2
			drained := make(chan error, 1)
			go func() {
				_, err := io.CopyN(io.Discard, client, int64(reply)*int64(b.N))
				drained <- err
			}()
			t := newConnTransport(server, DefaultBufferSize, time.Second, 1<<20, false)
			head, value, tail := bytes.Repeat([]byte{'h'}, 30), bytes.Repeat([]byte{'v'}, size), []byte{0, 0}
			b.SetBytes(int64(reply))
			b.ReportAllocs()
			for range b.N {
				t.beginCall()
				t.Write(head)
				t.Write(value)
				t.Write(tail)
				if err := t.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-drained; err != nil {
				b.Fatal(err)
			}
		})
	}
}
