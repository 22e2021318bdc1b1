package engine

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAPIListenAddr(t *testing.T) {
	for in, want := range map[string]string{":9101": "127.0.0.1:9101", ":0": "127.0.0.1:0",
		"0.0.0.0:9101": "0.0.0.0:9101", "10.0.0.1:80": "10.0.0.1:80", "[::1]:9101": "[::1]:9101"} {
		if got := APIListenAddr(in); got != want {
			t.Errorf("APIListenAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func newAdminAPI(t *testing.T) (*API, *int) {
	t.Helper()
	a := NewAPI(slog.New(slog.DiscardHandler))
	calls := new(int)
	a.HandleAdmin("/engine/poke", func(*http.Request) (any, int) { *calls++; return map[string]string{"status": "poked"}, 200 })
	return a, calls
}

func decodeError(t *testing.T, body io.Reader) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.NewDecoder(body).Decode(&e); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return e.Error
}

// Real HTTP on loopback: POST runs the handler, GET is refused with 405, an
// unknown path is a JSON 404.
func TestAPIAdminOverHTTP(t *testing.T) {
	a, calls := newAdminAPI(t)
	ts := httptest.NewServer(a.Handler())
	defer ts.Close()

	resp, err := http.Post(ts.URL+"/engine/poke", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || *calls != 1 || !strings.Contains(string(body), "\n    \"status\": \"poked\"") {
		t.Fatalf("POST from loopback: %d %q (calls %d), want 200 with indented JSON", resp.StatusCode, body, *calls)
	}

	resp, err = http.Get(ts.URL + "/engine/poke")
	if err != nil {
		t.Fatal(err)
	}
	msg := decodeError(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" ||
		!strings.Contains(msg, "POST only, not GET") || *calls != 1 {
		t.Fatalf("GET: %d %q (Allow %q, calls %d), want 405 naming the rule", resp.StatusCode, msg, resp.Header.Get("Allow"), *calls)
	}

	resp, err = http.Get(ts.URL + "/no/such")
	if err != nil {
		t.Fatal(err)
	}
	msg = decodeError(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || msg != "not found: /no/such" {
		t.Fatalf("unknown path: %d %q", resp.StatusCode, msg)
	}
}

// A client that is not on loopback cannot be made on this machine's loopback
// sockets, so these cases set req.RemoteAddr in a handler test.
func TestAPIAdminRemoteClients(t *testing.T) {
	a, calls := newAdminAPI(t)
	if err := a.SetAdminAllow([]string{"10.1.0.0/16", "2001:db8::/32"}); err != nil {
		t.Fatal(err)
	}
	for remote, want := range map[string]int{
		"10.1.2.3:5555": 200, "[2001:db8::7]:80": 200, "[::ffff:10.1.9.9]:1": 200, "[::1]:4000": 200,
		"10.2.0.1:5555": 403, "192.168.1.1:80": 403, "bogus": 403,
	} {
		req := httptest.NewRequest("POST", "/engine/poke", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("POST from %s: %d, want %d", remote, rec.Code, want)
		}
		if want == 403 {
			if msg := decodeError(t, rec.Body); !strings.Contains(msg, "only loopback clients and those in http_admin_allow") {
				t.Errorf("POST from %s: error %q does not name the rule", remote, msg)
			}
		}
	}
	if *calls != 4 {
		t.Fatalf("handler ran %d times, want 4 (the allowed clients only)", *calls)
	}
	if err := a.SetAdminAllow([]string{"10.0.0.0/8", "nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("SetAdminAllow with a bad CIDR: %v", err)
	}
}
