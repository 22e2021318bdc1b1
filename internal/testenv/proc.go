package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// RSS is the resident set of process pid (VmRSS of /proc/<pid>/status),
// bytes; 0 when it cannot be read (the process has exited).
func RSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// SampleRSS reads the RSS of process pid now and then every 10 ms; the
// function it returns stops the sampling and returns the RSS at the start
// and the peak seen since, bytes.
func SampleRSS(pid int) (stop func() (base, peak int64)) {
	base := RSS(pid)
	var max atomic.Int64
	max.Store(base)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if rss := RSS(pid); rss > max.Load() {
				max.Store(rss)
			}
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() (int64, int64) {
		close(quit)
		<-done
		return base, max.Load()
	}
}

// Percentile is the p-th percentile (0..100, nearest rank) of sorted, an
// ascending slice; 0 when it is empty.
func Percentile(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// ServerSockets reads this machine's /proc/net/tcp for the established TCP
// connections whose local port is port (a server on 127.0.0.1:port, counted
// on the server's side): how many there are, and the bytes received on them
// and not yet read (rx_queue: what a frozen server has not taken). An error
// when the table cannot be read.
func ServerSockets(port int) (conns, unread int, err error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, 0, err
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		// sl local_address rem_address st tx_queue:rx_queue …; st 01 = ESTABLISHED
		if len(fs) < 5 || !strings.HasSuffix(fs[1], want) || fs[3] != "01" {
			continue
		}
		conns++
		if _, rx, ok := strings.Cut(fs[4], ":"); ok {
			v, _ := strconv.ParseInt(rx, 16, 64)
			unread += int(v)
		}
	}
	return conns, unread, nil
}
