package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// This file is the client side of the process benchmarks: a closed loop of
// persistent sessions, each sending its next call as soon as the last one is
// answered, for a fixed time.

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, 100 ticks
// per second on every Linux architecture Go supports (proc(5): sysconf(_SC_CLK_TCK)).
const userHZ = 100

// callTimeout bounds each read and write of a call, so that a hung faed fails
// the benchmark instead of hanging it.
const callTimeout = 5 * time.Second

// benchContext is the Context of every call (faed refuses rid 0 and an empty reason).
var benchContext = &rpc.Context{Rid: 1, Reason: "bench"}

// session is one persistent connection to faed: binary protocol, buffered
// transport, as PHP and Python clients speak.
type session struct {
	trans  thrift.TTransport
	client *rpc.FunServantClient
}

// dialSession connects to addr within connectTimeout.
func dialSession(addr string, connectTimeout time.Duration) (*session, error) {
	sock := thrift.NewTSocketConf(addr, &thrift.TConfiguration{ConnectTimeout: connectTimeout, SocketTimeout: callTimeout})
	trans := thrift.NewTBufferedTransport(sock, 4096)
	if err := trans.Open(); err != nil {
		return nil, err
	}
	return &session{trans: trans, client: rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil))}, nil
}

func (s *session) close() { s.trans.Close() }

// openSessions opens n sessions to addr; on an error it closes those opened.
func openSessions(addr string, n int) ([]*session, error) {
	pool := make([]*session, 0, n)
	for range n {
		s, err := dialSession(addr, 5*time.Second)
		if err != nil {
			closeSessions(pool)
			return nil, err
		}
		pool = append(pool, s)
	}
	return pool, nil
}

func closeSessions(pool []*session) {
	for _, s := range pool {
		s.close()
	}
}

// callFunc makes one call on s; it returns an error for a failed call or a wrong answer.
type callFunc func(s *session) error

// loadResult is what one measured window of load gave.
type loadResult struct {
	calls    int64         // calls answered within the window
	window   time.Duration // wall time of the window
	cpu      time.Duration // faed's user+system CPU time over the window
	p50, p99 time.Duration // call latency seen by the client
	rssKiB   int64         // faed's VmRSS at the end of the window, KiB
	others   float64       // CPU of every other process on the machine over the window, in cores
}

func (r loadResult) callsPerSec() float64 { return float64(r.calls) / r.window.Seconds() }

// cpuPerCall is faed's CPU time per call in µs.
func (r loadResult) cpuPerCall() float64 {
	return float64(r.cpu.Microseconds()) / float64(r.calls)
}

// loadPhase is where a closed loop is: warming up, measuring, or stopped.
type loadPhase = int32

const (
	phaseWarmup loadPhase = iota
	phaseMeasure
	phaseStop
)

