package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/fae-go/fae/dashboard"
	"github.com/fae-go/fae/engine"
)

// A bare ":port" binds loopback, the page is served, and stop closes the
// listener; "" serves nothing.
func TestServeDashboard(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	if bound, stop, err := serveDashboard("", dashboard.Sources{}, logger); bound != "" || err != nil {
		t.Fatalf("off: %q %v", bound, err)
	} else {
		stop()
	}
	bound, stop, err := serveDashboard(":0", dashboard.Sources{Engine: new(engine.Stats), Self: "127.0.0.1:9001"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(bound, "127.0.0.1:") {
		t.Errorf(":0 bound %s, want loopback", bound)
	}
	resp, err := http.Get("http://" + bound + "/api/samples")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"dashboard":"http://`+bound+`/"`) {
		t.Errorf("/api/samples: %d %s; want this node linked to %s", resp.StatusCode, body, bound)
	}
	stop()
	if _, err := http.Get("http://" + bound + "/"); err == nil {
		t.Error("the dashboard still answers after stop")
	}
	if _, _, err := serveDashboard("127.0.0.1:-1", dashboard.Sources{}, logger); err == nil ||
		!strings.Contains(err.Error(), "dashboard_listen_addr") {
		t.Errorf("bad address: %v, want an error naming dashboard_listen_addr", err)
	}
}

// The address advertised to the cluster: the bound one, with the node's
// host in place of an unspecified one.
func TestAdvertisedDashboard(t *testing.T) {
	for _, c := range []struct{ bound, self, want string }{
		{"", "10.0.0.1:9001", ""},
		{"127.0.0.1:9102", "10.0.0.1:9001", "127.0.0.1:9102"},
		{"0.0.0.0:9102", "10.0.0.1:9001", "10.0.0.1:9102"},
		{"[::]:9102", "[fd00::1]:9001", "[fd00::1]:9102"},
		{"[::]:9102", "", "[::]:9102"},
	} {
		if got := advertisedDashboard(c.bound, c.self); got != c.want {
			t.Errorf("advertisedDashboard(%q, %q) = %q, want %q", c.bound, c.self, got, c.want)
		}
	}
}
