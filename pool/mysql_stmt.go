package pool

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// defaultPrepareTimeout bounds a prepare when query_timeout is 0 (none): the
// default query_timeout.
const defaultPrepareTimeout = 60 * time.Second

// prepareTimeout is the bound of one prepare: query_timeout, or defaultPrepareTimeout.
func prepareTimeout(queryTimeout time.Duration) time.Duration {
	if queryTimeout > 0 {
		return queryTimeout
	}
	return defaultPrepareTimeout
}

// stmtCache is one server's cache of prepared statements, keyed by SQL text,
// at most size entries (LRU). Concurrent first uses of one text prepare it
// once, under a ctx of the prepare's own bounded by timeout, so that a caller
// who gives up fails alone, not every caller waiting for the same prepare
// (each waits with its own ctx). An evicted statement is closed only when no
// call uses it any more (the original closed statements in use). Safe for
// concurrent use.
type stmtCache struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[string, *stmtEntry]
	prepare  func(ctx context.Context, query string) (*sql.Stmt, error)
	timeout  time.Duration
	prepares atomic.Int64 // statements prepared on the server
	closes   atomic.Int64 // statements closed after eviction
}

type stmtEntry struct {
	stmt    *sql.Stmt     // set under stmtCache.mu before ready is closed
	err     error         // likewise
	ready   chan struct{} // closed once prepared (or failed)
	refs    int           // calls using it; guarded by stmtCache.mu
	evicted bool          // no longer in the LRU; guarded by stmtCache.mu
}

func newStmtCache(size int, prepare func(ctx context.Context, query string) (*sql.Stmt, error), timeout time.Duration) *stmtCache {
	c := &stmtCache{prepare: prepare, timeout: timeout}
	c.lru, _ = simplelru.NewLRU[string, *stmtEntry](size, func(_ string, e *stmtEntry) {
		e.evicted = true // called with c.mu held
		c.closeIfUnused(e)
	})
	return c
}

// closeIfUnused closes e's statement when it is evicted, prepared and unused; c.mu held.
func (c *stmtCache) closeIfUnused(e *stmtEntry) {
	if e.evicted && e.refs == 0 && e.stmt != nil {
		c.closes.Add(1)
		e.stmt.Close()
		e.stmt = nil
	}
}

// acquire returns the prepared statement for query, preparing it at its first
// use; release it when done. It returns ctx's error if ctx ends first, or the
// prepare's error.
func (c *stmtCache) acquire(ctx context.Context, query string) (*stmtEntry, error) {
	c.mu.Lock()
	e, ok := c.lru.Get(query)
	if !ok {
		e = &stmtEntry{ready: make(chan struct{})}
		c.lru.Add(query, e)
		go c.prepareEntry(context.WithoutCancel(ctx), query, e)
	}
	e.refs++
	c.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		c.release(e)
		return nil, ctx.Err()
	}
	if e.err != nil {
		c.release(e)
		return nil, e.err
	}
	return e, nil
}

// prepareEntry prepares e under ctx (detached from any caller) bounded by the
// cache's timeout. A failure is not kept: the next call tries again.
func (c *stmtCache) prepareEntry(ctx context.Context, query string, e *stmtEntry) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	c.prepares.Add(1)
	stmt, err := c.prepare(ctx, query)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.stmt, e.err = stmt, err
	close(e.ready)
	if err != nil {
		if cur, ok := c.lru.Peek(query); ok && cur == e {
			c.lru.Remove(query)
		}
		return
	}
	c.closeIfUnused(e) // evicted while it was prepared, and nobody waits for it
}

func (c *stmtCache) release(e *stmtEntry) {
	c.mu.Lock()
	e.refs--
	c.closeIfUnused(e)
	c.mu.Unlock()
}

// purge closes every unused statement and forgets all; statements in use are
// closed when released.
func (c *stmtCache) purge() {
	c.mu.Lock()
	c.lru.Purge()
	c.mu.Unlock()
}

// Len is the number of cached statements.
func (c *stmtCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