// runLoad keeps every session busy with call for warmup and then for window,
// and measures the window: the calls answered in it, their latencies, and
// faed's CPU time and RSS from /proc. The loop stops by itself after the
// window; it stops early and returns the error at the first failed call.
func runLoad(f *faedProc, pool []*session, call callFunc, warmup, window time.Duration) (loadResult, error) {
	var phase atomic.Int32
	lat := make([][]time.Duration, len(pool))
	failed := make(chan error, len(pool))
	var wg sync.WaitGroup
	for i, s := range pool {
		lat[i] = make([]time.Duration, 0, 1<<15)
		wg.Go(func() { lat[i] = loop(s, call, &phase, lat[i], failed) })
	}
	res, err := measureWindow(f, &phase, warmup, window, failed)
	phase.Store(phaseStop)
	wg.Wait()
	if err != nil {
		return res, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res.calls = int64(len(all))
	if res.calls == 0 {
		return res, fmt.Errorf("no call was answered in the %s window", window)
	}
	res.p50, res.p99 = quantile(all, 0.50), quantile(all, 0.99)
	return res, nil
}

// loop calls until the phase is phaseStop, and appends to lat the latency of
// each call answered while measuring.
func loop(s *session, call callFunc, phase *atomic.Int32, lat []time.Duration, failed chan<- error) []time.Duration {
	for phase.Load() != phaseStop {
		start := time.Now()
		if err := call(s); err != nil {
			failed <- err
			return lat
		}
		if phase.Load() == phaseMeasure {
			lat = append(lat, time.Since(start))
		}
	}
	return lat
}

// measureWindow waits out the warmup, then opens the window, waits it out and
// closes it, reading faed's and the machine's CPU time at both ends.
func measureWindow(f *faedProc, phase *atomic.Int32, warmup, window time.Duration, failed <-chan error) (loadResult, error) {
	var res loadResult
	if err := waitOrFail(warmup, failed); err != nil {
		return res, err
	}
	cpu0, err0 := procCPU(f.cmd.Process.Pid)
	self0, err1 := procCPU(os.Getpid())
	busy0, err2 := machineBusy()
	start := time.Now()
	phase.Store(phaseMeasure)
	err := waitOrFail(window, failed)
	phase.Store(phaseStop)
	res.window = time.Since(start)
	cpu1, err3 := procCPU(f.cmd.Process.Pid)
	self1, err4 := procCPU(os.Getpid())
	busy1, err5 := machineBusy()
	rss, err6 := f.rssKiB()
	if err := errors.Join(err, err0, err1, err2, err3, err4, err5, err6); err != nil {
		return res, err
	}
	res.cpu, res.rssKiB = cpu1-cpu0, rss
	// Clamped at 0: each of the three readings is rounded to 1/userHZ s.
	res.others = max(0, ((busy1-busy0)-res.cpu-(self1-self0)).Seconds()/res.window.Seconds())
	return res, nil
}

// waitOrFail waits d (the fixed length of a load phase), or less if a call fails.
func waitOrFail(d time.Duration, failed <-chan error) error {
	select {
	case err := <-failed:
		return fmt.Errorf("call failed: %w", err)
	case <-time.After(d):
		return nil
	}
}

// quantile is the nearest-rank q-quantile of sorted (not empty).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// procCPU is process pid's user plus system CPU time so far, from
// /proc/<pid>/stat (utime and stime, fields 14 and 15, in 1/userHZ s).
func procCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Field 2, the command, is in parentheses and may hold spaces: count from the last ')'.
	var fields []string // fields[0] is field 3, the state
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 {
		fields = strings.Fields(string(stat[i+1:]))
	}
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format %q", pid, stat)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ticks(utime + stime), nil
}

// procSyscalls is the number of read and write system calls process pid
// has made so far (syscr + syscw of /proc/<pid>/io: read, readv, write,
// writev, sendmsg... whatever their size; not epoll, accept or close).
func procSyscalls(pid int) (int64, error) {
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, line := range strings.Split(string(io), "\n") {
		for _, key := range []string{"syscr: ", "syscw: "} {
			if rest, ok := strings.CutPrefix(line, key); ok {
				n, err := strconv.ParseInt(rest, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/io: %w", pid, err)
				}
				sum += n
			}
		}
	}
	return sum, nil
}

// procSwitches is the number of context switches the threads of process pid
// have made so far: voluntary_ctxt_switches + nonvoluntary_ctxt_switches of
// each /proc/<pid>/task/<tid>/status (the process's own status file counts
// its main thread only). A switch is a thread leaving its CPU: it blocked
// (epoll_wait, a futex: nothing to run) or was preempted; each costs the
// kernel's schedule() and, when the thread is woken, a wake-up, on the
// server's CPU. Threads that ended within the window take their counts
// with them (Go keeps its threads).
func procSwitches(pid int) (int64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range tasks {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, line := range strings.Split(string(status), "\n") {
			for _, key := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
				if rest, ok := strings.CutPrefix(line, key); ok {
					n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
					if err != nil {
						return 0, fmt.Errorf("/proc/%d/task/%s/status: %w", pid, t.Name(), err)
					}
					sum += n
				}
			}
		}
	}
	return sum, nil
}

// machineBusy is the CPU time all CPUs of the machine have spent on anything
// but idle and iowait since boot, from the "cpu" line of /proc/stat (user nice
// system idle iowait irq softirq steal, in 1/userHZ s; guest is inside user).
func machineBusy() (time.Duration, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, f := range fields[1:9] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return ticks(busy), nil
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / userHZ }
