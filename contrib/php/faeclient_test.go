// Package php holds the PHP client (FaeClient.php) and its tests, which run
// php-cli (Debian php-cli, php-thrift) against real faed processes.
package php_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/faedtest"
	"github.com/fae-go/fae/internal/testenv"
)

var faedBin, faeconfBin string

func TestMain(m *testing.M) {
	dir := faedtest.BuildMains("php-test-", map[string]*string{"/cmd/faed": &faedBin, "/cmd/faeconf": &faeconfBin})
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pageBound is the longest a page may take with one dead node and one frozen
// node among three: FaeClient's default probe_timeout_ms (200 ms, the frozen
// node accepts the connect into its backlog but never answers the ping), a
// refused connect to the dead one (no wait on loopback), the page's own few
// calls, and 300 ms of slack for a loaded machine.
const pageBound = 500 * time.Millisecond

// page is one line of cluster_pages.php.
type page struct {
	Page   int               `json:"page"`
	Start  float64           `json:"start"` // Unix seconds
	Ms     float64           `json:"ms"`
	Node   string            `json:"node"`
	Failed map[string]string `json:"failed"`
	Error  string            `json:"error"`
}

func (p page) started() time.Time {
	return time.UnixMicro(int64(p.Start * 1e6))
}

// runPages runs cluster_pages.php on nodes (faeconf's JSON file or a list)
// and returns its pages and whether it exited 0.
func runPages(t *testing.T, nodes string, n, pauseMs int) ([]page, bool) {
	t.Helper()
	cmd := exec.Command("php", "cluster_pages.php", nodes, fmt.Sprint(n), fmt.Sprint(pauseMs))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("php cluster_pages.php: %v", err)
	}
	var pages []page
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var p page
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("cluster_pages.php printed %q: %v\nstderr: %s", sc.Text(), err, stderr.String())
		}
		pages = append(pages, p)
	}
	if len(pages) != n {
		t.Fatalf("cluster_pages.php printed %d pages, want %d:\n%s\nstderr: %s", len(pages), n, out, stderr.String())
	}
	return pages, err == nil
}

// checkPages fails the test unless every page succeeded within pageBound;
// it returns how often each node served a page and how often each was
// given up, with one reason of each.
func checkPages(t *testing.T, pages []page) (served, failed map[string]int, why map[string]string) {
	t.Helper()
	served, failed, why = map[string]int{}, map[string]int{}, map[string]string{}
	var slowest float64
	for _, p := range pages {
		if p.Error != "" {
			t.Errorf("page %d failed after %.1f ms: %s", p.Page, p.Ms, p.Error)
			continue
		}
		served[p.Node]++
		for addr, reason := range p.Failed {
			failed[addr]++
			why[addr] = reason
		}
		slowest = max(slowest, p.Ms)
	}
	if time.Duration(slowest*float64(time.Millisecond)) > pageBound {
		t.Errorf("slowest page took %.1f ms, bound %s", slowest, pageBound)
	}
	t.Logf("%d pages: slowest %.1f ms; served by %v; nodes given up %v", len(pages), slowest, served, failed)
	return served, failed, why
}

func requirePHP(t *testing.T) {
	if _, err := os.Stat("/usr/lib/php/Transport/TSocket.php"); err != nil {
		t.Fatalf("Debian php-thrift is not installed (make test installs it): %v", err)
	}
}

// TestFailoverNodeList: with a list of three nodes, one killed and one
// frozen, every page is served by the live one, quickly; both faulty nodes
// were tried and given up with the cause; with no live node the page fails
// naming each node.
func TestFailoverNodeList(t *testing.T) {
	requirePHP(t)
	a := faedtest.Start(t, faedBin, "binary", false, 1)
	b := faedtest.Start(t, faedBin, "binary", false, 2)
	c := faedtest.Start(t, faedBin, "binary", false, 3)
	list := strings.Join([]string{a.Addr(), b.Addr(), c.Addr()}, ",")

	pages, ok := runPages(t, list, 45, 0)
	served, failed, _ := checkPages(t, pages)
	if !ok || len(failed) > 0 || len(served) != 3 {
		t.Errorf("all nodes up: exit ok %v, served by %v (want all three), given up %v (want none)", ok, served, failed)
	}

	b.Kill(t)
	c.Freeze()
	pages, ok = runPages(t, list, 45, 0)
	served, failed, why := checkPages(t, pages)
	if !ok || !reflect.DeepEqual(served, map[string]int{a.Addr(): 45}) {
		t.Errorf("b killed, c frozen: exit ok %v, served by %v, want %s only", ok, served, a.Addr())
	}
	if failed[b.Addr()] == 0 || !strings.Contains(why[b.Addr()], "Connection refused") {
		t.Errorf("the killed node was never given up, or not as refused: %d times, %q", failed[b.Addr()], why[b.Addr()])
	}
	if failed[c.Addr()] == 0 || !strings.Contains(why[c.Addr()], "timed out reading") {
		t.Errorf("the frozen node was never given up, or not by the probe's timeout: %d times, %q", failed[c.Addr()], why[c.Addr()])
	}

	pages, ok = runPages(t, b.Addr()+","+c.Addr(), 1, 0)
	if ok || !strings.Contains(pages[0].Error, "no fae node could be used (2 of 2 tried)") ||
		!strings.Contains(pages[0].Error, b.Addr()+": ") || !strings.Contains(pages[0].Error, c.Addr()+": ") {
		t.Errorf("no live node: exit ok %v, error %q; want the page failed naming both nodes", ok, pages[0].Error)
	}
	if time.Duration(pages[0].Ms*float64(time.Millisecond)) > pageBound {
		t.Errorf("the failing page took %.1f ms, bound %s", pages[0].Ms, pageBound)
	}
	c.Thaw()
}

