package engine

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Defaults of the rpc section. Where the original fae had the key, the default is the original's.
const (
	DefaultProtocol               = "binary"
	DefaultBufferSize             = 4096             // bytes
	DefaultSessionTimeout         = 30 * time.Second // original fae
	DefaultIOTimeout              = 2 * time.Second  // original fae
	DefaultMaxOutstandingSessions = 20000            // original fae
	DefaultMaxMessageBytes        = 16 << 20         // new in this fae: 16 MiB
	DefaultMaxReplyBytes          = 16 << 20         // new in this fae: 16 MiB
	DefaultShutdownTimeout        = 10 * time.Second // new in this fae
	DefaultStatsOutputInterval    = 10 * time.Second // original fae
	DefaultUnixSocketMode         = "0666"
	DefaultAcceptWait             = 100 * time.Millisecond // new in this fae (issue 11)
)

// Config is the rpc section of faed.cf: the Thrift listener and its sessions.
type Config struct {
	// ListenAddrs (listen_addr) are the addresses the service listens on, each
	// "host:port", ":port" (every interface) or, when it contains a "/", the path
	// of a unix socket. In faed.cf a string (one address) or a list, such as
	// ["/run/fae/faed.sock", ":9001"]: a unix socket for the local php-fpm and TCP
	// for peers. Every listener serves the same service, with the same protocol,
	// transport and limits; max_outstanding_sessions counts the sessions of all
	// of them together. No address twice, no two unix sockets on one path, no
	// TCP port both on every interface and on one address. Required (or ListenAddr).
	ListenAddrs AddrList `cf:"listen_addr"`
	// ListenAddr is one listen address, for code that builds a Config by hand
	// (tests, embedders): used when ListenAddrs is empty. Not a key of faed.cf,
	// whose listen_addr fills ListenAddrs; setting both is an error. Read the
	// addresses with Addrs.
	ListenAddr string `cf:"-"`
	// AdvertiseAddr (advertise_addr) is the TCP "host:port" other nodes reach
	// this node at, the name it registers under in ZooKeeper. "" (default) = the
	// first TCP address of listen_addr (see PeerAddr), a ":port" form being
	// completed with the host's first non-loopback address. Set it when that
	// guess is wrong (several interfaces, NAT). If set: a host peers can dial
	// (not empty, not 0.0.0.0 or ::) and a port 1..65535; never a unix socket.
	AdvertiseAddr string `cf:"advertise_addr"`
	// Protocol (protocol) is the Thrift protocol: "binary" (default; reads
	// strict and non-strict binary, as the original), "compact", or "auto"
	// (ProtocolAuto, new in this fae): each session's first bytes decide
	// strict binary or compact, framed or buffered, so that PHP, Python and
	// Java clients share one port. auto cannot detect non-strict binary (no
	// version header): such a session is refused (see detect.go). Other
	// nodes and the tools call an auto node in binary buffered (PeerWire).
	Protocol string `cf:"protocol"`
	// Framed (framed) selects the framed transport (4-byte length before each message),
	// as Java clients use; false = buffered/unframed, what PHP's TBufferedTransport and
	// Python's TSocket speak. Ignored with protocol auto, which detects the
	// transport of each session.
	Framed bool `cf:"framed"`
	// BufferSize (buffer_size) is the size in bytes of each session's read and write buffer. Default 4096.
	BufferSize int `cf:"buffer_size"`
	// SessionTimeout (session_timeout) is the longest idle wait for the next call of a
	// session; an idle session is closed after it. 0 = no limit. Default 30s.
	SessionTimeout time.Duration `cf:"session_timeout"`
	// IOTimeout (io_timeout) is the longest time to read one request, once its first
	// byte arrived, and to write its reply. 0 = no limit. Default 2s.
	IOTimeout time.Duration `cf:"io_timeout"`
	// MaxOutstandingSessions (max_outstanding_sessions) bounds concurrent sessions,
	// those of every listener together. Past it the accept loops go on
	// accepting: a new connection waits up to AcceptWait for a slot (at most
	// max_outstanding_sessions/10 connections wait at once), then its first
	// call is answered with a TApplicationException INTERNAL_ERROR "faed
	// overloaded: …" and it is closed (the original left it in the kernel's
	// listen backlog). Default 20000.
	MaxOutstandingSessions int `cf:"max_outstanding_sessions"`
	// AcceptWait (accept_wait) is how long a connection accepted while
	// max_outstanding_sessions are live waits in faed for a session slot before
	// it is refused as overloaded. 0 = refuse at once. Default 100ms; at most
	// 10s. New in this fae.
	AcceptWait time.Duration `cf:"accept_wait"`
	// AllowFrom (allow_from) lists the CIDRs ("10.0.0.0/8", "192.168.1.7/32",
	// "::1/128") TCP clients may call from; a connection from elsewhere is
	// closed at accept, logged and counted, and never reaches the processor.
	// Empty (default) = everyone, as the original. Unix-socket clients are not
	// checked: the socket file's mode (unix_socket_mode) governs them. New in
	// this fae.
	AllowFrom []string `cf:"allow_from"`
	// MaxMessageBytes (max_message_bytes) bounds one request: its frame, every string and
	// container, and the bytes read for it. A longer one ends the session with a logged
	// reason, before anything that large is allocated. Default 16 MiB.
	MaxMessageBytes int `cf:"max_message_bytes"`
	// MaxReplyBytes (max_reply_bytes) bounds one backend reply a call may
	// bring back: the rows of my_query and my_query_shards, the documents of
	// mg_find_all, the reply of rd_call. Past it the call fails naming the size
	// and the limit, the session and the daemon go on, and nothing that large
	// is held. 0 = no limit. Default 16 MiB. New in this fae; the servants
	// enforce it (pool.Limits) and a reload changes it.
	MaxReplyBytes int `cf:"max_reply_bytes"`
	// ShutdownTimeout (shutdown_timeout) bounds the drain on SIGTERM/SIGINT: calls in
	// flight get this long to finish. Default 10s.
	ShutdownTimeout time.Duration `cf:"shutdown_timeout"`
	// UnixSocketMode (unix_socket_mode) is the octal file mode of every unix socket
	// of listen_addr. Default "0666".
	UnixSocketMode string `cf:"unix_socket_mode"`
	// StatsOutputInterval (stats_output_interval) is the interval of the rpc stats log line. 0 = off. Default 10s.
	StatsOutputInterval time.Duration `cf:"stats_output_interval"`
	// PreforkMode (prefork_mode) is accepted for compatibility. It has no effect: a
	// goroutine per session bounded by max_outstanding_sessions behaves the same.
	PreforkMode bool `cf:"prefork_mode"`
	// HostMaxCallPerMinute (host_max_call_per_minute) is the calls per minute
	// each client host may make, enforced (or only counted) by the
	// RateLimiter plugin when plugin.plugins lists it; without it, unused (the
	// original never enforced it). Default 6000 (the original's); at least 1
	// with RateLimiter. Changed by a reload.
	HostMaxCallPerMinute int `cf:"host_max_call_per_minute"`
}

