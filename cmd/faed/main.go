// Command faed is the fae daemon: it serves FunServant over Thrift.
//
//	faed [-conf FILE] [-t] [-level LEVEL] [-log FILE] [-lockfile FILE] [-version]
//	faed -k [-lockfile FILE] [-kwait DURATION]
//
// Without -conf it runs on the embedded default config (RPC 127.0.0.1:9001, HTTP
// API 127.0.0.1:9101, dashboard 127.0.0.1:9102, no backends). SIGTERM, SIGINT
// or SIGUSR1 (the original's graceful signal) drains it: it leaves the cluster, stops accepting, lets calls
// in flight finish (at most rpc.shutdown_timeout) and exits 0. SIGHUP, and a
// change of the -conf file (checked every reload_watchdog_interval), reload the
// config (see reload.go). faed -k stops the faed of the lock file that way and
// waits for its exit. A bad config at start makes it exit 2 with a message
// naming the file and the key.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/internal/gcfloor"
	"github.com/fae-go/fae/servant"
)

// Set at link time by the Makefile (-ldflags -X).
var (
	version = "dev"
	buildID = "unknown"
)

// faultHook, when set (only by the faetest build tag), adds fault injection to the servant options.
var faultHook func(*servant.Options)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type flags struct {
	conf, level, logFile, lockFile string
	check, version, kill           bool
	killWait                       time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := new(flags)
	fs := flag.NewFlagSet("faed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.conf, "conf", "", "config file (loose JSON); empty = the embedded default config")
	fs.BoolVar(&f.check, "t", false, "check the config and exit: 0 if it is good, 2 if not")
	fs.StringVar(&f.level, "level", "info", "log level: trace, debug, info, warn, error, alarm")
	fs.StringVar(&f.logFile, "log", "stdout", "log to stdout or to this file (appended)")
	fs.StringVar(&f.lockFile, "lockfile", "faed.lock", "pid file, locked while faed runs; empty = none")
	fs.BoolVar(&f.version, "version", false, "print the version and build id and exit")
	fs.BoolVar(&f.kill, "k", false, "stop the faed of -lockfile gracefully (SIGTERM) and wait for its exit: 0 = stopped")
	fs.DurationVar(&f.killWait, "kwait", 90*time.Second, "with -k: how long to wait for the exit")
	return f, fs.Parse(args)
}

func run(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	if f.version {
		fmt.Fprintf(stdout, "faed %s (build: %s) built with %s for %s/%s\n", version, buildID,
			runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	}
	if f.kill {
		return killInstance(f.lockFile, f.killWait, stdout, stderr)
	}
	signal.Ignore(syscall.SIGHUP) // until serve handles it: a reload while starting must not kill faed
	cfg, name, data, err := loadConfig(f.conf)
	if err != nil {
		fmt.Fprintf(stderr, "faed: %v\n", err)
		return 2
	}
	if f.check {
		fmt.Fprintf(stdout, "faed: config %s is good\n", name)
		return 0
	}
	lo, err := openLog(f.level, f.logFile, cfg.Log, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "faed: %v\n", err)
		return 2
	}
	defer lo.Close()
	logger := lo.Logger
	slog.SetDefault(logger)

	if f.lockFile != "" {
		unlock, err := lockPIDFile(f.lockFile)
		if err != nil {
			logger.Error("cannot start", "err", err)
			return 1
		}
		defer unlock()
	}
	if err := serve(cfg, name, f.conf, data, lo); err != nil {
		logger.Error("faed stopped", "err", err)
		return 1
	}
	return 0
}

// loadConfig reads and checks the -conf file path ("" = the embedded
// default). It returns the config, its name for messages and the file's
// content (what the reload watchdog compares with).
func loadConfig(path string) (*config.Config, string, []byte, error) {
	if path == "" {
		c, err := config.Parse(config.DefaultName, config.Default)
		return c, config.DefaultName, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, path, nil, fmt.Errorf("config %s: %w", path, err)
	}
	c, err := config.Parse(path, data)
	return c, path, data, err
}

// serve runs faed until SIGTERM, SIGINT or SIGUSR1, then drains it. confPath
// is the -conf file ("" = embedded) whose content was data.
func serve(cfg *config.Config, confName, confPath string, data []byte, lo *logOutput) error {
	logger, level := lo.Logger, lo.Level
	runtime.GOMAXPROCS(cfg.GoMaxProcs(runtime.NumCPU()))
	if cfg.MemoryLimit > 0 {
		setMemoryLimit(cfg.MemoryLimit)
	}
	floor := gcfloor.Start(uint64(cfg.GCHeapFloor))
	defer floor.Stop()
	warnUnserved(cfg, logger)
	raiseFileLimit(&cfg.RPC, logger)
	metricsLog, err := openMetricsLog(cfg.MetricsLogfile, cfg.Log, os.Stderr)
	if err != nil {
		return err
	}

	// One throttle for every per-call warning and error line in the process,
	// the engine's and the servant's alike.
	callLog := slog.New(engine.NewThrottledHandler(logger.Handler(), engine.DefaultCallLogRate, engine.DefaultCallLogBurst))
	lns, err := engine.ListenAll(cfg.RPC)
	if err != nil {
		return err
	}
	closeListeners := func() {
		for _, l := range lns {
			l.Close()
		}
	}
	cl, err := joinCluster(cfg, lns, logger)
	if err != nil {
		closeListeners()
		return err
	}
	defer cl.close()
	opts := servant.Options{Version: version, BuildID: buildID, Logger: logger, CallLogger: callLog, TraceLogger: lo.Trace}
	cl.options(&opts)
	if faultHook != nil {
		faultHook(&opts)
	}
	svt, err := servant.New(cfg.Servants, opts)
	if err != nil {
		closeListeners()
		return err
	}
	defer closeServant(svt, logger)
	var ready atomic.Bool                               // /ready: serving, not starting or draining
	rl := newReloader(confPath, data, cfg, svt, logger) // rl.reload and rl.counts are for the HTTP API too
	rl.floor = floor
	var proc thrift.TProcessor = servant.NewProcessor(svt)
	if cl != nil { // a node without a cluster forwards nothing: no peer's exception to pass
		proc = thrift.WrapProcessor(proc, passPeerExceptions)
	}
	srv := engine.NewServer(cfg.RPC, proc, logger)
	srv.CallLogger = callLog
	m := newMetrics(cfg, srv, svt, cl, rl, ready.Load, func() map[string][2]uint64 {
		d := lo.Drops()
		if metricsLog != nil {
			r, b := metricsLog.Dropped()
			d["metrics"] = [2]uint64{r, b}
		}
		return d
	})
	defer m.Stop()
	pprofAddr, stopPprof, err := servePprof(cfg.PprofListenAddr, logger)
	if err != nil {
		closeListeners()
		return err
	}
	defer stopPprof()
	dashAddr, stopDash, err := serveDashboard(cfg.DashboardListenAddr, dashboardSources(srv, svt, m, cl, selfName(cl, lns)), logger)
	if err != nil {
		closeListeners()
		return err
	}
	defer stopDash()
	var api *engine.API
	httpAddr := ""
	stopReq := make(chan string, 1) // POST /engine/stop: who asked
	if cfg.HTTPListenAddr != "" {
		hl, err := net.Listen("tcp", engine.APIListenAddr(cfg.HTTPListenAddr))
		if err != nil {
			closeListeners()
			return fmt.Errorf("http_listen_addr %s: %w", cfg.HTTPListenAddr, err)
		}
		httpAddr = hl.Addr().String()
		api = engine.NewAPI(logger)
		api.HandleAdmin("/engine/loglevel", logLevelHandler(level))
		api.HandleAdmin("/engine/stop", stopHandler(stopReq))
		wireAPI(api, cfg, m, rl)
		go func() {
			if err := api.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("http api stopped", "addr", httpAddr, "err", err)
			}
		}()
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP)
	stop := make(chan struct{})
	defer close(stop)
	go rl.watch(cfg.ReloadWatchdogInterval, stop)
	go logStats(&srv.Stats, cfg.RPC.StatsOutputInterval, logger, stop)
	defer startMetricsLog(metricsLog, cfg.RPC.StatsOutputInterval, m.Line)()
	served := make(chan error, 1)
	go func() { served <- srv.ServeAll(lns) }()
	ready.Store(true)
	if err := cl.start(cfg, svt, httpAddr, advertisedDashboard(dashAddr, cl.advertised())); err != nil {
		logger.Error("cannot register in the cluster", "err", err)
	}
	logger.Info("faed started", "version", version, "build", buildID, "config", confName,
		"rpc", strings.Join(engine.ListenerAddrs(lns), ","), "advertise", cl.advertised(), "protocol", cfg.RPC.Protocol, "framed", cfg.RPC.Framed,
		"http", httpAddr, "dashboard", dashAddr, "pprof", pprofAddr, "gomaxprocs", runtime.GOMAXPROCS(0))

	if err := waitForStop(sigs, stopReq, served, rl); err != nil {
		srv.Close()
		return fmt.Errorf("rpc: %w", err)
	}
	ready.Store(false) // load balancers: /ready answers 503 while faed drains
	logger.Info("draining", "sessions", srv.Sessions(), "shutdown_timeout", cfg.RPC.ShutdownTimeout)
	start := time.Now()
	cl.leave(logger) // peers stop sending; what they sent is still answered
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RPC.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(ctx)
	if api != nil {
		// A context of its own: the drain's may be spent already.
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		api.Shutdown(actx)
		acancel()
	}
	if err != nil {
		logger.Warn("drain timed out; remaining sessions closed and their calls cancelled", "err", err)
	}
	logger.Info("faed stopped", "drain", time.Since(start).Round(time.Millisecond),
		"sessions", srv.Stats.Sessions.Load(), "calls", srv.Stats.Calls.Load())
	return nil
}

