package bench

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/fae-go/fae/internal/testenv"
)

// The scenarios of BenchmarkSuite, numbered as in issue 10.

// suiteFaedConf is faed's config for the suite: RPC on addr (and on the unix
// socket unixPath when not empty), binary protocol, buffered transport, no
// idle limit, and servantsExtra in the servants section.
func suiteFaedConf(unixPath, pprofAddr, servantsExtra string) func(addr string) string {
	return func(addr string) string {
		listen := strconv.Quote(addr)
		if unixPath != "" {
			listen = fmt.Sprintf("[%q, %q]", addr, unixPath)
		}
		return fmt.Sprintf(`{
    pprof_listen_addr: %q
    rpc: { listen_addr: %s, protocol: "binary", framed: false, session_timeout: "0s" }
    servants: {
        idgen_worker_id: 1
        %s
    }
}`, pprofAddr, listen, servantsExtra)
	}
}

// startFaed starts faed on suiteFaedConf; with FAE_BENCH_PROFILE set, its
// pprof endpoint listens on s.pprofAddr.
func (s *suite) startFaed(unixPath, servantsExtra string) (*faedProc, int) {
	if s.profile != "" {
		s.pprofAddr, s.pprofAddr2 = testenv.FreeAddr(s.b), ""
	}
	f := startFaedProcConf(s.b, s.faedBin, s.dir, suiteFaedConf(unixPath, s.pprofAddr, servantsExtra))
	return f, f.cmd.Process.Pid
}

// baselines starts the bare TSimpleServer and the echo floor (moving the byte
// counts of call on faed at faedAddr) on addresses like faedAddr's (TCP, or a
// unix socket in the suite's directory), and returns their variants.
func (s *suite) baselines(faedAddr, tag string, call callFunc, session bool) []variant {
	simpleAddr, echoAddr := testenv.FreeAddr(s.b), testenv.FreeAddr(s.b)
	if netOf(faedAddr) == "unix" {
		simpleAddr, echoAddr = filepath.Join(s.dir, tag+"-simple.sock"), filepath.Join(s.dir, tag+"-echo.sock")
	}
	req, resp, err := byteCounts(faedAddr, call)
	if err != nil {
		s.b.Fatalf("byte counts on faed %s: %v", faedAddr, err)
	}
	simple := s.startChild("simple", simpleAddr, s.simpleBin, "-addr", simpleAddr)
	echo := s.startChild("echo", echoAddr, s.echoBin, "-addr", echoAddr, "-req", strconv.Itoa(req), "-resp", strconv.Itoa(resp))
	open, echoOpen := persistent(simpleAddr, call), echoPersistent(echoAddr, req, resp)
	if session {
		open, echoOpen = perSession(simpleAddr, call), echoSession(echoAddr, req, resp)
	}
	return []variant{
		{name: "TSimpleServer", server: []int{simple.Process.Pid}, open: open},
		{name: fmt.Sprintf("raw echo %d/%d B", req, resp), server: []int{echo.Process.Pid}, open: echoOpen},
	}
}

// scenarioNoop is 1: noop over persistent connections, faed vs the bare
// TSimpleServer vs the raw echo floor.
func scenarioNoop(s *suite) {
	f, pid := s.startFaed("", "")
	vs := append([]variant{{name: "faed", server: []int{pid}, open: persistent(f.addr, noopCall)}},
		s.baselines(f.addr, "noop", noopCall, false)...)
	s.runLevels("1 noop", sweepLevels, vs)
	f.stop(s.b)
}

// scenarioSessions is 2: php-fpm sessions (connect, ping, close) over TCP and
// over a unix socket, each against the same baselines on the same transport.
func scenarioSessions(s *suite) {
	sock := filepath.Join(s.dir, "faed.sock")
	f, pid := s.startFaed(sock, "")
	for _, tr := range []struct{ name, addr string }{{"tcp", f.addr}, {"unix", sock}} {
		vs := append([]variant{{name: "faed", server: []int{pid}, open: perSession(tr.addr, pingCall)}},
			s.baselines(tr.addr, "ping-"+tr.name, pingCall, true)...)
		s.runLevels("2 sessions "+tr.name, sweepLevels, vs)
	}
	f.stop(s.b)
}

