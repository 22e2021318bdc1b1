package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/fae-go/fae/internal/sockio"
)

// ErrNotNumeric is the cause (Err) of the KindRefused *Error of an increment
// of a value that is not a decimal number; errors.Is(err, ErrNotNumeric) tells
// it from memcached's other error replies.
var ErrNotNumeric = errors.New("value is not a decimal number")

// mcServer is one memcached server of one pool: a gomemcache client of its own
// (so that the pool, not gomemcache, picks the server), a cap on open
// connections (gomemcache has none) and on the calls waiting for one
// (connGate), a breaker, and a second client for the
// breaker's health check, so that the check never waits behind the calls.
//
// Connection reuse is gomemcache's rule, which matches Kind.Reusable: a
// connection goes back to the idle list only after success or a protocol-level
// answer (miss, not stored, CAS conflict, malformed key; memcache.go,
// (*conn).condRelease and resumableError); after any other error, a timeout
// included, gomemcache closes it, so a late reply never answers the next
// caller (TestMemcacheNoReuseAfterTimeout).
type mcServer struct {
	addr    string
	client  *memcache.Client
	health  *memcache.Client // health checks only: Timeout HealthCheckTimeout/2
	gate    *connGate        // max_conns_per_server tokens, max_waiting_calls waiters for timeout
	breaker *Breaker
	open    atomic.Int64 // the client's connections dialled and not yet closed (Stats)
	batch   *mcBatch     // the coalesced gets (memcache_batch.go); nil when coalesce is off
}

func newMcServer(addr string, cfg MemcacheConfig) *mcServer {
	c := memcache.NewFromSelector(mcAddr(addr))
	c.Timeout = cfg.Timeout
	c.MaxIdleConns = cfg.MaxIdleConnsPerServer
	if cfg.Coalesce && c.MaxIdleConns > 1 {
		c.MaxIdleConns-- // the gets' client keeps the other one idle (newMcBatch)
	}
	h := memcache.NewFromSelector(mcAddr(addr))
	// gomemcache bounds the dial and then the exchange by Timeout each: half
	// the check's budget each keeps the whole check within HealthCheckTimeout.
	h.Timeout, h.MaxIdleConns = HealthCheckTimeout/2, 1
	s := &mcServer{addr: addr, client: c, health: h,
		gate: newConnGate(addr, cfg.MaxConnsPerServer, cfg.MaxWaitingCalls, cfg.Timeout, "max_conns_per_server", "timeout")}
	s.breaker = NewBreaker("memcache", addr, cfg.Breaker, s.healthCheck)
	c.DialContext = s.dial
	if cfg.Coalesce {
		s.batch = newMcBatch(s, cfg)
	}
	return s
}

// dial is the operations' client's DialContext: gomemcache's own dial (its
// ctx carries the connect timeout; its errors come back unchanged, so
// mcOutcome sees them as before) with the connection counted in open until
// its first Close, and read and written as raw system calls (sockio).
func (s *mcServer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	return &countedConn{Conn: sockio.Wrap(nc), open: &s.open}, nil
}

// countedConn takes itself off its counter when first closed.
type countedConn struct {
	net.Conn
	open   *atomic.Int64
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if !c.closed.Swap(true) {
		c.open.Add(-1)
	}
	return c.Conn.Close()
}

// healthCheck asks the server its version (memcached "version", gomemcache's
// Ping) on the health client's own connection.
func (s *mcServer) healthCheck(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.health.Ping()
}

// close releases the idle connections of both clients.
func (s *mcServer) close() {
	s.client.Close()
	s.health.Close()
	if s.batch != nil {
		s.batch.close()
	}
}

// do runs op on the server through its breaker: it takes a connection slot,
// waiting up to timeout, if fewer than max_waiting_calls already wait (else
// KindBusy at once; KindBusy too when the wait ends: the breaker counts
// neither), then
// runs op and classifies its error. It returns the outcome's kind and cause
// (nil for KindOK and KindBreakerOpen). After a server failure it drops the
// server's idle connections: a restarted server has reset them all, and the
// next calls should dial afresh rather than fail one by one.
func (s *mcServer) do(op func(*memcache.Client) error) (Kind, error) {
	kind, cause := s.breaker.Do(func() (Kind, error) {
		if err := s.gate.acquire(context.Background()); err != nil {
			return KindBusy, err
		}
		defer s.gate.release()
		return mcOutcome(op(s.client))
	})
	if kind == KindServerFailure {
		s.client.Close()
		if s.batch != nil {
			s.batch.reads.Close()
		}
	}
	return kind, cause
}

// mcOutcome maps an error of gomemcache to its kind and cause. Failed dials
// (gomemcache dials inside each operation: *memcache.ConnectTimeoutError, or
// a *net.OpError of Op "dial") are wrapped in *DialError, so that the breaker
// counts them on its dial side.
func mcOutcome(err error) (Kind, error) {
	var cte *memcache.ConnectTimeoutError
	var oe *net.OpError
	var ne net.Error
	switch {
	case err == nil:
		return KindOK, nil
	case errors.Is(err, memcache.ErrCacheMiss):
		return KindMiss, mcCause(err)
	case errors.As(err, new(*mcTooLargeError)):
		return KindTooLarge, err
	case errors.Is(err, memcache.ErrMalformedKey):
		return KindBadArgument, err // mcCheckKey refuses these before gomemcache sees them
	case errors.As(err, &cte):
		return KindTimeout, &DialError{Err: mcCause(err)}
	case errors.As(err, &oe) && oe.Op == "dial":
		return KindServerFailure, &DialError{Err: err}
	case errors.As(err, &ne) && ne.Timeout():
		return KindTimeout, err
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return KindServerFailure, err
	// gomemcache reports memcached's "CLIENT_ERROR cannot increment or
	// decrement non-numeric value" only as text ("memcache: client error:
	// cannot increment or decrement non-numeric value"): this is the one
	// place that text is matched.
	case strings.Contains(err.Error(), "non-numeric value"):
		return KindRefused, fmt.Errorf("%w: %w", ErrNotNumeric, mcCause(err))
	}
	// Any other error is an error reply of memcached (CLIENT_ERROR,
	// SERVER_ERROR such as "object too large for cache"), as gomemcache's text.
	return KindRefused, mcCause(err)
}

// mcCause is err without gomemcache's "memcache: " prefix in its text, as the
// *Error already says memcache; it still unwraps to err.
func mcCause(err error) error {
	if strings.HasPrefix(err.Error(), "memcache: ") {
		return mcError{err}
	}
	return err
}

type mcError struct{ err error }

func (e mcError) Error() string { return strings.TrimPrefix(e.err.Error(), "memcache: ") }
func (e mcError) Unwrap() error { return e.err }

// mcAddr is a gomemcache ServerSelector of one server. The address is resolved
// at each dial (not once at start), so that a name may change its address.
type mcAddr string

func (a mcAddr) Network() string                     { return "tcp" }
func (a mcAddr) String() string                      { return string(a) }
func (a mcAddr) PickServer(string) (net.Addr, error) { return a, nil }
func (a mcAddr) Each(f func(net.Addr) error) error   { return f(a) }

var _ memcache.ServerSelector = mcAddr("")
