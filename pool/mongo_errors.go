package pool

import (
	"context"
	"errors"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/auth"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// ErrDuplicateKey is the cause of a KindRefused error when a write would
// duplicate a unique key (e.g. _id): errors.Is(err, pool.ErrDuplicateKey).
var ErrDuplicateKey = errors.New("duplicate key")

// mgTooLargeError is the cause of a KindTooLarge error: the documents of a
// reply reached Bytes (the BSON bytes of the first Docs documents read) over
// Limit (max_reply_bytes). Reading stopped there.
type mgTooLargeError struct {
	Docs  int // documents read, the one that went over the limit included
	Bytes int // their bytes
	Limit int // max_reply_bytes
}

func (e *mgTooLargeError) Error() string {
	return fmt.Sprintf("reply over max_reply_bytes %d: %d bytes in the first %d documents read", e.Limit, e.Bytes, e.Docs)
}

// mgReplyBudget counts the bytes of a reply against Limits.MaxReplyBytes.
type mgReplyBudget struct {
	limit, docs, bytes int
}

// add counts a document of n bytes; an *mgTooLargeError once the reply is over the limit.
func (b *mgReplyBudget) add(n int) error {
	b.docs++
	b.bytes += n
	if b.limit > 0 && b.bytes > b.limit {
		return &mgTooLargeError{Docs: b.docs, Bytes: b.bytes, Limit: b.limit}
	}
	return nil
}

// nextBatch is the size of the batch to ask for next: the documents of the
// average size so far that still fit, plus the one that would go over.
func (b *mgReplyBudget) nextBatch() int32 {
	if b.docs == 0 || b.bytes >= b.limit {
		return 1
	}
	n := (b.limit-b.bytes)/max(b.bytes/b.docs, 1) + 1
	return int32(min(n, math.MaxInt32))
}

// classify turns what an operation on s returned into its kind and the cause
// of the error, keeping the driver's error inside. ctx is the caller's, to
// tell its end from io_timeout's.
func (c *Mongo) classify(ctx context.Context, s *mongoServer, table string, err error) (Kind, error) {
	if err == nil {
		return KindOK, nil
	}
	if kind, cause := c.classifyCaller(ctx, s, table, err); kind != KindOK {
		return kind, cause
	}
	return c.classifyServer(s, err)
}

// classifyCaller: the outcomes that are the caller's or the data's doing,
// KindOK for the others.
func (c *Mongo) classifyCaller(ctx context.Context, s *mongoServer, table string, err error) (Kind, error) {
	var tooLarge *mgTooLargeError
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return KindMiss, fmt.Errorf("not found in collection %q", table)
	case errors.As(err, &tooLarge):
		return KindTooLarge, err
	case errors.Is(err, mongo.ErrClientDisconnected):
		return KindClosed, err
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		return KindCanceled, fmt.Errorf("canceled by the caller: %w", err)
	case errors.As(err, new(*auth.Error)):
		return KindRefused, fmt.Errorf("authentication failed as user %q: %w", s.user, err)
	case mongo.IsDuplicateKeyError(err):
		return KindRefused, fmt.Errorf("%w in collection %q: %w", ErrDuplicateKey, table, err)
	case errors.As(err, new(mongo.InvalidArgumentError)) || errors.Is(err, driver.ErrDocumentTooLarge):
		return KindBadArgument, fmt.Errorf("refused by the driver: %w", err)
	}
	return KindOK, nil
}

// classifyServer: the outcomes that say something of the server. A server
// that accepts connections but does not answer (frozen) shows as an
// operation timing out, the wait for a connection timing out (a new
// connection's handshake hangs; the connections of operations that timed out
// are still reading their late replies), or, once the driver has marked the server unknown
// for that, a failed server selection whose last error is a timeout: all of
// them are KindTimeout, which counts for the breaker on its command side when
// the health check fails too. Only a server that cannot be connected to is a
// dial failure (KindServerFailure with a *DialError cause, the dial side).
func (c *Mongo) classifyServer(s *mongoServer, err error) (Kind, error) {
	var selection topology.ServerSelectionError
	switch {
	case errors.As(err, &selection):
		if last := lastServerError(selection); last != nil && !isDialError(last) && mongo.IsTimeout(last) {
			return KindTimeout, fmt.Errorf("timed out (no answer within connect_timeout %s): %w", c.cfg.ConnectTimeout, err)
		}
		return KindServerFailure, fmt.Errorf("server unreachable (no connection within connect_timeout %s): %w",
			c.cfg.ConnectTimeout, &DialError{Err: err})
	case errors.As(err, new(driver.RetryablePoolError)): // only the pool-cleared error implements it
		return KindServerFailure, fmt.Errorf("connections dropped after another call failed: %w", err)
	case errors.As(err, new(topology.WaitQueueTimeoutError)):
		if max := c.cfg.MaxConnsPerServer; max > 0 && int(s.inFlight.Load()) > max {
			return KindBusy, fmt.Errorf("all %d connections (max_conns_per_server) stayed busy: %w", max, err)
		}
		return KindTimeout, fmt.Errorf("timed out waiting for a connection: %w", err)
	case mongo.IsTimeout(err):
		return KindTimeout, fmt.Errorf("timed out (io_timeout %s): %w", c.cfg.IOTimeout, err)
	case mongo.IsNetworkError(err):
		return KindServerFailure, fmt.Errorf("network error: %w", err)
	case errors.As(err, new(mongo.ServerError)):
		return KindRefused, fmt.Errorf("refused by the server: %w", err)
	}
	return KindServerFailure, fmt.Errorf("failed: %w", err) // e.g. a reply the driver could not decode
}

// lastServerError is the last error the driver saw on the server of a failed
// selection (one server: every entry is a direct connection or one replica
// set, whose members all count as that entry), nil when none.
func lastServerError(e topology.ServerSelectionError) error {
	for _, s := range e.Desc.Servers {
		if s.LastError != nil {
			return s.LastError
		}
	}
	return nil
}
