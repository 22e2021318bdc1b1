package peer

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func ipnet(s string) net.Addr {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func ifaces(addrs ...net.Addr) func() ([]net.Addr, error) {
	return func() ([]net.Addr, error) { return addrs, nil }
}

func TestAdvertiseAddr(t *testing.T) {
	lo4, lo6 := ipnet("127.0.0.1/8"), ipnet("::1/128")
	ll4, ll6 := ipnet("169.254.3.4/16"), ipnet("fe80::1/64")
	v4a, v4b := ipnet("10.1.2.3/24"), ipnet("192.168.7.8/24")
	v6 := ipnet("2001:db8::5/64")
	for _, tc := range []struct {
		name, listen string
		ifaces       func() ([]net.Addr, error)
		want         string
	}{
		{"host:port stays", "127.0.0.1:9001", ifaces(v4a), "127.0.0.1:9001"},
		{"name:port stays", "fae1.example:9001", ifaces(v4a), "fae1.example:9001"},
		{"ipv6 host stays", "[2001:db8::9]:9001", ifaces(v4a), "[2001:db8::9]:9001"},
		{":port gets the first non-loopback IPv4", ":9001", ifaces(lo4, lo6, ll4, v6, v4a, v4b), "10.1.2.3:9001"},
		{"0.0.0.0 counts as every interface", "0.0.0.0:9001", ifaces(lo4, v4b), "192.168.7.8:9001"},
		{"[::] counts as every interface", "[::]:9001", ifaces(lo4, v4b), "192.168.7.8:9001"},
		{"IPv6 when there is no IPv4", ":9001", ifaces(lo4, lo6, ll6, v6), "[2001:db8::5]:9001"},
		{"IPAddr values work too", ":9001", ifaces(&net.IPAddr{IP: net.ParseIP("10.9.9.9")}), "10.9.9.9:9001"},
	} {
		got, err := AdvertiseAddr(tc.listen, tc.ifaces)
		if err != nil || got != tc.want {
			t.Errorf("%s: AdvertiseAddr(%q) = %q, %v; want %q", tc.name, tc.listen, got, err, tc.want)
		}
	}
}

func TestAdvertiseAddrRefuses(t *testing.T) {
	lo := ifaces(ipnet("127.0.0.1/8"), ipnet("::1/128"), ipnet("fe80::1/64"))
	failing := func() ([]net.Addr, error) { return nil, errors.New("no netlink") }
	for _, tc := range []struct {
		listen string
		ifaces func() ([]net.Addr, error)
		want   string
	}{
		{"/run/fae.sock", lo, "unix socket; peers need a TCP host:port"},
		{"./fae.sock", lo, "unix socket"},
		{"127.0.0.1", lo, "is not host:port"},
		{":0", lo, "port must be 1..65535"},
		{"127.0.0.1:http", lo, "port must be 1..65535"},
		{":9001", lo, "no non-loopback address; set rpc.advertise_addr"},
		{":9001", failing, "listing the interfaces: no netlink"},
	} {
		got, err := AdvertiseAddr(tc.listen, tc.ifaces)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AdvertiseAddr(%q) = %q, %v; want an error containing %q", tc.listen, got, err, tc.want)
		}
	}
}

// The real interface list: this machine has some address to advertise or
// says clearly that it has none.
func TestAdvertiseAddrRealInterfaces(t *testing.T) {
	got, err := AdvertiseAddr(":9001", nil)
	if err != nil && !strings.Contains(err.Error(), "no non-loopback address") {
		t.Fatal(err)
	}
	if err == nil {
		host, port, _ := net.SplitHostPort(got)
		if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() || port != "9001" {
			t.Fatalf("AdvertiseAddr(:9001) = %q: want a non-loopback address and port 9001", got)
		}
	}
}
