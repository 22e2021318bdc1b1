// Package peer is fae's cluster membership: one ZooKeeper session per node,
// the node's own registration (an ephemeral znode under peer.root), the
// discovery of the other nodes (one children watch on that root) and the
// zk_* passthrough. Everything ZooKeeper-specific stays in this package.
package peer

import (
	"fmt"
	"strings"
	"time"
)

// Defaults of the peer section. Where the original fae had the value, the default is the original's.
const (
	// DefaultRoot is where nodes register: <root>/<host:port>. The original's /fae.
	DefaultRoot = "/fae"
	// DefaultSessionTimeout is the ZooKeeper session timeout the node asks for.
	// The original's 4 s (its dial timeout, also used as the session timeout).
	DefaultSessionTimeout = 4 * time.Second
)

// Bounds of peer.session_timeout. ZooKeeper itself clamps the timeout to
// [2, 20] × its tickTime (4–40 s at the default tickTime of 2 s); these bounds
// only refuse values that cannot be meant.
const (
	MinSessionTimeout = time.Second
	MaxSessionTimeout = 5 * time.Minute
)

// Config is the peer section of faed.cf: how this node takes part in the
// cluster. The ZooKeeper servers themselves are the top-level etcd_servers
// (the original's name), given to New separately.
type Config struct {
	// Root (root) is the znode under which every node registers its
	// advertised address as an ephemeral child: "/fae" gives /fae/10.0.0.5:9001.
	// An absolute ZooKeeper path, not "/" and not under /zookeeper. zk_* calls
	// may not touch it or anything below it. Default "/fae" (the original's).
	Root string `cf:"root"`
	// SessionTimeout (session_timeout) is the ZooKeeper session timeout asked
	// for: a node unheard of for this long loses its session and its
	// registration; peers drop a vanished member only after this much more
	// (see Registry). Every single ZooKeeper operation is also bounded by it.
	// 1s..5m; ZooKeeper may clamp it further. Default 4s (the original's).
	SessionTimeout time.Duration `cf:"session_timeout"`
}

// SetDefaults fills in the defaults above.
func (c *Config) SetDefaults() {
	*c = Config{Root: DefaultRoot, SessionTimeout: DefaultSessionTimeout}
}

// Validate checks every key; prefix is the key path of the section ("peer").
func (c *Config) Validate(prefix string) error {
	if err := validateRoot(c.Root); err != nil {
		return fmt.Errorf("%s.root: %v", prefix, err)
	}
	if c.SessionTimeout < MinSessionTimeout || c.SessionTimeout > MaxSessionTimeout {
		return fmt.Errorf("%s.session_timeout: must be %s..%s, got %s", prefix,
			MinSessionTimeout, MaxSessionTimeout, c.SessionTimeout)
	}
	return nil
}

func validateRoot(root string) error {
	switch {
	case root == "/":
		return fmt.Errorf("must not be \"/\": every node would register beside /zookeeper")
	case root == "/zookeeper" || strings.HasPrefix(root, "/zookeeper/"):
		return fmt.Errorf("%q is ZooKeeper's own tree", root)
	}
	return validatePath(root)
}

// validatePath checks that p is an absolute ZooKeeper path without empty,
// "." or ".." components and without a trailing "/".
func validatePath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q is not an absolute ZooKeeper path (it must start with \"/\")", p)
	}
	if p == "/" {
		return nil
	}
	for _, part := range strings.Split(p[1:], "/") {
		switch part {
		case "":
			return fmt.Errorf("%q has an empty component (\"//\" or a trailing \"/\")", p)
		case ".", "..":
			return fmt.Errorf("%q has a relative component %q", p, part)
		}
	}
	return nil
}

// ValidateServers checks the ZooKeeper addresses of etcd_servers: each a
// host:port with a port 1..65535; key is the key path for the message
// ("etcd_servers"). An empty list is valid (no cluster).
func ValidateServers(key string, servers []string) error {
	for i, s := range servers {
		if err := validateAddr(s); err != nil {
			return fmt.Errorf("%s[%d]: not a ZooKeeper host:port: %v", key, i, err)
		}
	}
	return nil
}
