// Package engine serves a Thrift processor over TCP and unix sockets: listeners,
// the accept loop, sessions with their limits and timeouts, graceful drain, and
// the cancellation of calls whose client left or whose server stops.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

func init() {
	// The generated processors start a goroutine and a ticker per call to watch the
	// connection when this is > 0, and their check (the transport's IsOpen, always
	// true for connTransport) would see nothing here anyway. A call that waits on a backend watches its client with
	// WatchClient instead, and the others pay nothing: turn it off.
	thrift.ServerConnectivityCheckInterval = 0
}

// Errors of the engine.
var (
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("engine: server closed")
	// ErrShutdown is the cause (context.Cause) of a call's ctx cancelled because faed
	// stops: Close, or Shutdown once its ctx has ended, closed the call's session.
	ErrShutdown = errors.New("faed is shutting down")
	// ErrClientGone is the cause of a call's ctx cancelled because the client closed
	// its connection while the call ran (seen by WatchClient), or of a session's ctx
	// once its client has closed the session.
	ErrClientGone = errors.New("client disconnected")
)

// DrainIdleGrace is how long, during Shutdown, an idle session may wait for its
// next call before it is closed. Clients such as php-fpm workers that make a few
// calls in a row keep their session to its end; a session idle past the grace
// is closed between calls, never in the middle of one.
const DrainIdleGrace = 250 * time.Millisecond

// ShutdownGrace is how long Shutdown, once its ctx has ended and it has closed the
// remaining sessions and cancelled their calls, waits for those calls to return.
// A call that ignores its ctx may run longer: see Wait.
const ShutdownGrace = 2 * time.Second

// Defaults of the per-call log throttle that a Server builds when CallLogger is
// nil: at most DefaultCallLogRate lines a second, in bursts of DefaultCallLogBurst
// (the rate engine/logthrottle.go had since the engine's first throttle, e3c334e).
const (
	DefaultCallLogRate  = 10 // lines per second
	DefaultCallLogBurst = 20 // lines
)

// Server serves one thrift.TProcessor. Its exported fields are the configuration;
// set them before Serve and do not change them after. Safe for concurrent use.
type Server struct {
	// Processor runs one call: the generated processor of the service.
	Processor thrift.TProcessor
	// Config holds the limits: protocol, transport, buffer size, timeouts, max
	// sessions, max message size (see Config for units and zero values).
	Config Config
	// Logger receives the server's own lines: accept errors, session ends at debug
	// level. Nil = slog.Default().
	Logger *slog.Logger
	// CallLogger receives the lines a client can cause once per call or session
	// ("call failed", "unknown method", "session ended by a bad call", idle
	// timeouts, read errors, session panics), so it must be throttled: build it
	// with NewThrottledHandler and hand the same logger to the servant, so that one
	// limit bounds every per-call line of the process. Nil = Logger behind a
	// throttle of this Server's own (DefaultCallLogRate, DefaultCallLogBurst).
	CallLogger *slog.Logger

	Stats Stats

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	sem       chan struct{} // one token per live session
	handoff   chan *session // to a session goroutine waiting for its next session (workers.go)
	// idleWorkers counts the session goroutines waiting on handoff (at most maxIdleWorkers).
	idleWorkers atomic.Int32
	idleBufs    *idleBuffers  // session buffers while sessions are idle
	waiters     chan struct{} // one token per connection waiting for a slot (Config.AcceptWaiters)
	refusers    chan struct{} // one token per refusal running (Config.MaxRefusers)
	allow       []netip.Prefix
	done        chan struct{} // closed by Shutdown/Close
	closeOnce   sync.Once
	shutdown    atomic.Bool
	// wire is the sessions' protocol and transport; with auto (rpc.protocol
	// auto) each session detects its own (detect.go).
	wire wire
	auto bool
	// protocols are the sessions' protocols, by wire.index (binary, compact).
	protocols [2]thrift.TProtocolFactory
	// methodNames are Processor's method names, each its own key, when it
	// has a ProcessorMap (a generated processor): a session's message head
	// naming one takes that string instead of allocating its own. Read-only
	// once made.
	methodNames map[string]string
	// refuseProtocols read an overloaded connection's call header and write
	// the answers of refusals: protocols with lengths bounded by
	// OverloadHeaderBytes.
	refuseProtocols [2]thrift.TProtocolFactory
	tconf           *thrift.TConfiguration
	callLog         *slog.Logger // CallLogger's fallback
}

// NewServer returns a Server for processor with cfg, which must have passed Validate.
func NewServer(cfg Config, processor thrift.TProcessor, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{Processor: processor, Config: cfg, Logger: logger}
	s.init()
	return s
}

