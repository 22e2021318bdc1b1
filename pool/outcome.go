package pool

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the outcome of one backend operation, the same set for MySQL,
// memcache, Redis and MongoDB. A Kind is also an error, so that
// errors.Is(err, pool.KindTimeout) asks "did it time out, whatever the
// backend". The kind alone decides whether the connection that produced the
// outcome may be reused (Reusable) and how the server's breaker counts it
// (Breaker.Do); metrics label operations with Kind.String.
type Kind uint8

// The kinds of outcome. KindOK is success; every other kind is the Kind of an *Error.
const (
	KindOK            Kind = iota // the operation succeeded
	KindMiss                      // the key, row or document is absent (a normal answer, not a failure)
	KindBadArgument               // the caller's argument is unusable (bad key, bad BSON, no key); no server asked
	KindUnknownPool               // no pool or server entry of that name in the config
	KindBusy                      // every connection of the server stayed busy for the wait allowed
	KindServerFailure             // dialling, writing or reading failed, or the server reported its own failure
	KindTimeout                   // the server did not answer within the operation's timeout
	KindCanceled                  // the caller gave up (client gone, shutdown) before the answer came
	KindBreakerOpen               // the server's breaker refused the operation without asking the server
	KindRefused                   // refused, by faed (deny list, state-changing command) or by the server (error reply, bad statement)
	KindTooLarge                  // the reply or the value is over its byte limit
	KindClosed                    // the pool was closed
	KindModeRefused               // refused by the pool's mode (read_only, degraded), set by an operator; no server asked
	numKinds
)

var kindText = [numKinds]string{"ok", "miss", "bad argument", "unknown pool", "busy", "server failure",
	"timeout", "canceled", "circuit open", "refused", "too large", "closed", "refused by the pool's mode"}

var kindLabel = [numKinds]string{"ok", "miss", "bad_argument", "unknown_pool", "busy", "server_failure",
	"timeout", "canceled", "breaker_open", "refused", "too_large", "closed", "mode_refused"}

// Error is the text of the kind, as it appears in messages ("circuit open").
func (k Kind) Error() string {
	if k < numKinds {
		return kindText[k]
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// String is the kind's metric label ("breaker_open").
func (k Kind) String() string {
	if k < numKinds {
		return kindLabel[k]
	}
	return fmt.Sprintf("kind_%d", uint8(k))
}

// Kinds lists every kind, KindOK first: the label values of the metrics.
func Kinds() []Kind {
	out := make([]Kind, numKinds)
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

// Reusable reports whether the connection an operation of kind k ran on may
// go back to its pool. Never after a failure of the connection, a timeout or
// a cancellation (a late reply may still come and would answer the next
// caller), nor after a reply cut short for being too large.
func (k Kind) Reusable() bool {
	switch k {
	case KindServerFailure, KindTimeout, KindCanceled, KindTooLarge, KindClosed:
		return false
	}
	return true
}

// Answered reports whether an outcome of kind k came from the server itself (a
// value, a miss, an error reply), so that another replica need not be asked.
func (k Kind) Answered() bool {
	switch k {
	case KindOK, KindMiss, KindRefused, KindTooLarge:
		return true
	}
	return false
}

// Error is a failed backend operation, the one error type of the four
// backends. errors.Is matches its Kind (pool.KindTimeout…) and anything its
// cause wraps; errors.As finds it. Its text names where it failed:
//
//	redis GET "user:1": pool "default", server 127.0.0.1:6379: timeout: read tcp …: i/o timeout
//	mysql query: pool "UserShard", server UserShard3 (127.0.0.1:3306): circuit open
type Error struct {
	Backend string // "mysql", "memcache", "redis" or "mongodb"
	Op      string // the operation: memcache "get", a Redis command "GET", mysql "query", mongodb "find_one"
	Key     string // the key, when the operation has one ("" otherwise)
	Pool    string // the pool named by the caller
	Server  string // the server asked, "" when none was chosen
	Kind    Kind
	Err     error // the cause, nil when the kind says it all
}

// maxKeyInText is how much of a key an error message shows.
const maxKeyInText = 80

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Backend)
	if e.Op != "" {
		b.WriteString(" " + e.Op)
	}
	if e.Key != "" {
		key := e.Key
		if len(key) > maxKeyInText {
			key = key[:maxKeyInText] + "…"
		}
		fmt.Fprintf(&b, " %q", key)
	}
	switch {
	case e.Server != "" && e.Pool == e.Server: // a peer: its pool is its address
		b.WriteString(": server " + e.Server)
	case e.Server != "":
		fmt.Fprintf(&b, ": pool %q, server %s", e.Pool, e.Server)
	default:
		fmt.Fprintf(&b, ": pool %q", e.Pool)
	}
	b.WriteString(": " + e.Kind.Error())
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// KindOf is the kind of err: KindOK for nil, the Kind of a *Error (or of a
// Kind wrapped some other way), and KindServerFailure for any other error.
func KindOf(err error) Kind {
	if err == nil {
		return KindOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	var k Kind
	if errors.As(err, &k) {
		return k
	}
	return KindServerFailure
}
