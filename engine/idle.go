package engine

import (
	"bufio"
	"sync"
	"syscall"
)

// idleBuffers are a server's pools of session buffers of buffer_size bytes:
// read buffers (a bufio.Reader each) and reply buffers. A session waiting for
// its next call gives both back and waits for its client's bytes without
// one (waitReadable), so an idle session holds no buffer: 10,000 idle
// sessions held 14.8 KiB each before, most of it these two buffers
// (make bench scenario 7). Safe for concurrent use.
type idleBuffers struct {
	size    int
	readers sync.Pool // *bufio.Reader of size bytes, reading nothing
	writers sync.Pool // *[]byte, cap size, len 0
	kits    sync.Pool // *connTransport of ended sessions, recycled (see recycle)
}

func newIdleBuffers(size int) *idleBuffers {
	b := &idleBuffers{size: size}
	b.readers.New = func() any { return bufio.NewReaderSize(nil, size) }
	b.writers.New = func() any { w := make([]byte, 0, size); return &w }
	return b
}

// release gives t's buffers back to t.bufs while nothing is buffered either
// way (no request bytes read ahead, no reply held back or being written);
// it reports whether it did.
func (t *connTransport) release() bool {
	if t.bufs == nil || t.br == nil || t.br.Buffered() > 0 || t.deferred || t.batch != nil || len(t.wbuf) > 0 || len(t.refs) > 0 {
		return false
	}
	t.br.Reset(nil)
	t.bufs.readers.Put(t.br)
	t.br = nil
	if t.small != nil {
		p := t.smallBox
		if p == nil { // a buffer made here, not taken from the pool
			p = new([]byte)
		}
		*p = t.small[:0]
		t.bufs.writers.Put(p)
		t.small, t.wbuf, t.smallBox = nil, nil, nil
	}
	return true
}

// recycle puts t, whose session has ended with its buffers released, into
// t.bufs.kits for a next session (newPooledConnTransport), keeping only what
// belongs to t itself and no session: its protocol objects (bound to t) and
// its bound read and write funcs. The caller must not use t after it.
func (t *connTransport) recycle() {
	if t.bufs == nil || t.br != nil || t.small != nil {
		return // not pooled, or not released: left to the collector
	}
	*t = connTransport{bufs: t.bufs, proto: t.proto, readFn: t.readFn, writeFn: t.writeFn, writevFn: t.writevFn}
	t.bufs.kits.Put(t)
}

// acquire gives t a read buffer again after release.
func (t *connTransport) acquire() {
	if t.br == nil {
		br := t.bufs.readers.Get().(*bufio.Reader)
		br.Reset(flushFirst{t})
		t.br = br
	}
}

// smallBuffer gives t its reply buffer after release, on the call's first write.
func (t *connTransport) smallBuffer() {
	if t.bufs != nil {
		t.smallBox = t.bufs.writers.Get().(*[]byte)
		t.small = (*t.smallBox)[:0]
	} else {
		t.small = make([]byte, 0, defaultSmall)
	}
	t.wbuf = t.small
}

// defaultSmall is the reply buffer of a transport made without pools that
// lost its own (not expected: only pooled transports release theirs).
const defaultSmall = 4096

// waitReadable waits, holding no buffer, until the connection has bytes to
// read or has ended (or its read deadline passes, or it is closed): a
// non-blocking peek that the runtime's poller calls again whenever the
// socket becomes readable.
func waitReadable(raw syscall.RawConn) error {
	return raw.Read(func(fd uintptr) bool { return peek(fd) != peekEmpty })
}