// TestFailoverFaeconfFile: FaeClient on faeconf's JSON file speaks each
// node's own protocol and transport, keeps every page working with one node
// killed and one frozen, and reads the file on every page: once faeconf drops
// the killed node, pages of the same PHP process stop trying it.
func TestFailoverFaeconfFile(t *testing.T) {
	requirePHP(t)
	z := testenv.StartZooKeeper(t)
	const root = "/fae"
	a := faedtest.Start(t, faedBin, "binary", false, 1)
	b := faedtest.Start(t, faedBin, "compact", true, 2)
	c := faedtest.Start(t, faedBin, "binary", true, 3)
	ra := faedtest.RegisterNode(t, z.Addr(), root, a)
	for _, n := range []*faedtest.Node{b, c} {
		faedtest.RegisterNode(t, z.Addr(), root, n)
	}
	nodesFile := filepath.Join(t.TempDir(), "fae_nodes.json")
	startFaeconf(t, "-zk", z.Addr(), "-root", root, "-json", nodesFile, "-session-timeout", "1s")
	all := []string{a.Addr(), b.Addr(), c.Addr()}
	waitNodes(t, nodesFile, all...)

	pages, ok := runPages(t, nodesFile, 45, 0)
	served, failed, _ := checkPages(t, pages)
	if !ok || len(failed) > 0 || len(served) != 3 {
		t.Errorf("all nodes up: exit ok %v, served by %v (want all three, each in its protocol), given up %v", ok, served, failed)
	}

	a.Kill(t)
	b.Freeze()
	const n = 90
	cmd := exec.Command("php", "cluster_pages.php", nodesFile, fmt.Sprint(n), "20")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines, tenPages := make(chan []string, 1), make(chan struct{})
	go func() {
		var got []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if got = append(got, sc.Text()); len(got) == 20 {
				close(tenPages)
			}
		}
		lines <- got
	}()
	select {
	case <-tenPages:
	case <-time.After(30 * time.Second):
		t.Fatal("cluster_pages.php printed no 20 pages in 30s")
	}
	ra.Close() // a's registration ends, as its session would: faeconf drops it
	waitNodes(t, nodesFile, b.Addr(), c.Addr())
	dropped := time.Now()
	got := <-lines
	err = cmd.Wait()
	pages = parsePages(t, []byte(strings.Join(got, "\n")))
	served, _, _ = checkPages(t, pages)
	if err != nil || !reflect.DeepEqual(served, map[string]int{c.Addr(): n}) {
		t.Errorf("a killed, b frozen: php %v, served by %v, want %s only", err, served, c.Addr())
	}
	var before, after, triedBefore int
	for _, p := range pages {
		_, tried := p.Failed[a.Addr()]
		switch {
		case p.started().After(dropped):
			after++
			if tried {
				t.Errorf("page %d started %s after the file dropped %s and still tried it", p.Page,
					p.started().Sub(dropped), a.Addr())
			}
		case p.Page <= 20: // before a's registration ended
			before++
			if tried {
				triedBefore++
			}
		}
	}
	t.Logf("pages before the rewrite %d (%d tried the killed node), after %d", before, triedBefore, after)
	if after < 10 || triedBefore == 0 {
		t.Errorf("the run does not show the file read per page: %d pages after the rewrite, %d before tried the killed node",
			after, triedBefore)
	}
	b.Thaw()
}

func parsePages(t *testing.T, out []byte) []page {
	t.Helper()
	var pages []page
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var p page
		if err := json.Unmarshal(line, &p); err != nil {
			t.Fatalf("cluster_pages.php printed %q: %v", line, err)
		}
		pages = append(pages, p)
	}
	return pages
}

// startFaeconf runs the faeconf binary until the test ends.
func startFaeconf(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(faeconfBin, args...)
	log := new(testenv.SyncBuffer)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("faeconf log:\n%s", log.String())
		}
	})
}

// waitNodes polls faeconf's JSON file until it lists exactly addrs.
func waitNodes(t *testing.T, path string, addrs ...string) {
	t.Helper()
	want := append([]string(nil), addrs...)
	sort.Strings(want)
	testenv.Eventually(t, 20*time.Second, path+" listing "+strings.Join(want, " "), func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		var l struct{ Nodes []struct{ Addr string } }
		if json.Unmarshal(b, &l) != nil {
			return false
		}
		got := []string{}
		for _, n := range l.Nodes {
			got = append(got, n.Addr)
		}
		return reflect.DeepEqual(got, want)
	})
}
