// Command faeconf keeps a file of the live fae nodes for clients that cannot
// ask ZooKeeper themselves (PHP: one web request cannot open a ZooKeeper
// session). It is the original fae's configd.
//
//	faeconf -zk host:port,… [-root /fae] [-json FILE] [-php FILE] [-session-timeout 4s] [-level info]
//
// It watches the registration root (the nodes' <root>/<host:port> znodes)
// through a peer.Registry that never registers (it creates the root if it is
// missing, as every node does, and writes nothing else), and on every membership
// change rewrites each file given, atomically (a temporary file in the same
// directory, fsync, rename: a reader sees the old file or the new one, never
// a part): -json an object {generated, root, zookeeper, nodes: [{addr,
// protocol, framed, version, pid, started, idgen_worker_id, http_addr,
// dashboard_addr}]}, -php a PHP file returning the same array. At least one
// of the two is required.
//
// The membership is the cluster's own view (peer.Registry): a node joining
// appears after peer.SettleDelay, one vanished after -session-timeout more
// (so a ZooKeeper blip rewrites nothing), one leaving on purpose at once.
// While ZooKeeper is away the files stay as last written; faeconf never
// writes an empty node list (it logs instead and keeps the last file). A
// failed write is logged and tried again every second until it succeeds.
//
// It runs until SIGTERM or SIGINT and exits 0 then, 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/renameio/v2"

	"github.com/fae-go/fae/peer"
)

// retryDelay is the wait before a failed write is tried again.
const retryDelay = time.Second

type options struct {
	servers       []string
	cfg           peer.Config
	jsonFile, php string
	level         slog.Level
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := new(options)
	o.cfg.SetDefaults()
	var zkList, level string
	fs := flag.NewFlagSet("faeconf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&zkList, "zk", "", "ZooKeeper servers, host:port,… (faed's etcd_servers)")
	fs.StringVar(&o.cfg.Root, "root", peer.DefaultRoot, "the registration root (faed's peer.root)")
	fs.StringVar(&o.jsonFile, "json", "", "the JSON file to keep (FaeClient.php reads it)")
	fs.StringVar(&o.php, "php", "", "the PHP file to keep (it returns the array)")
	fs.DurationVar(&o.cfg.SessionTimeout, "session-timeout", peer.DefaultSessionTimeout,
		"ZooKeeper session timeout, also the delay before a vanished node leaves the file")
	fs.StringVar(&level, "level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	case zkList == "":
		return nil, errors.New("-zk is required")
	case o.jsonFile == "" && o.php == "":
		return nil, errors.New("give -json FILE, -php FILE or both")
	}
	o.servers = strings.Split(zkList, ",")
	if err := o.level.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-level: %v", err)
	}
	if err := o.cfg.Validate(""); err != nil { // ".root: …" or ".session_timeout: …"
		msg := strings.NewReplacer(".root:", "-root:", ".session_timeout:", "-session-timeout:").Replace(err.Error())
		return nil, errors.New(msg)
	}
	if err := peer.ValidateServers("-zk", o.servers); err != nil {
		return nil, err
	}
	return o, nil
}

// run is faeconf with its arguments until ctx ends; it returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "faeconf: %v\n", err)
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.level}))
	reg, err := peer.New(o.servers, o.cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "faeconf: %v\n", err)
		return 2
	}
	defer reg.Close()
	updates := make(chan []peer.Member)
	cancel := reg.Subscribe(func(ms []peer.Member) {
		select {
		case updates <- ms:
		case <-ctx.Done():
		}
	})
	defer cancel()
	log.Info("faeconf started", "zk", o.servers, "root", o.cfg.Root, "json", o.jsonFile, "php", o.php)
	w := &writer{o: o, log: log}
	w.loop(ctx, updates)
	log.Info("faeconf stopped")
	return 0
}

// writer writes the files from the memberships it is given.
type writer struct {
	o       *options
	log     *slog.Logger
	written []string // the addresses last written; nil = nothing written yet
}

// loop writes each membership from updates until ctx ends; a failed write
// is tried again after retryDelay unless a newer membership came.
func (w *writer) loop(ctx context.Context, updates <-chan []peer.Member) {
	var pending []peer.Member
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case pending = <-updates:
		case <-retry.C:
		}
		if pending == nil {
			continue
		}
		if err := w.update(pending, time.Now()); err != nil {
			w.log.Error("writing the node list failed; trying again", "err", err, "in", retryDelay)
			retry.Reset(retryDelay)
			continue
		}
		pending = nil
	}
}

// update writes the files for ms, or logs why not when ms is empty.
func (w *writer) update(ms []peer.Member, now time.Time) error {
	if len(ms) == 0 {
		if w.written == nil {
			w.log.Info("no live node known yet (ZooKeeper not read yet, or nothing registered under the root): nothing written",
				"root", w.o.cfg.Root)
		} else {
			w.log.Warn("no live node left: keeping the last node list (faeconf never writes an empty one)",
				"root", w.o.cfg.Root, "kept", w.written)
		}
		return nil
	}
	l := newNodeList(ms, w.o.cfg.Root, w.o.servers, now)
	for _, f := range []struct {
		path string
		data func() []byte
	}{{w.o.jsonFile, l.JSON}, {w.o.php, l.PHP}} {
		if f.path == "" {
			continue
		}
		if err := writeFile(f.path, f.data()); err != nil {
			return err
		}
	}
	w.log.Info("node list written", "nodes", l.addrs(), "was", w.written, "json", w.o.jsonFile, "php", w.o.php)
	w.written = l.addrs()
	return nil
}

// writeFile replaces path by data atomically: a temporary file in path's
// directory, fsync, rename over path (renameio), then an fsync of the
// directory so the rename itself survives a crash. A new file gets 0644
// less the umask; an existing one keeps its permissions.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := renameio.WriteFile(path, data, 0o644, renameio.WithTempDir(dir)); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