// SetDefaults fills in the defaults above.
func (c *Config) SetDefaults() {
	*c = Config{
		Protocol:               DefaultProtocol,
		BufferSize:             DefaultBufferSize,
		SessionTimeout:         DefaultSessionTimeout,
		IOTimeout:              DefaultIOTimeout,
		MaxOutstandingSessions: DefaultMaxOutstandingSessions,
		AcceptWait:             DefaultAcceptWait,
		MaxMessageBytes:        DefaultMaxMessageBytes,
		MaxReplyBytes:          DefaultMaxReplyBytes,
		ShutdownTimeout:        DefaultShutdownTimeout,
		UnixSocketMode:         DefaultUnixSocketMode,
		StatsOutputInterval:    DefaultStatsOutputInterval,
		HostMaxCallPerMinute:   6000,
	}
}

// Validate checks every key; prefix is the key path of the section ("rpc").
func (c *Config) Validate(prefix string) error {
	if err := c.validateAddrs(prefix); err != nil {
		return err
	}
	switch {
	case c.Protocol != "binary" && c.Protocol != "compact" && c.Protocol != ProtocolAuto:
		return fmt.Errorf("%s.protocol: must be \"binary\", \"compact\" or \"auto\", got %q", prefix, c.Protocol)
	case c.BufferSize < 64 || c.BufferSize > 16<<20:
		return fmt.Errorf("%s.buffer_size: must be 64..16777216 bytes, got %d", prefix, c.BufferSize)
	case c.SessionTimeout < 0:
		return fmt.Errorf("%s.session_timeout: must not be negative, got %s", prefix, c.SessionTimeout)
	case c.IOTimeout < 0:
		return fmt.Errorf("%s.io_timeout: must not be negative, got %s", prefix, c.IOTimeout)
	case c.MaxOutstandingSessions < 1:
		return fmt.Errorf("%s.max_outstanding_sessions: must be at least 1, got %d", prefix, c.MaxOutstandingSessions)
	case c.AcceptWait < 0 || c.AcceptWait > 10*time.Second:
		return fmt.Errorf("%s.accept_wait: must be 0s..10s, got %s", prefix, c.AcceptWait)
	case c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 1<<30:
		return fmt.Errorf("%s.max_message_bytes: must be 1024..1073741824 bytes, got %d", prefix, c.MaxMessageBytes)
	case c.MaxReplyBytes < 0:
		return fmt.Errorf("%s.max_reply_bytes: must not be negative (0 = no limit), got %d", prefix, c.MaxReplyBytes)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("%s.shutdown_timeout: must not be negative, got %s", prefix, c.ShutdownTimeout)
	case c.StatsOutputInterval < 0:
		return fmt.Errorf("%s.stats_output_interval: must not be negative, got %s", prefix, c.StatsOutputInterval)
	}
	for i, cidr := range c.AllowFrom {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return fmt.Errorf("%s.allow_from[%d]: not a CIDR such as 10.0.0.0/8 or 192.168.1.7/32: %q", prefix, i, cidr)
		}
	}
	if _, err := c.SocketMode(); err != nil {
		return fmt.Errorf("%s.unix_socket_mode: %v", prefix, err)
	}
	return nil
}

// PeerWire is the protocol ("binary" or "compact") and transport (framed or
// not) other nodes, the tools and FaeClient.php call this node in: what it
// registers in ZooKeeper. protocol and framed, or binary buffered with
// protocol auto: the original fae's and PHP's wire, the one the benchmarks
// measure, and it costs no frame copy (thrift's framed transport copies
// each frame through a bufio.Reader of its own).
func (c *Config) PeerWire() (protocol string, framed bool) {
	if c.Protocol == ProtocolAuto {
		return "binary", false
	}
	return c.Protocol, c.Framed
}

// SocketMode parses UnixSocketMode as an octal file mode.
func (c *Config) SocketMode() (uint32, error) {
	m, err := strconv.ParseUint(c.UnixSocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("must be an octal mode like \"0660\", got %q", c.UnixSocketMode)
	}
	return uint32(m), nil
}
