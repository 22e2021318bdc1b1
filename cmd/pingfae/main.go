// Command pingfae pings fae nodes and prints each node's answer and round trip.
//
//	pingfae [-addr host:port | -host HOST -port PORT] [-loops N] [-protocol binary|compact] [-framed]
//	pingfae -zk host:port,… [-root /fae] [-loops N]
//
// With -zk it pings every node registered under -root in ZooKeeper, each in
// the protocol and transport its record advertises (read-only: it never
// registers or changes anything there); otherwise the one node of -addr (a
// host:port or the path of faed's unix socket), or -host and -port. Each
// ping is one ping call on one connection per node, -timeout bounding the
// connect and every call.
//
// It prints one line per ping, a per-node line when -loops > 1, and a
// summary. Exit status: 0 when every node answered every ping, 1 when one
// did not (or ZooKeeper could not be read, or no node is registered), 2 on
// bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of the flags. The host and port are the original pingfae's and
// faed's embedded default RPC address (127.0.0.1:9001).
const (
	defaultHost     = "127.0.0.1"
	defaultPort     = 9001
	defaultTimeout  = 2 * time.Second
	defaultParallel = 16
)

type options struct {
	addr, host, zk, root, protocol string
	port, loops, parallel          int
	framed                         bool
	timeout, zkTimeout             time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := new(options)
	fs := flag.NewFlagSet("pingfae", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "", "the node to ping: host:port or faed's unix socket path (overrides -host and -port)")
	fs.StringVar(&o.host, "host", defaultHost, "the node's host")
	fs.IntVar(&o.port, "port", defaultPort, "the node's port")
	fs.StringVar(&o.zk, "zk", "", "ZooKeeper servers, host:port,…: ping every node registered under -root")
	fs.StringVar(&o.root, "root", "/fae", "the registration root in ZooKeeper (faed's peer.root)")
	fs.IntVar(&o.loops, "loops", 1, "pings per node, one after another on one connection")
	fs.StringVar(&o.protocol, "protocol", "binary", "Thrift protocol: binary or compact (with -zk: for nodes whose record does not say)")
	fs.BoolVar(&o.framed, "framed", false, "framed transport instead of buffered (with -zk: as -protocol)")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "bound of the connect and of each ping")
	fs.DurationVar(&o.zkTimeout, "zk-timeout", 5*time.Second, "bound of the whole ZooKeeper read")
	fs.IntVar(&o.parallel, "parallel", defaultParallel, "nodes pinged at once")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.protocol != "binary" && o.protocol != "compact":
		return nil, fmt.Errorf("-protocol must be binary or compact, got %q", o.protocol)
	case o.loops < 1:
		return nil, fmt.Errorf("-loops must be at least 1, got %d", o.loops)
	case o.parallel < 1:
		return nil, fmt.Errorf("-parallel must be at least 1, got %d", o.parallel)
	case o.timeout <= 0 || o.zkTimeout <= 0:
		return nil, errors.New("-timeout and -zk-timeout must be positive")
	case o.zk == "" && o.addr == "" && (o.port < 1 || o.port > 65535):
		return nil, fmt.Errorf("-port must be 1..65535, got %d", o.port)
	}
	if o.zk != "" && o.addr != "" {
		return nil, errors.New("-zk and -addr exclude each other")
	}
	if o.addr == "" {
		o.addr = net.JoinHostPort(o.host, strconv.Itoa(o.port))
	}
	return o, nil
}

// run is pingfae with its arguments; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "pingfae: %v\n", err)
		}
		return 2
	}
	targets := []target{{addr: o.addr, protocol: o.protocol, framed: o.framed}}
	if o.zk != "" {
		servers := strings.Split(o.zk, ",")
		if targets, err = discover(ctx, servers, o.root, o.zkTimeout, o.protocol, o.framed); err != nil {
			fmt.Fprintf(stderr, "pingfae: %v\n", err)
			return 1
		}
		if len(targets) == 0 {
			fmt.Fprintf(stderr, "pingfae: no node registered under %s in ZooKeeper %s\n", o.root, o.zk)
			return 1
		}
	}
	failed := pingAll(ctx, targets, o, stdout)
	fmt.Fprintln(stdout, summary(len(targets), failed))
	if len(failed) > 0 {
		return 1
	}
	return 0
}

// summary is the closing line, e.g. "3 nodes: 2 ok, 1 failed: 127.0.0.1:9003".
func summary(n int, failed []string) string {
	s := fmt.Sprintf("%d nodes: %d ok, %d failed", n, n-len(failed), len(failed))
	if n == 1 {
		s = strings.Replace(s, "nodes", "node", 1)
	}
	if len(failed) > 0 {
		s += ": " + strings.Join(failed, " ")
	}
	return s
}
