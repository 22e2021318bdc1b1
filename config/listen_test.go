package config

import (
	"slices"
	"strings"
	"testing"
)

func parseRPC(t *testing.T, rpc string) (*Config, error) {
	t.Helper()
	return Parse("test", []byte(`{ rpc: { `+rpc+` } }`))
}

// TestListenAddrForms: rpc.listen_addr is one address as a string or several
// as a list; both decode into ListenAddrs, in file order.
func TestListenAddrForms(t *testing.T) {
	for _, tc := range []struct {
		rpc  string
		want []string
	}{
		{`listen_addr: "127.0.0.1:9001"`, []string{"127.0.0.1:9001"}},
		{`listen_addr: "/run/fae/faed.sock"`, []string{"/run/fae/faed.sock"}},
		{`listen_addr: [ "127.0.0.1:9001" ]`, []string{"127.0.0.1:9001"}},
		{`listen_addr: [ "/run/fae/faed.sock", ":9001" ]`, []string{"/run/fae/faed.sock", ":9001"}},
		{`listen_addr: [ "127.0.0.1:9001", "127.0.0.2:9001", "./faed.sock", "/run/b.sock" ]`,
			[]string{"127.0.0.1:9001", "127.0.0.2:9001", "./faed.sock", "/run/b.sock"}},
		{"listen_addr: [\n\"/run/fae/faed.sock\"\n\":9001\"\n]", []string{"/run/fae/faed.sock", ":9001"}}, // HJSON: no commas
	} {
		c, err := parseRPC(t, tc.rpc)
		if err != nil {
			t.Errorf("%s: %v", tc.rpc, err)
			continue
		}
		if !slices.Equal(c.RPC.ListenAddrs, tc.want) || !slices.Equal(c.RPC.Addrs(), tc.want) || c.RPC.ListenAddr != "" {
			t.Errorf("%s: ListenAddrs %q, Addrs %q, ListenAddr %q; want %q", tc.rpc,
				c.RPC.ListenAddrs, c.RPC.Addrs(), c.RPC.ListenAddr, tc.want)
		}
	}
}

// TestListenAddrBad: every bad listen_addr is refused with the key, the index
// of the address when the file gives several, and what is wrong.
func TestListenAddrBad(t *testing.T) {
	for _, tc := range []struct{ rpc, want string }{
		{`protocol: "binary"`, "rpc.listen_addr: required"},
		{`listen_addr: ""`, "rpc.listen_addr: required"},
		{`listen_addr: []`, "rpc.listen_addr: required"},
		{`listen_addr: 9001`, "'rpc.listen_addr' want an address string or a list of them, got 9001"},
		{`listen_addr: { tcp: ":9001" }`, "'rpc.listen_addr' want an address string or a list of them"},
		{`listen_addr: [ [ ":9001" ] ]`, "'rpc.listen_addr[0]' expected type 'string'"},
		{`listen_addr: "localhost"`, `rpc.listen_addr: "localhost" is neither host:port, :port nor a unix socket path`},
		{`listen_addr: [ ":9001", "localhost" ]`, `rpc.listen_addr[1]: "localhost" is neither host:port`},
		{`listen_addr: [ ":9001", "" ]`, `rpc.listen_addr[1]: empty address`},
		{`listen_addr: [ "/run/fae/", ":9001" ]`, `rpc.listen_addr[0]: "/run/fae/" ends in "/"`},
		{`listen_addr: ":http"`, `rpc.listen_addr: ":http": the port must be a number 0..65535, got "http"`},
		{`listen_addr: [ "/a.sock", "127.0.0.1:70000" ]`, `rpc.listen_addr[1]: "127.0.0.1:70000": the port must be a number 0..65535`},
		{`listen_addr: [ ":9001", "/a.sock", ":9001" ]`, `rpc.listen_addr[2]: ":9001" is listed twice: also rpc.listen_addr[0] (":9001")`},
		{`listen_addr: [ "127.0.0.1:0", "127.0.0.1:0" ]`, `rpc.listen_addr[1]: "127.0.0.1:0" is listed twice`},
		{`listen_addr: [ "/run/fae.sock", "/run/fae.sock" ]`, `rpc.listen_addr[1]: "/run/fae.sock" is listed twice`},
		{`listen_addr: [ "/run/fae.sock", ":9001", "/run/./fae.sock" ]`,
			`rpc.listen_addr[2]: "/run/./fae.sock" is the same unix socket as rpc.listen_addr[0] ("/run/fae.sock")`},
		{`listen_addr: [ "faed.sock/", "./x/../faed.sock" ]`, `rpc.listen_addr[0]: "faed.sock/" ends in "/"`},
		{`listen_addr: [ "127.0.0.1:9001", ":9001" ]`,
			`rpc.listen_addr[1]: ":9001" overlaps (port 9001 on every interface) rpc.listen_addr[0] ("127.0.0.1:9001")`},
		{`listen_addr: [ "0.0.0.0:9001", "10.0.0.5:9001" ]`, `rpc.listen_addr[1]: "10.0.0.5:9001" overlaps (port 9001 on every interface)`},
		{`listen_addr: [ "[::]:9001", "0.0.0.0:9001" ]`, `rpc.listen_addr[1]: "0.0.0.0:9001" overlaps`},
	} {
		_, err := parseRPC(t, tc.rpc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to contain %q", tc.rpc, err, tc.want)
		}
	}
	// Addresses that merely look alike are fine: port 0 on every interface and
	// on one address (each listener gets a port of its own), one port on two
	// addresses, two sockets.
	for _, rpc := range []string{
		`listen_addr: [ ":0", "127.0.0.1:0" ]`,
		`listen_addr: [ "127.0.0.1:9001", "127.0.0.2:9001", "127.0.0.1:9002" ]`,
		`listen_addr: [ "/run/a.sock", "/run/b.sock", ":9001" ]`,
	} {
		if _, err := parseRPC(t, rpc); err != nil {
			t.Errorf("%s: %v", rpc, err)
		}
	}
}

