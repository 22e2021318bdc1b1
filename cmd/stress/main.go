// Command stress loads fae nodes the way a PHP site does and reports
// throughput, latency percentiles and errors.
//
//	stress [-x 78] [-loop 1] [-c N | -c1 10 -c2 5000 -step 10] [-n 100 | -d 10s] [-rate R]
//	       [-addr host:port|/path/faed.sock | -host H | -zk host:port,… -root /fae]
//	       [-protocol binary|compact] [-framed] [-keepalive] [-payload 100] [-timeout 4s]
//	       [-logoff] [-erroff] [-neatstat=false] [-json]
//
// By default each session connects, makes -loop rounds of the calls the -x
// bitmask picks, and closes, as a php-fpm request does (-keepalive keeps each
// worker's connection instead). Closed loop: -c workers run sessions back
// to back, or a sweep over concurrency levels -c1..-c2 by -step (the
// original's), each level bounded by -n rounds (n × c sessions) or -d. Open
// loop (-rate): sessions are due at a fixed rate and every call's latency
// counts from when it was due, so a stalled server shows in the percentiles
// (coordinated omission, as wrk2 measures).
//
// It prints a progress line every second and, at the end (or on SIGINT), the
// report: elapsed, calls and sessions with their rates, latency percentiles,
// and errors by kind with the first message of each. Exit status: 0 when no
// error occurred, 1 when one did (or ZooKeeper showed no node), 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is stress with its arguments; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "stress: %v\n", err)
		}
		return 2
	}
	mix, err := NewMix(o.x, o.targets)
	if err != nil {
		fmt.Fprintf(stderr, "stress: %v\n", err)
		return 2
	}
	info := stdout // progress and banners; the report alone goes to stdout with -json
	if o.json {
		info = stderr
	}
	picker := NewPicker([]Target{{Addr: o.addr, Protocol: o.protocol, Framed: o.framed}})
	if o.zk != "" {
		p, stop, err := Discover(strings.Split(o.zk, ","), o.root, o.zkTimeout)
		if err != nil {
			fmt.Fprintf(stderr, "stress: %v\n", err)
			return 1
		}
		defer stop()
		picker = p
	}
	var errOut io.Writer // a line per error, unless -erroff or -logoff
	if !o.erroff && !o.logoff {
		errOut = stderr
	}
	rep := runLevels(ctx, o, mix, picker, errOut, info)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.WriteText(stdout)
	}
	for _, ec := range rep.Errors {
		if ec.Count > 0 {
			return 1
		}
	}
	return 0
}
