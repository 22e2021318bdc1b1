package engine

import "sync/atomic"

// Stats are the engine's counters, each read and written atomically.
// The operations issue exports them over the HTTP API and /metrics.
type Stats struct {
	SessionsActive atomic.Int64 // sessions live now
	// IdleGoroutines are the session goroutines waiting for a next session
	// (workers.go: at most 128 a listener), not a leak: a goroutine count
	// taken to find one subtracts them.
	IdleGoroutines atomic.Int64
	Sessions       atomic.Int64 // sessions accepted since start
	Calls          atomic.Int64 // calls processed
	CallErrors     atomic.Int64 // calls answered with a TApplicationException (declared exceptions not counted)
	AcceptErrors   atomic.Int64 // temporary accept failures, retried
	ClientGone     atomic.Int64 // calls whose client closed its connection while WatchClient watched
	Failures       Failures     // the calls counted in CallErrors, by normalised error message (bounded)

	// Why sessions ended, one counter per reason.
	EndEOF         atomic.Int64 // the client closed the session: between calls (the normal end), or during a call it left
	EndIdleTimeout atomic.Int64 // no call within session_timeout
	EndIOTimeout   atomic.Int64 // a request or reply took longer than io_timeout
	EndOversize    atomic.Int64 // a request longer than max_message_bytes
	EndProtocol    atomic.Int64 // a malformed request (bad frame, bad message, bad lengths)
	EndTransport   atomic.Int64 // a connection error mid-call (reset, broken pipe, EOF inside a request)
	EndDrained     atomic.Int64 // closed idle by Shutdown
	EndClosed      atomic.Int64 // closed by Close, or by Shutdown once its ctx ended; a call in flight was cancelled
	EndPanic       atomic.Int64 // a panic outside the servant's own recovery
	EndRefused     atomic.Int64 // its first bytes were HTTP or TLS, or no protocol rpc.protocol auto detects (counted in RefusedHTTP, RefusedTLS or RefusedProtocol too)

	// Connections refused, one counter per reason; each refused connection is
	// counted once. All but RefusedHTTP, RefusedTLS and RefusedProtocol (unless
	// refused as overloaded) never became sessions.
	RefusedNotAllowed      atomic.Int64 // TCP client outside rpc.allow_from: closed at accept
	RefusedOverload        atomic.Int64 // past max_outstanding_sessions: first call answered "faed overloaded:", closed
	RefusedOverloadNoCall  atomic.Int64 // past max_outstanding_sessions, no call header within OverloadReadWait: closed unanswered
	RefusedOverloadDropped atomic.Int64 // past max_outstanding_sessions with MaxRefusers refusals running: closed at once
	RefusedHTTP            atomic.Int64 // first bytes an HTTP request: closed at once
	RefusedTLS             atomic.Int64 // first bytes a TLS handshake: closed at once
	RefusedProtocol        atomic.Int64 // rpc.protocol auto: first bytes neither strict binary nor compact (non-strict binary answered INVALID_PROTOCOL), closed
	// AcceptWaited counts the connections that waited (up to accept_wait) for
	// a session slot and got one.
	AcceptWaited atomic.Int64
	// AcceptWaiting is the number of connections waiting for a slot now (a gauge).
	AcceptWaiting atomic.Int64
}
