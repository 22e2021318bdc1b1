package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAllowFromAndAcceptWait: rpc.allow_from and rpc.accept_wait parse, have
// their defaults, and a bad value is an error naming the key.
func TestAllowFromAndAcceptWait(t *testing.T) {
	c, err := Parse("test", []byte(`{rpc: {listen_addr: "127.0.0.1:1", allow_from: ["10.0.0.0/8", "2001:db8::/32"], accept_wait: "250ms"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.RPC.AcceptWait != 250*time.Millisecond {
		t.Errorf("accept_wait = %s", c.RPC.AcceptWait)
	}
	for ip, want := range map[string]bool{"10.1.2.3": true, "::ffff:10.1.2.3": true, "11.0.0.1": false,
		"2001:db8::1": true, "127.0.0.1": false} {
		if got := c.RPC.Allows(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Allows(%s) = %v, want %v", ip, got, want)
		}
	}
	if c, err = Parse("test", []byte(adminBase+"}")); err != nil || len(c.RPC.AllowFrom) != 0 ||
		c.RPC.AcceptWait != 100*time.Millisecond || !c.RPC.Allows(netip.MustParseAddr("192.0.2.1")) {
		t.Fatalf("defaults: allow_from %q accept_wait %s, %v; want everyone and 100ms", c.RPC.AllowFrom, c.RPC.AcceptWait, err)
	}
	for conf, want := range map[string]string{
		`{rpc: {listen_addr: "127.0.0.1:1", allow_from: ["10.0.0.0/8", "10.0.0.1"]}}`: `rpc.allow_from[1]: not a CIDR`,
		`{rpc: {listen_addr: "127.0.0.1:1", allow_from: "10.0.0.0/8"}}`:               `allow_from`,
		`{rpc: {listen_addr: "127.0.0.1:1", accept_wait: "-1s"}}`:                     `rpc.accept_wait: must be 0s..10s`,
		`{rpc: {listen_addr: "127.0.0.1:1", accept_wait: "11s"}}`:                     `rpc.accept_wait: must be 0s..10s`,
	} {
		if _, err := Parse("test", []byte(conf)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", conf, err, want)
		}
	}
}