// waitForStop returns nil at the first SIGTERM, SIGINT or SIGUSR1 or the
// first POST /engine/stop (stopReq gives its client), reloading the config at
// every SIGHUP meanwhile, or the error that ended serving.
func waitForStop(sigs <-chan os.Signal, stopReq <-chan string, served <-chan error, rl *reloader) error {
	for {
		select {
		case err := <-served:
			return err
		case who := <-stopReq:
			rl.logger.Info("stop requested", "by", "POST /engine/stop", "client", who)
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				rl.logger.Info("SIGHUP: reloading the config", "config", rl.path)
				rl.reload()
				continue
			}
			rl.logger.Info("stop signal", "signal", sig.String())
			return nil
		}
	}
}

// stopHandler is POST /engine/stop: it asks serve to stop as SIGTERM does
// (leave the cluster, drain, exit 0) and answers {"status": "stopping"} at
// once; a second request while the first is pending changes nothing. The
// original only stopped accepting and left the process running.
func stopHandler(stopReq chan<- string) func(*http.Request) (any, int) {
	return func(r *http.Request) (any, int) {
		select {
		case stopReq <- r.RemoteAddr:
		default: // a stop is pending already
		}
		return map[string]string{"status": "stopping"}, 200
	}
}

// servantCloseGrace bounds the wait, at exit, for the calls still running
// after the drain (cancelled by then) to end, so that pools are never closed
// under a call.
const servantCloseGrace = 5 * time.Second