// TestAdvertiseAddr: rpc.advertise_addr defaults to "" and, when set, must be
// a TCP host:port that peers can dial.
func TestAdvertiseAddr(t *testing.T) {
	for _, a := range []string{"10.0.0.5:9001", "fae1.example.com:9001", "[2001:db8::5]:9001", "127.0.0.1:65535"} {
		c, err := parseRPC(t, `listen_addr: "/run/fae.sock", advertise_addr: "`+a+`"`)
		if err != nil || c.RPC.AdvertiseAddr != a {
			t.Errorf("advertise_addr %q: %v, got %+v", a, err, c)
		}
	}
	for _, tc := range []struct{ addr, want string }{
		{"/run/fae.sock", `rpc.advertise_addr: "/run/fae.sock" is a unix socket path: peers reach each other over TCP`},
		{"10.0.0.5", `rpc.advertise_addr: "10.0.0.5" is not host:port`},
		{":9001", `rpc.advertise_addr: ":9001" names no host peers can dial`},
		{"0.0.0.0:9001", `rpc.advertise_addr: "0.0.0.0:9001" names no host peers can dial`},
		{"[::]:9001", `rpc.advertise_addr: "[::]:9001" names no host`},
		{"10.0.0.5:0", `rpc.advertise_addr: "10.0.0.5:0": the port must be a number 1..65535, got "0"`},
		{"10.0.0.5:fae", `the port must be a number 1..65535, got "fae"`},
		{"10.0.0.5:65536", `the port must be a number 1..65535, got "65536"`},
	} {
		_, err := parseRPC(t, `listen_addr: ":9001", advertise_addr: "`+tc.addr+`"`)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("advertise_addr %q: err %v, want it to contain %q", tc.addr, err, tc.want)
		}
	}
}

// TestListenAddrRestartKeys: changing the listen addresses or the advertised
// one needs a restart; one address written as a string or as a list of one is
// no change.
func TestListenAddrRestartKeys(t *testing.T) {
	parse := func(rpc string) *Config {
		c, err := parseRPC(t, rpc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	one := parse(`listen_addr: "127.0.0.1:9001"`)
	if keys := RestartKeys(one, parse(`listen_addr: [ "127.0.0.1:9001" ]`)); len(keys) != 0 {
		t.Errorf("string vs list of one: %v", keys)
	}
	two := parse(`listen_addr: [ "127.0.0.1:9001", "/run/fae.sock" ], advertise_addr: "10.0.0.5:9001"`)
	if keys := RestartKeys(one, two); !slices.Equal(keys, []string{"rpc.listen_addr", "rpc.advertise_addr"}) {
		t.Errorf("RestartKeys = %v, want [rpc.listen_addr rpc.advertise_addr]", keys)
	}
}