func (s *Server) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sem != nil {
		return
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.callLog = slog.New(NewThrottledHandler(s.Logger.Handler(), DefaultCallLogRate, DefaultCallLogBurst))
	s.listeners = map[net.Listener]struct{}{}
	s.sessions = map[*session]struct{}{}
	s.sem = make(chan struct{}, s.Config.MaxOutstandingSessions)
	s.handoff = make(chan *session)
	s.idleBufs = newIdleBuffers(s.Config.BufferSize)
	if pm, ok := s.Processor.(interface {
		ProcessorMap() map[string]thrift.TProcessorFunction
	}); ok {
		s.methodNames = make(map[string]string, len(pm.ProcessorMap()))
		for name := range pm.ProcessorMap() {
			s.methodNames[name] = name
		}
	}
	s.waiters = make(chan struct{}, s.Config.AcceptWaiters())
	s.refusers = make(chan struct{}, s.Config.MaxRefusers())
	s.allow = s.Config.AllowPrefixes()
	s.done = make(chan struct{})
	s.tconf = &thrift.TConfiguration{
		MaxMessageSize:     int32(s.Config.MaxMessageBytes),
		MaxFrameSize:       int32(s.Config.MaxMessageBytes),
		TBinaryStrictRead:  thrift.BoolPtr(false), // accept messages with or without a version header, as the original
		TBinaryStrictWrite: thrift.BoolPtr(true),
	}
	rconf := &thrift.TConfiguration{MaxMessageSize: OverloadHeaderBytes, MaxFrameSize: OverloadHeaderBytes,
		TBinaryStrictRead: thrift.BoolPtr(false), TBinaryStrictWrite: thrift.BoolPtr(true)}
	s.protocols = [2]thrift.TProtocolFactory{thrift.NewTBinaryProtocolFactoryConf(s.tconf), thrift.NewTCompactProtocolFactoryConf(s.tconf)}
	s.refuseProtocols = [2]thrift.TProtocolFactory{thrift.NewTBinaryProtocolFactoryConf(rconf), thrift.NewTCompactProtocolFactoryConf(rconf)}
	s.auto = s.Config.Protocol == ProtocolAuto
	if !s.auto {
		s.wire = wireOf(&s.Config)
	}
}

// Serve accepts sessions on l until Shutdown or Close, and then returns
// ErrServerClosed. A temporary accept error (such as too many open files) is
// logged and retried after 5 ms, doubling up to 1 s; any other accept error is
// returned. Serve may run on several listeners at once (see ServeAll): they
// share max_outstanding_sessions. A TCP client outside rpc.allow_from is
// closed at accept (see admit). While max_outstanding_sessions sessions are
// live, Serve goes on accepting: a new connection waits up to accept_wait for
// a slot, or is answered "faed overloaded:" and closed (see admit.go); the
// kernel's listen backlog is never the queue.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.Stats.AcceptErrors.Add(1)
				s.Logger.Warn("accept failed; retrying", "listener", l.Addr().String(), "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		if !s.admit(conn) {
			continue
		}
		select { // a session slot, shared by every listener
		case s.sem <- struct{}{}:
		default:
			s.overflow(conn)
			continue
		}
		sess := s.newSession(conn)
		if sess == nil { // shutting down
			<-s.sem
			continue
		}
		s.startSession(sess)
	}
}

// ServeAll serves on every listener of lns at once, one Serve each, with one
// max_outstanding_sessions for all, and returns ErrServerClosed once every
// Serve has returned after Shutdown or Close. If a listener fails for good (an
// accept error that is not temporary), ServeAll returns that error at once,
// naming the listener's address; the other listeners go on serving until
// Shutdown or Close. No listener is an error.
func (s *Server) ServeAll(lns []net.Listener) error {
	if len(lns) == 0 {
		return errors.New("engine: ServeAll: no listener")
	}
	errs := make(chan error, len(lns))
	for _, l := range lns {
		go func() {
			err := s.Serve(l)
			if !errors.Is(err, ErrServerClosed) {
				err = fmt.Errorf("listener %s: %w", l.Addr(), err)
			}
			errs <- err
		}()
	}
	for range lns {
		if err := <-errs; !errors.Is(err, ErrServerClosed) {
			return err
		}
	}
	return ErrServerClosed
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown drains the server: it closes the listeners, lets every call in flight
// finish and its reply be written, closes each session once it has been idle for
// DrainIdleGrace, and returns nil when no session is left (so no call runs).
//
// If ctx ends first, Shutdown closes the remaining sessions as Close does,
// cancelling their calls' ctx with cause ErrShutdown, waits up to ShutdownGrace for
// their goroutines to return, and returns ctx.Err(). A call that ignores its ctx
// may still be running then; Wait tells when the last one has returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.beginShutdown()
	s.mu.Lock()
	for sess := range s.sessions {
		sess.drain()
	}
	s.mu.Unlock()

	if s.Wait(ctx) == nil {
		return nil
	}
	s.Close()
	grace, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	s.Wait(grace)
	return ctx.Err()
}

// Wait returns nil once every session has ended, and with it every call
// (Processor.Process) it ran, or ctx.Err() if ctx ends first; with a ctx that
// has already ended it is an immediate check. After Shutdown or Close no new
// session starts, so a nil Wait means the processor and what it uses (backend
// pools) may be closed (the session goroutines that waited for a next session,
// workers.go, exit then too). Before them it only says that no session is live
// at that moment.
func (s *Server) Wait(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.Stats.SessionsActive.Load() != 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Close closes the listeners and every session at once: the ctx of each call in
// flight is cancelled with cause ErrShutdown and its connection closed, so its
// reply is lost. Close does not wait for the calls to return: see Wait.
func (s *Server) Close() error {
	s.init()
	s.beginShutdown()
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		sess.close(ErrShutdown)
	}
	return nil
}

func (s *Server) beginShutdown() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.shutdown.Store(true)
		close(s.done)
		for l := range s.listeners {
			l.Close()
		}
		s.mu.Unlock()
	})
}

// Sessions is the number of live sessions.
func (s *Server) Sessions() int { return int(s.Stats.SessionsActive.Load()) }

// callLogger is where per-call lines go: CallLogger, or the server's own throttle.
func (s *Server) callLogger() *slog.Logger {
	if s.CallLogger != nil {
		return s.CallLogger
	}
	return s.callLog
}
