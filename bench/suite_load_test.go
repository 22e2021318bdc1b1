package bench

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the measuring core of BenchmarkSuite (make bench): a closed
// loop of c workers against one variant (faed or a baseline) for a warmup and
// a window, reading the CPU time and RSS of the variant's server process(es)
// and of the backends behind them from /proc.

// variant is one way of serving a scenario's call: faed, or a baseline.
type variant struct {
	name    string
	server  []int // pids whose CPU per call is the "server" figure (and whose RSS is summed); none for a direct client
	backend []int // pids of the backends behind it (memcached, mariadbd, …), reported apart
	// open makes one worker's call: a persistent connection, or a session
	// opened and closed by each call. close releases what open took.
	open func() (call func() error, close func(), err error)
}

// sample is what one measured window gave for one variant.
type sample struct {
	calls      int64
	window     time.Duration
	cpu        time.Duration // utime+stime of variant.server over the window
	backendCPU time.Duration // the same of variant.backend
	p50, p99   time.Duration // client-side latency of one call
	rssKiB     int64         // VmRSS of variant.server at the end of the window, summed
	syscalls   int64         // read and write system calls of variant.server over the window
	switches   int64         // context switches of variant.server's threads over the window
}

func (s sample) callsPerSec() float64 { return float64(s.calls) / s.window.Seconds() }

// cpuPerCall is the server's CPU per call in µs.
func (s sample) cpuPerCall() float64 { return float64(s.cpu.Microseconds()) / float64(s.calls) }

// syscallsPerCall is the server's read and write system calls per call.
func (s sample) syscallsPerCall() float64 { return float64(s.syscalls) / float64(s.calls) }

// switchesPerCall is the server's context switches per call.
func (s sample) switchesPerCall() float64 { return float64(s.switches) / float64(s.calls) }

func (s sample) backendPerCall() float64 {
	return float64(s.backendCPU.Microseconds()) / float64(s.calls)
}

// point is every round of one variant at one concurrency of one scenario.
type point struct {
	scenario, variant string
	c                 int
	server, backend   bool // whether the variant has server and backend processes measured
	samples           []sample
}

func (p *point) series(f func(sample) float64) spread {
	xs := make([]float64, len(p.samples))
	for i, s := range p.samples {
		xs[i] = f(s)
	}
	return spreadOf(xs)
}

// workers are one variant's open calls at one concurrency.
type workers struct {
	calls  []func() error
	closes []func()
}

// openWorkers opens c workers of v and makes one call on each (connections
// and backend pools warm, the key in place).
func openWorkers(v variant, c int) (*workers, error) {
	w := &workers{}
	for range c {
		call, closer, err := v.open()
		if err != nil {
			w.close()
			return nil, fmt.Errorf("%s: opening a worker: %w", v.name, err)
		}
		w.calls, w.closes = append(w.calls, call), append(w.closes, closer)
		if err := call(); err != nil {
			w.close()
			return nil, fmt.Errorf("%s: first call: %w", v.name, err)
		}
	}
	return w, nil
}

func (w *workers) close() {
	for _, c := range w.closes {
		c()
	}
}

// measure keeps every worker calling for warmup and then window, and
// measures the window. It returns at the first failed call with its error.
func measure(v variant, w *workers, warmup, window time.Duration) (sample, error) {
	var phase atomic.Int32
	lat := make([][]time.Duration, len(w.calls))
	failed := make(chan error, len(w.calls))
	var wg sync.WaitGroup
	for i, call := range w.calls {
		wg.Go(func() {
			for phase.Load() != phaseStop {
				start := time.Now()
				if err := call(); err != nil {
					failed <- err
					return
				}
				if phase.Load() == phaseMeasure {
					lat[i] = append(lat[i], time.Since(start))
				}
			}
		})
	}
	s, err := measureProcs(v, &phase, warmup, window, failed)
	phase.Store(phaseStop)
	wg.Wait()
	if err != nil {
		return s, fmt.Errorf("%s: %w", v.name, err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if s.calls = int64(len(all)); s.calls == 0 {
		return s, fmt.Errorf("%s: no call was answered in the %s window", v.name, window)
	}
	s.p50, s.p99 = quantile(all, 0.50), quantile(all, 0.99)
	return s, nil
}

// measureProcs waits out the warmup, then the window, reading the CPU time of
// v's processes at both ends of the window and their RSS at its end.
func measureProcs(v variant, phase *atomic.Int32, warmup, window time.Duration, failed <-chan error) (sample, error) {
	var s sample
	if err := waitOrFail(warmup, failed); err != nil {
		return s, err
	}
	srv0, err0 := sumCPU(v.server)
	be0, err1 := sumCPU(v.backend)
	sys0, err5 := sumSyscalls(v.server)
	sw0, err7 := sumSwitches(v.server)
	start := time.Now()
	phase.Store(phaseMeasure)
	err := waitOrFail(window, failed)
	phase.Store(phaseStop)
	s.window = time.Since(start)
	srv1, err2 := sumCPU(v.server)
	be1, err3 := sumCPU(v.backend)
	sys1, err6 := sumSyscalls(v.server)
	sw1, err8 := sumSwitches(v.server)
	rss, err4 := sumRSS(v.server)
	s.cpu, s.backendCPU, s.rssKiB, s.syscalls, s.switches = srv1-srv0, be1-be0, rss, sys1-sys0, sw1-sw0
	return s, errors.Join(err, err0, err1, err2, err3, err4, err5, err6, err7, err8)
}

// sumOver is f summed over pids (CPU time, syscalls, context switches or RSS of a variant's processes).
func sumOver[T time.Duration | int64](pids []int, f func(pid int) (T, error)) (T, error) {
	var sum T
	for _, pid := range pids {
		v, err := f(pid)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

func sumCPU(pids []int) (time.Duration, error) { return sumOver(pids, procCPU) }

func sumSyscalls(pids []int) (int64, error) { return sumOver(pids, procSyscalls) }

func sumSwitches(pids []int) (int64, error) { return sumOver(pids, procSwitches) }

func sumRSS(pids []int) (int64, error) { return sumOver(pids, pidRSSKiB) }

// pidRSSKiB is process pid's resident set size in KiB (VmRSS of /proc/<pid>/status).
func pidRSSKiB(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS line", pid)
}
