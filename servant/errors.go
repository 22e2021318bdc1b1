package servant

import (
	"errors"
	"fmt"
)

// Errors returned by the servant. A caller sees them as a TApplicationException
// (INTERNAL_ERROR) whose message is "Internal error processing <method>: <error>".
var (
	// ErrInvalidContext: the Context is missing, its rid is 0 or its reason empty.
	// The text keeps the original's "invalid context" that clients may match on.
	ErrInvalidContext = errors.New("invalid context")
	// ErrPanic: the call panicked; the panic was logged with its stack.
	ErrPanic = errors.New("internal error: the call panicked (see the faed log)")
	// ErrBadTag: id_next_with_tag got a tag outside 0..31.
	ErrBadTag = errors.New("idgen: tag out of range")
	// ErrValueTooLarge: lc_set of a value over servants.lcache.max_item_bytes.
	ErrValueTooLarge = errors.New("lcache: value too large")
	// ErrClockBackwards: the clock moved back further than MaxClockBackwards.
	ErrClockBackwards = errors.New("idgen: clock moved backwards")
)

// NotConfiguredError is returned by the methods of a backend whose config section is absent.
type NotConfiguredError struct {
	Name string // backend, e.g. "mysql"
	Key  string // config key that enables it, e.g. "servants.mysql"
}

func (e *NotConfiguredError) Error() string {
	return fmt.Sprintf("%s is not configured (%s)", e.Name, e.Key)
}
