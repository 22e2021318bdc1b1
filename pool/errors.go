package pool

import (
	"fmt"
	"strings"
)

// BackendError is a failed operation of a memcache or Redis pool: Op (a
// memcache operation such as "get", or a Redis command such as "GET") of Key in
// Pool, on Server ("" when no server was asked). Kind is one of the backend's
// ErrMemcache*/ErrRedis* kinds or ErrBreakerOpen, and Err the underlying cause,
// if any; errors.Is matches both. Its text:
//
//	memcache get "user:1": pool "default", server 127.0.0.1:11211: server failure: dial tcp …: connection refused
type BackendError struct {
	Backend               string // "memcache" or "redis"
	Op, Key, Pool, Server string
	Kind                  error
	Err                   error
}

func (e *BackendError) Error() string {
	var b strings.Builder
	b.WriteString(e.Backend + " " + e.Op)
	if e.Key != "" || e.Backend == "memcache" {
		key := e.Key
		if len(key) > 80 {
			key = key[:80] + "…"
		}
		fmt.Fprintf(&b, " %q", key)
	}
	fmt.Fprintf(&b, ": pool %q", e.Pool)
	if e.Server != "" {
		b.WriteString(", server " + e.Server)
	}
	b.WriteString(": " + e.Kind.Error())
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As both the kind and the cause.
func (e *BackendError) Unwrap() []error { return []error{e.Kind, e.Err} }
