// Package pool holds fae's backend clusters (MySQL, memcache, Redis, MongoDB):
// connection pools, server selection, breakers, and the one outcome vocabulary
// (Kind, Error, Observer) the four share.
//
// The four clusters follow one contract:
//   - New<Backend>(cfg, obs, limits) builds the cluster without connecting, so
//     faed starts while a backend is down; cfg must have passed Validate.
//   - Every error an operation returns is a *Error whose Kind says what
//     happened (errors.Is(err, pool.KindTimeout)); texts are never matched.
//   - Every operation on a server is reported once to the Observer, when it
//     ends; operations refused before a server was chosen are reported with
//     Server "".
//   - A server's Breaker counts the outcomes as its doc says; the kind alone
//     decides whether the connection is reused (Kind.Reusable).
//   - Close releases every connection; operations after Close fail with
//     KindClosed. The caller closes a cluster only when no operation is in
//     flight (the servant closes a generation's clusters after its last call).
package pool

// Limits bound what one operation may bring back, whatever a client asks for.
type Limits struct {
	// MaxReplyBytes (rpc.max_reply_bytes) bounds the bytes of one reply: the
	// rows of a SELECT, the documents of a find, a Redis reply. Past it the
	// operation fails with KindTooLarge naming the size reached and the limit,
	// and nothing that large is held. 0 = no limit.
	MaxReplyBytes int
}
