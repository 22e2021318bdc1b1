package pool

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Kinds of memcache failure. Every error of Memcache is a *BackendError (Backend "memcache") whose
// Kind is one of these (or ErrBreakerOpen); errors.Is matches them.
var (
	// ErrMemcacheMiss: the key is absent (get, increment).
	ErrMemcacheMiss = errors.New("cache miss")
	// ErrMemcacheUnknownPool: the pool is not in servants.memcache.servers.
	ErrMemcacheUnknownPool = errors.New("unknown pool")
	// ErrMemcacheBadKey: the key is empty, longer than 250 bytes, or has a control or space byte.
	ErrMemcacheBadKey = errors.New("invalid key")
	// ErrMemcacheNotNumeric: increment of a value that is not a decimal number.
	ErrMemcacheNotNumeric = errors.New("value is not a decimal number")
	// ErrMemcacheRejected: memcached answered with another error (CLIENT_ERROR,
	// SERVER_ERROR, e.g. an item larger than its item size limit).
	ErrMemcacheRejected = errors.New("server rejected the command")
	// ErrMemcacheConnLimit: max_conns_per_server connections to the server were busy
	// for timeout. Not a server failure: the breaker does not count it.
	ErrMemcacheConnLimit = errors.New("all connections busy")
	// ErrMemcacheServer: dialling, writing or reading failed or timed out; counted by the breaker.
	ErrMemcacheServer = errors.New("server failure")

	// errMemcacheNotStored: add of a key that exists (Add answers false, no error).
	errMemcacheNotStored = errors.New("not stored")
)

// MemcacheStats are the counters of one memcache pool, updated atomically.
// Each failure kind has its own counter.
type MemcacheStats struct {
	Calls          atomic.Int64 // operations asked of the pool
	Hits           atomic.Int64 // gets answered with a value
	Misses         atomic.Int64 // gets, deletes and increments of an absent key
	NotStored      atomic.Int64 // adds of a key that exists
	BadKeys        atomic.Int64 // keys refused before any server was asked
	NotNumeric     atomic.Int64 // increments of a non-numeric value
	Rejected       atomic.Int64 // other error replies of memcached
	ServerFailures atomic.Int64 // dial, read or write failures and timeouts (counted by the breaker)
	BreakerOpen    atomic.Int64 // server operations refused by an open breaker
	ConnLimit      atomic.Int64 // server operations that found max_conns_per_server busy for timeout
	ReplicaReads   atomic.Int64 // gets answered by a replica because the key's own server did not answer
}

// count adds one to the counter of kind (nil = no failure).
func (st *MemcacheStats) count(kind error) {
	switch kind {
	case ErrMemcacheMiss:
		st.Misses.Add(1)
	case errMemcacheNotStored:
		st.NotStored.Add(1)
	case ErrMemcacheNotNumeric:
		st.NotNumeric.Add(1)
	case ErrMemcacheRejected:
		st.Rejected.Add(1)
	case ErrMemcacheServer:
		st.ServerFailures.Add(1)
	case ErrBreakerOpen:
		st.BreakerOpen.Add(1)
	case ErrMemcacheConnLimit:
		st.ConnLimit.Add(1)
	}
}

// mcServer is one memcached server of one pool: a gomemcache client of its own
// (so that the pool, not gomemcache, picks the server), a cap on open
// connections (gomemcache has none) and a breaker.
type mcServer struct {
	addr    string
	client  *memcache.Client
	slots   chan struct{} // one token per open connection allowed
	timeout time.Duration
	breaker *legacyBreaker
}

func newMcServer(addr string, cfg MemcacheConfig) *mcServer {
	c := memcache.NewFromSelector(mcAddr(addr))
	c.Timeout = cfg.Timeout
	c.MaxIdleConns = cfg.MaxIdleConnsPerServer
	return &mcServer{addr: addr, client: c, slots: make(chan struct{}, cfg.MaxConnsPerServer),
		timeout: cfg.Timeout, breaker: newLegacyBreaker("memcache", addr, cfg.Breaker)}
}

// do runs op on the server: it takes a connection slot, waiting up to timeout
// (ErrMemcacheConnLimit, which the breaker never sees), then runs op through the
// breaker. It returns the kind of the outcome (nil = success) and the cause.
func (s *mcServer) do(op func(*memcache.Client) error) (kind, cause error) {
	select {
	case s.slots <- struct{}{}:
	default:
		t := time.NewTimer(s.timeout)
		select {
		case s.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			return ErrMemcacheConnLimit, fmt.Errorf("%d connections busy for %s", cap(s.slots), s.timeout)
		}
	}
	err := s.breaker.Do(func() error { return op(s.client) }, mcIsFailure)
	<-s.slots
	kind = mcKind(err)
	switch kind {
	case nil, ErrMemcacheMiss, errMemcacheNotStored, ErrBreakerOpen:
		return kind, nil
	case ErrMemcacheServer:
		// The server failed: its idle connections may be dead too (a restarted
		// server resets them); drop them so that the next calls dial afresh.
		s.client.Close()
	}
	return kind, mcCause(err)
}

// mcCause strips gomemcache's "memcache: " prefix from a cause, as the error already says memcache.
func mcCause(err error) error {
	if msg, ok := strings.CutPrefix(err.Error(), "memcache: "); ok {
		return errors.New(msg)
	}
	return err
}

// mcIsFailure tells the breaker which errors are the server's failures: dial,
// read and write errors and timeouts. A miss, an item not stored or an error
// reply proves the server answered.
func mcIsFailure(err error) bool {
	var ne net.Error
	var cte *memcache.ConnectTimeoutError
	return errors.As(err, &ne) || errors.As(err, &cte) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, memcache.ErrNoServers)
}

// mcKind maps an error of gomemcache or of the breaker to its kind.
func mcKind(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrBreakerOpen):
		return ErrBreakerOpen
	case errors.Is(err, memcache.ErrCacheMiss):
		return ErrMemcacheMiss
	case errors.Is(err, memcache.ErrNotStored):
		return errMemcacheNotStored
	case mcIsFailure(err):
		return ErrMemcacheServer
	case strings.Contains(err.Error(), "non-numeric"):
		return ErrMemcacheNotNumeric
	}
	return ErrMemcacheRejected
}

// answered tells whether an outcome of kind came from the server itself (a
// value, a miss, an error reply) rather than from its absence.
func answered(kind error) bool {
	return kind != ErrMemcacheServer && kind != ErrBreakerOpen && kind != ErrMemcacheConnLimit
}

// mcAddr is a gomemcache ServerSelector of one server. The address is resolved
// at each dial (not once at start), so that a name may change its address.
type mcAddr string

func (a mcAddr) Network() string                     { return "tcp" }
func (a mcAddr) String() string                      { return string(a) }
func (a mcAddr) PickServer(string) (net.Addr, error) { return a, nil }
func (a mcAddr) Each(f func(net.Addr) error) error   { return f(a) }

var _ memcache.ServerSelector = mcAddr("")
