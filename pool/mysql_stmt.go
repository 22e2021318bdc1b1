package pool

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// stmtCache is one server's cache of prepared statements, keyed by SQL text,
// at most size entries (LRU). Concurrent first uses of one text prepare it once;
// an evicted statement is closed only when no call uses it any more (the
// original closed statements in use). Safe for concurrent use.
type stmtCache struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[string, *stmtEntry]
	prepares atomic.Int64 // statements prepared on the server
	closes   atomic.Int64 // statements closed after eviction
}

type stmtEntry struct {
	stmt    *sql.Stmt
	err     error
	ready   chan struct{} // closed once prepared (or failed)
	refs    int           // calls using it; guarded by stmtCache.mu
	evicted bool          // no longer in the LRU; guarded by stmtCache.mu
}

func newStmtCache(size int) *stmtCache {
	c := &stmtCache{}
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

// acquire returns the prepared statement for query, preparing it on db at its
// first use; release it when done.
func (c *stmtCache) acquire(ctx context.Context, db *sql.DB, query string) (*stmtEntry, error) {
	c.mu.Lock()
	if e, ok := c.lru.Get(query); ok {
		e.refs++
		c.mu.Unlock()
		<-e.ready
		if e.err != nil {
			c.release(e)
			return nil, e.err
		}
		return e, nil
	}
	e := &stmtEntry{ready: make(chan struct{}), refs: 1}
	c.lru.Add(query, e)
	c.mu.Unlock()

	c.prepares.Add(1)
	e.stmt, e.err = db.PrepareContext(ctx, query)
	close(e.ready)
	if e.err != nil {
		c.mu.Lock()
		if cur, ok := c.lru.Peek(query); ok && cur == e {
			c.lru.Remove(query) // do not keep a failure; the next call tries again
		}
		c.mu.Unlock()
		err := e.err
		c.release(e)
		return nil, err
	}
	return e, nil
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
