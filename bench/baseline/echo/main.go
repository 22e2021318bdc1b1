// Command echo is the floor of make bench: a raw TCP (or unix socket) server
// that, on each connection, reads exactly -req bytes and answers exactly
// -resp bytes, over and over until the client closes. Given the byte counts
// of a Thrift call and its reply, it costs what the kernel and Go's netpoller
// cost for those bytes and nothing more: no decoding, no dispatch.
//
// Usage: echo -addr 127.0.0.1:PORT | /path/to.sock -req BYTES -resp BYTES
package main

import (
	"bufio"
	"flag"
	"io"
	"log"
	"net"
	"os"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9012", "host:port, or a unix socket path (starting with /)")
	req := flag.Int("req", 29, "bytes read per request")
	resp := flag.Int("resp", 29, "bytes written per reply")
	flag.Parse()
	network := "tcp"
	if strings.HasPrefix(*addr, "/") {
		network = "unix"
		os.Remove(*addr)
	}
	ln, err := net.Listen(network, *addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, *req, *resp)
	}
}

// serve answers each request of n bytes read from c with a reply of resp
// bytes, its own for the connection: as faed's replies of a value per
// connection come from as many buffers, which the caches hold or not.
func serve(c net.Conn, n, resp int) {
	defer c.Close()
	reply := make([]byte, resp)
	for i := range reply {
		reply[i] = 'v'
	}
	r := bufio.NewReaderSize(c, 4096)
	buf := make([]byte, n)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}
