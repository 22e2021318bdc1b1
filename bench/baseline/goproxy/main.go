// Command goproxy is the Go floor of make bench's proxied Redis GET (scenario
// 5): the least a goroutine-per-connection Go proxy does for one call. On
// each client connection it reads exactly -req bytes (the bytes of faed's
// rd_call GET), sends "GET -key" to Redis on one connection shared by every
// client and pipelined (the commands queued while a batch is out go in the
// next write, sent by the reader goroutine once the batch's last reply is
// read, as faed's pool/redis_pipe.go does), waits for its reply, checks its
// length, and answers exactly -resp bytes (the bytes of faed's reply). No
// Thrift decoding, no dispatch, no breaker, no metrics: what is left is what
// Go's netpoller, its scheduler (a goroutine per client, one hand-off per
// reply) and the kernel cost. faed's ratio to it is what faed's own code
// adds; its ratio to twemproxy (one thread, epoll, no hand-off) is what a Go
// design pays before any code of faed runs.
//
// Usage: goproxy -addr 127.0.0.1:PORT -redis 127.0.0.1:PORT -key KEY -size BYTES -req BYTES -resp BYTES
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9013", "host:port to listen on")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis host:port")
	key := flag.String("key", "bench:proxy:key", "the key every call GETs")
	size := flag.Int("size", 100, "bytes of the key's value: a reply of another length ends the process")
	req := flag.Int("req", 64, "bytes read per request")
	resp := flag.Int("resp", 64, "bytes written per reply")
	flag.Parse()
	rc, err := net.Dial("tcp", *redisAddr)
	if err != nil {
		log.Fatal(err)
	}
	p := &pipe{conn: rc, cmd: fmt.Appendf(nil, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(*key), *key), size: *size, batches: make(chan []*waiter, 1)}
	go p.read()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, p, *req, *resp)
	}
}

// serve answers each request of n bytes read from c with a reply of resp
// bytes once Redis has answered its GET.
func serve(c net.Conn, p *pipe, n, resp int) {
	defer c.Close()
	reply := make([]byte, resp)
	r := bufio.NewReaderSize(c, 4096)
	buf := make([]byte, n)
	w := &waiter{done: make(chan struct{}, 1), value: make([]byte, p.size)}
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		p.get(w)
		copy(reply, w.value)
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// waiter is one client's call: done is signalled once its reply is in value.
type waiter struct {
	done  chan struct{}
	value []byte
}

// pipe is the shared Redis connection: one batch of GETs in flight at a time.
type pipe struct {
	conn    net.Conn
	cmd     []byte // the GET, in RESP
	size    int
	batches chan []*waiter // the batch written, for the reader

	mu       sync.Mutex
	inFlight bool
	queue    []*waiter // the GETs waiting for the next write
	out      []byte    // the next write's bytes
}

// get sends w's GET, at once when no batch is out (else the reader sends it
// with the next batch), and waits for its reply.
func (p *pipe) get(w *waiter) {
	p.mu.Lock()
	p.queue = append(p.queue, w)
	if p.inFlight {
		p.mu.Unlock()
		<-w.done
		return
	}
	p.inFlight = true
	p.send() // unlocks
	<-w.done
}

// send writes the queued GETs as one batch and hands the batch to the
// reader; called with mu held, it unlocks.
func (p *pipe) send() {
	batch := p.queue
	p.queue = nil
	out := p.out[:0]
	for range batch {
		out = append(out, p.cmd...)
	}
	p.out = out
	p.mu.Unlock()
	p.batches <- batch
	if _, err := p.conn.Write(out); err != nil {
		log.Fatal(err)
	}
}

// read reads each batch's replies in order, hands each to its waiter, then
// writes the GETs queued meanwhile as the next batch.
func (p *pipe) read() {
	br := bufio.NewReaderSize(p.conn, 64<<10)
	for batch := range p.batches {
		for _, w := range batch {
			if err := p.readValue(br, w.value); err != nil {
				log.Fatal(err)
			}
			w.done <- struct{}{}
		}
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.inFlight = false
			p.mu.Unlock()
			continue
		}
		p.send()
	}
}

// readValue reads one bulk-string reply of exactly len(value) bytes into value.
func (p *pipe) readValue(br *bufio.Reader, value []byte) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 4 || line[0] != '$' {
		return fmt.Errorf("reply %q: not a bulk string", line)
	}
	n, err := strconv.Atoi(string(line[1 : len(line)-2]))
	if err != nil || n != len(value) {
		return fmt.Errorf("reply %q: want a value of %d bytes", line, len(value))
	}
	if _, err := io.ReadFull(br, value); err != nil {
		return err
	}
	crlf, err := br.Discard(2)
	if err == nil && crlf != 2 {
		err = errors.New("short reply")
	}
	return err
}