// closeServant closes the servant and waits for its pools to close.
func closeServant(svt *servant.FunServant, logger *slog.Logger) {
	svt.Close()
	select {
	case <-svt.Closed():
	case <-time.After(servantCloseGrace):
		logger.Warn("calls still running at exit; pools left to the process exit", "waited", servantCloseGrace)
	}
}

// warnUnserved says which keys of cfg this build accepts but does not act on yet.
func warnUnserved(cfg *config.Config, logger *slog.Logger) {
	var keys []string
	for key, on := range map[string]bool{"servants.couchbase": cfg.Servants.Couchbase != nil} {
		if on {
			keys = append(keys, key)
		}
	}
	if len(keys) > 0 {
		logger.Warn("config sections accepted but not served by this version", "keys", strings.Join(keys, ", "))
	}
}

// lockPIDFile writes our pid into path and holds an exclusive flock on it while
// faed runs. The lock dies with the process, so a file left by a crash does not
// block a restart (the original refused to start whenever the file existed).
func lockPIDFile(path string) (func(), error) {
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("-lockfile: %w", err)
	}
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(fh)
		fh.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("-lockfile %s: another faed is running (pid %s)", path, strings.TrimSpace(string(pid)))
		}
		return nil, fmt.Errorf("-lockfile %s: %w", path, err)
	}
	fh.Truncate(0)
	fh.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	return func() {
		os.Remove(path)
		fh.Close()
	}, nil
}