// scenarioLcache is 3: lc_set and lc_get of 100 B and 10 KB values (a key per
// worker), beside noop on the same faed for the lc_get ≤ 1.2× noop target.
func scenarioLcache(s *suite) {
	f, pid := s.startFaed("", `lcache: { max_items: 1048576, max_bytes: 268435456 }`)
	vs := []variant{{name: "noop", server: []int{pid}, open: persistent(f.addr, noopCall)}}
	var seq atomic.Int64
	for _, size := range []int{100, 10 << 10} {
		value := bytes.Repeat([]byte{'v'}, size)
		label := fmt.Sprintf("%d B", size)
		if size >= 1<<10 {
			label = fmt.Sprintf("%d KB", size>>10)
		}
		set := func(sess *session, key string) error {
			ok, err := sess.client.LcSet(context.Background(), benchContext, key, value)
			if err == nil && !ok {
				err = fmt.Errorf("lc_set %s refused", key)
			}
			return err
		}
		vs = append(vs, variant{name: "lc_set " + label, server: []int{pid}, open: func() (func() error, func(), error) {
			key := fmt.Sprintf("bench:lc:set:%d", seq.Add(1))
			return persistent(f.addr, func(sess *session) error { return set(sess, key) })()
		}}, variant{name: "lc_get " + label, server: []int{pid}, open: func() (func() error, func(), error) {
			key := fmt.Sprintf("bench:lc:get:%d", seq.Add(1))
			call, closer, err := persistent(f.addr, func(sess *session) error { return set(sess, key) })()
			if err == nil {
				err = call() // the key in place before its first lc_get
			}
			if err != nil {
				return nil, nil, err
			}
			get := persistent(f.addr, func(sess *session) error {
				got, err := sess.client.LcGet(context.Background(), benchContext, key)
				return checkValue(got, err, value)
			})
			closer()
			return get()
		}})
	}
	vs = append(vs, s.lcacheFloor(f.addr)...)
	s.runLevels("3 lcache", twoLevels, vs)
	f.stop(s.b)
}

// lcacheFloor is the raw echoes of the byte counts of an lc_get of 100 B,
// of 10 KB and of a noop: what the kernel's copy of those bytes costs
// without faed. Their ratios are the floors of lc_get / noop: the share of
// those ratios the kernel and Go's netpoller take whatever faed does
// (printed beside the targets, not gated).
func (s *suite) lcacheFloor(addr string) []variant {
	var vs []variant
	for _, size := range []int{100, 10 << 10} {
		key, value := "bench:lc:floor", bytes.Repeat([]byte{'v'}, size)
		set := func(sess *session) error {
			_, err := sess.client.LcSet(context.Background(), benchContext, key, value)
			return err
		}
		req, resp, err := byteCounts(addr, func(sess *session) error {
			if err := set(sess); err != nil {
				return err
			}
			got, err := sess.client.LcGet(context.Background(), benchContext, key)
			return checkValue(got, err, value)
		})
		if err != nil {
			s.b.Fatal(err)
		}
		// The lc_set went first on that connection: take its bytes out.
		setReq, setResp, err := byteCounts(addr, set)
		if err != nil {
			s.b.Fatal(err)
		}
		label := "100 B"
		if size > 100 {
			label = "10 KB"
		}
		vs = append(vs, s.echoVariant("raw echo lc_get "+label, req-setReq, resp-setResp))
	}
	noopReq, noopResp, err := byteCounts(addr, noopCall)
	if err != nil {
		s.b.Fatal(err)
	}
	return append(vs, s.echoVariant("raw echo noop", noopReq, noopResp))
}

// echoVariant is a raw echo server started for req/resp bytes a call, named
// name followed by its byte counts.
func (s *suite) echoVariant(name string, req, resp int) variant {
	echoAddr := testenv.FreeAddr(s.b)
	echo := s.startChild("echo", echoAddr, s.echoBin, "-addr", echoAddr, "-req", strconv.Itoa(req), "-resp", strconv.Itoa(resp))
	return variant{name: fmt.Sprintf("%s %d/%d B", name, req, resp), server: []int{echo.Process.Pid}, open: echoPersistent(echoAddr, req, resp)}
}
