package peer

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// AdvertiseAddr is the host:port a node registers under, from a listen
// address (rpc.listen_addr, or rpc.advertise_addr when set):
//   - "host:port" stays as it is (a name or an address; 127.0.0.1 included);
//   - ":port", "0.0.0.0:port" and "[::]:port" (every interface) get the host's
//     first non-loopback, non-link-local IPv4 address, or failing that its
//     first such IPv6 address, in the order ifaces lists them (the original
//     took the first non-loopback IPv4 address; nil ifaces =
//     net.InterfaceAddrs);
//   - a unix socket path (it contains a "/") is refused: peers reach each
//     other over TCP.
//
// The port must be 1..65535: pass the listener's real address when the
// configuration says port 0. Errors name the address and what is wrong.
func AdvertiseAddr(listen string, ifaces func() ([]net.Addr, error)) (string, error) {
	if strings.Contains(listen, "/") {
		return "", fmt.Errorf("advertised address: %q is a unix socket; peers need a TCP host:port", listen)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("advertised address: %q is not host:port: %v", listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("advertised address: %q: port must be 1..65535", listen)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return listen, nil
	}
	if ifaces == nil {
		ifaces = net.InterfaceAddrs
	}
	addrs, err := ifaces()
	if err != nil {
		return "", fmt.Errorf("advertised address for %q: listing the interfaces: %v", listen, err)
	}
	ip := firstUsableIP(addrs)
	if ip == nil {
		return "", fmt.Errorf("advertised address for %q: the host has no non-loopback address; set rpc.advertise_addr", listen)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// firstUsableIP is the first IPv4 address of addrs that is neither loopback,
// link-local nor unspecified, else the first such IPv6 address, else nil.
func firstUsableIP(addrs []net.Addr) net.IP {
	var v6 net.IP
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		default:
			continue
		}
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
			continue
		}
		if v4 := ip.To4(); v4 != nil {
			return v4
		}
		if v6 == nil {
			v6 = ip
		}
	}
	return v6
}
