package engine

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// AddrList is the type of the listen_addr key: one address or several. In
// faed.cf it is written as a string (one address) or a list of strings; the
// config package decodes either form into an AddrList.
type AddrList []string

// IsUnixAddr reports whether a listen address names a unix socket: it
// contains a "/" ("./faed.sock", "/run/fae/faed.sock"); anything else is TCP.
func IsUnixAddr(addr string) bool { return strings.Contains(addr, "/") }

// Addrs returns the listen addresses: ListenAddrs, or ListenAddr alone when
// ListenAddrs is empty, or nil when neither is set. The result is a new slice.
func (c *Config) Addrs() []string {
	if len(c.ListenAddrs) > 0 {
		return append([]string(nil), c.ListenAddrs...)
	}
	if c.ListenAddr != "" {
		return []string{c.ListenAddr}
	}
	return nil
}

// addrKey is the key path of the i-th of n listen addresses:
// "rpc.listen_addr" when there is one, "rpc.listen_addr[1]" when several.
func addrKey(prefix string, i, n int) string {
	if n == 1 {
		return prefix + ".listen_addr"
	}
	return fmt.Sprintf("%s.listen_addr[%d]", prefix, i)
}

// validateAddrs checks listen_addr and advertise_addr.
func (c *Config) validateAddrs(prefix string) error {
	if len(c.ListenAddrs) > 0 && c.ListenAddr != "" {
		return fmt.Errorf("%s.listen_addr: both ListenAddrs %q and ListenAddr %q are set: set one", prefix,
			[]string(c.ListenAddrs), c.ListenAddr)
	}
	addrs := c.Addrs()
	if len(addrs) == 0 || len(addrs) == 1 && addrs[0] == "" {
		return fmt.Errorf("%s.listen_addr: required", prefix)
	}
	for i, a := range addrs {
		if err := checkListenAddr(a); err != nil {
			return fmt.Errorf("%s: %v", addrKey(prefix, i, len(addrs)), err)
		}
		for j := range i {
			if clash := addrClash(addrs[j], a); clash != "" {
				return fmt.Errorf("%s: %q %s %s (%q)", addrKey(prefix, i, len(addrs)), a, clash,
					addrKey(prefix, j, len(addrs)), addrs[j])
			}
		}
	}
	if c.AdvertiseAddr != "" {
		if err := checkAdvertiseAddr(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("%s.advertise_addr: %v", prefix, err)
		}
	}
	return nil
}

// checkListenAddr checks the form of one listen address.
func checkListenAddr(a string) error {
	switch {
	case a == "":
		return errors.New("empty address")
	case IsUnixAddr(a):
		if strings.HasSuffix(a, "/") {
			return fmt.Errorf("%q ends in \"/\": a unix socket needs a file name", a)
		}
		return nil
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is neither host:port, :port nor a unix socket path (a path contains \"/\")", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number 0..65535, got %q", a, port)
	}
	return nil
}

// addrClash says how the valid listen addresses a and b would collide, or "".
func addrClash(a, b string) string {
	if IsUnixAddr(a) != IsUnixAddr(b) {
		return ""
	}
	if a == b {
		return "is listed twice: also"
	}
	if IsUnixAddr(a) {
		if filepath.Clean(a) == filepath.Clean(b) {
			return "is the same unix socket as"
		}
		return ""
	}
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" { // port 0: each listener gets a port of its own
		return ""
	}
	if ha == hb {
		return "is listed twice: also"
	}
	if isWildcard(ha) || isWildcard(hb) {
		return "overlaps (port " + pa + " on every interface)"
	}
	return ""
}

// isWildcard reports whether host means every interface: "", "0.0.0.0", "::".
func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// checkAdvertiseAddr checks a set advertise_addr: TCP host:port that peers can dial.
func checkAdvertiseAddr(a string) error {
	if IsUnixAddr(a) {
		return fmt.Errorf("%q is a unix socket path: peers reach each other over TCP, give host:port", a)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if isWildcard(host) {
		return fmt.Errorf("%q names no host peers can dial: give this node's address or name, as \"10.0.0.5:9001\"", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number 1..65535, got %q", a, port)
	}
	return nil
}

// PeerAddr is the TCP address this node is reached at by its peers, before
// peer.AdvertiseAddr completes a ":port" or "0.0.0.0:port" form with the
// host's address: AdvertiseAddr when set, else the first TCP address of Addrs
// as configured (its host kept: a name stays a name), with port 0 replaced by
// the port its listener got. lns are the listeners ListenAll returned for c,
// in the same order; they are read only for a port 0.
//
// Errors: no TCP address and no advertise_addr ("peers need TCP"), or lns not
// matching c's addresses.
func (c *Config) PeerAddr(lns []net.Listener) (string, error) {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr, nil
	}
	addrs := c.Addrs()
	for i, a := range addrs {
		if IsUnixAddr(a) {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return "", fmt.Errorf("rpc.listen_addr %q: %v", a, err)
		}
		if port != "0" {
			return a, nil
		}
		if len(lns) != len(addrs) {
			return "", fmt.Errorf("rpc.listen_addr: %d listeners for %d addresses", len(lns), len(addrs))
		}
		_, real, err := net.SplitHostPort(lns[i].Addr().String())
		if err != nil || real == "0" {
			return "", fmt.Errorf("rpc.listen_addr %q: listener %s has no TCP port", a, lns[i].Addr())
		}
		return net.JoinHostPort(host, real), nil
	}
	return "", errors.New("rpc.listen_addr has no TCP address and rpc.advertise_addr is not set: peers reach a node over TCP")
}
