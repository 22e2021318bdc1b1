package pool

import (
	"cmp"
	"slices"
)

// ServerStats are the connection and breaker figures of one server of one
// pool, read when asked from what the drivers and the breaker keep anyway:
// nothing is added to the call path to produce them (but see Mongo.Stats).
// Connection counts are a snapshot, each read on its own, so Open = Idle +
// InUse may be off by a connection changing state meanwhile. Where a driver
// keeps no figure (gomemcache; the peers' pools count calls, not
// connections) one is derived, as each Stats method says.
type ServerStats struct {
	Backend string `json:"backend"` // "mysql", "memcache", "redis", "mongodb", "peer"
	Pool    string `json:"pool"`    // the pool (MySQL and MongoDB: the server entry's pool name; peer: its address)
	Server  string `json:"server"`  // the server, named as in Op.Server
	Open    int    `json:"open"`    // connections open now, idle or in use
	Idle    int    `json:"idle"`    // connections open and idle in the pool
	InUse   int    `json:"in_use"`  // connections lent to an operation
	// Waiting is the calls waiting for a connection now, at most the
	// server's max_waiting_calls (peers: the calls waiting up to
	// borrow_timeout for one of pool_capacity connections).
	Waiting int `json:"waiting"`
	// Breaker is the server's breaker as a whole (Breaker.State): "open" when
	// either side is open, else "half-open" when either is, else "closed".
	Breaker string `json:"breaker"`
	Dial    string `json:"dial_breaker"`    // the dial side's state: "closed", "half-open" or "open"
	Command string `json:"command_breaker"` // the command side's state
}

// serverStats is a row for server with b's state filled in.
func serverStats(backend, pool, server string, open, idle, inUse int, b *Breaker) ServerStats {
	st := ServerStats{Backend: backend, Pool: pool, Server: server, Open: open, Idle: idle, InUse: inUse,
		Breaker: b.State()}
	st.Dial, st.Command = b.States()
	return st
}

// sortStats sorts rows by backend, pool and server.
func sortStats(rows []ServerStats) []ServerStats {
	slices.SortFunc(rows, func(a, b ServerStats) int {
		return cmp.Or(cmp.Compare(a.Backend, b.Backend), cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.Server, b.Server))
	})
	return rows
}

// BreakerStateValue is the number of a breaker state as a gauge shows it: 0
// closed, 1 half-open, 2 open; -1 for anything else.
func BreakerStateValue(state string) int {
	switch state {
	case "closed":
		return 0
	case "half-open":
		return 1
	case "open":
		return 2
	}
	return -1
}
