package pool

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/fae-go/fae/internal/sockio"
)

// This file wraps the go-sql-driver connector and connections so that a
// statement whose ctx ends is stopped on the server, not only on faed's side.
// The driver, when a ctx ends, just closes the socket: MySQL does not notice a
// gone client while a statement runs (SLEEP looks every 5 s, a sort or an
// aggregate over a big table only when it sends its result), so the statement
// kept running, holding its locks and a server thread. Here each
// connection knows its server thread id, and every statement (text or
// prepared, and its rows until they are closed) arms a context.AfterFunc that
// runs `KILL QUERY <thread id>` on a fresh connection (mysqlServer.kill).

// killConnector is the database/sql connector of one server: each connection
// is dialled through the server's breaker (Breaker.Dial) and learns its
// thread id.
type killConnector struct {
	srv *mysqlServer
	raw driver.Connector // the driver's own connector (its DialFunc is dialConn)
}

// netHolder receives the socket dialled for the connection being connected.
type netHolder struct{ conn *closeOnceConn }

type netHolderKey struct{}

// dialConn is the driver's DialFunc: a plain TCP dial whose socket is handed to
// the killConnector that asked for it, so that it can close it at once.
func dialConn(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer // TCP keep-alives on (15 s), as the driver's own dial
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &closeOnceConn{Conn: sockio.Wrap(c)} // raw system calls (sockio)
	if h, ok := ctx.Value(netHolderKey{}).(*netHolder); ok {
		h.conn = cc
	}
	return cc, nil
}

// quietClosedLogger is the driver's logger minus the read errors of a socket
// faed closed itself (net.ErrClosed) to abort a statement.
type quietClosedLogger struct{ mysql.Logger }

func (l quietClosedLogger) Print(v ...any) {
	for _, a := range v {
		if err, ok := a.(error); ok && errors.Is(err, net.ErrClosed) {
			return
		}
	}
	l.Logger.Print(v...)
}

// closeOnceConn is a socket that may be closed by faed and by the driver: the
// second Close is a no-op (the driver would log its error). SyscallConn keeps
// the driver's liveness check of idle connections working.
type closeOnceConn struct {
	net.Conn
	once sync.Once
}

func (c *closeOnceConn) Close() (err error) {
	c.once.Do(func() { err = c.Conn.Close() })
	return err
}

func (c *closeOnceConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// Connect dials a connection through the breaker's dial side, bounded by the
// connect timeout (dial, handshake and the thread id query), and reads its
// thread id with SELECT CONNECTION_ID(). With a connect timeout, the dial is
// not bounded by the caller's ctx: it runs on a goroutine of its own, so
// that its outcome, counted on the breaker, is the server's, while a caller
// whose ctx ends returns at once (the connection, if one comes, is closed).
// Callers giving up after 2 ms opened a healthy server's breaker when their
// cut dials counted (found by a cluster review), and a server that accepts
// and never answers kept it closed for good when they did not count (found
// by the review of that fix).
func (k *killConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if k.srv.connectTimeout <= 0 {
		return k.dial(ctx)
	}
	type dialed struct {
		kc  driver.Conn
		err error
	}
	out := make(chan dialed, 1)
	go func() {
		kc, err := k.dial(context.WithoutCancel(ctx))
		out <- dialed{kc, err}
	}()
	select {
	case d := <-out:
		return d.kc, d.err
	case <-ctx.Done():
		go func() {
			if d := <-out; d.err == nil {
				d.kc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// dial is Connect's dial, bounded by ctx and the connect timeout.
func (k *killConnector) dial(ctx context.Context) (driver.Conn, error) {
	var kc *killConn
	err := k.srv.breaker.Dial(func() error {
		if k.srv.connectTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, k.srv.connectTimeout)
			defer cancel()
		}
		h := &netHolder{}
		dc, err := k.raw.Connect(context.WithValue(ctx, netHolderKey{}, h))
		if err != nil {
			return err
		}
		id, err := connectionID(ctx, dc)
		if err != nil {
			dc.Close()
			return fmt.Errorf("reading the connection id: %w", err)
		}
		mc, ok := dc.(mysqlDriverConn)
		if !ok {
			dc.Close()
			return fmt.Errorf("the driver's connection %T lacks an interface database/sql uses", dc)
		}
		kc = &killConn{srv: k.srv, conn: mc, sock: h.conn, id: id}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return kc, nil
}

// Driver implements driver.Connector.
func (k *killConnector) Driver() driver.Driver { return k.raw.Driver() }

// connectionID asks the server for the connection's thread id.
func connectionID(ctx context.Context, c driver.Conn) (uint64, error) {
	q, ok := c.(driver.QueryerContext)
	if !ok {
		return 0, errors.New("the driver connection cannot query")
	}
	rows, err := q.QueryContext(ctx, "SELECT CONNECTION_ID()", nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return 0, err
	}
	switch v := dest[0].(type) {
	case int64:
		return uint64(v), nil
	case uint64:
		return v, nil
	case []byte:
		return strconv.ParseUint(string(v), 10, 64)
	}
	return 0, fmt.Errorf("CONNECTION_ID() returned %T", dest[0])
}

// mysqlDriverConn is what go-sql-driver's connection implements and database/sql uses.
type mysqlDriverConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

// killConn is one pooled connection that knows its server thread id. Once a
// statement's ctx has ended while it ran, the connection is aborted: marked
// bad (database/sql closes it instead of pooling it), its socket closed at
// once (nothing more of a result is read), and the statement killed on the
// server.
type killConn struct {
	srv     *mysqlServer
	conn    mysqlDriverConn
	sock    *closeOnceConn
	id      uint64 // server thread id (CONNECTION_ID())
	bad     atomic.Bool
	aborted sync.Once
}

// watch arms the abort of this connection for when ctx ends, around one
// statement; the returned func disarms it when the statement (or its rows) is
// done. If ctx ended before the statement was done, the abort happens in any
// case, here or in the AfterFunc, never both.
func (c *killConn) watch(ctx context.Context) (done func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	stop := context.AfterFunc(ctx, func() { c.abort(ctx) })
	return func() {
		if stop() && ctx.Err() == nil {
			return
		}
		c.abort(ctx)
	}
}

// abort closes the socket and kills the running statement, once per connection.
func (c *killConn) abort(ctx context.Context) {
	c.aborted.Do(func() {
		c.bad.Store(true)
		if c.sock != nil {
			c.sock.Close()
		}
		c.srv.kill(poolOf(ctx), c.id)
	})
}

func (c *killConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *killConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	done := c.watch(ctx)
	defer done()
	st, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &killStmt{Stmt: st, conn: c}, nil
}

func (c *killConn) Close() error { return c.conn.Close() }

func (c *killConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *killConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.conn.BeginTx(ctx, opts)
}

func (c *killConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	done := c.watch(ctx)
	defer done()
	return c.conn.ExecContext(ctx, query, args)
}

func (c *killConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	done := c.watch(ctx)
	rows, err := c.conn.QueryContext(ctx, query, args)
	if err != nil {
		done()
		return nil, err
	}
	return &killRows{Rows: rows, done: done}, nil
}

func (c *killConn) Ping(ctx context.Context) error { return c.conn.Ping(ctx) }

func (c *killConn) ResetSession(ctx context.Context) error {
	if c.bad.Load() {
		return driver.ErrBadConn
	}
	return c.conn.ResetSession(ctx)
}

func (c *killConn) IsValid() bool { return !c.bad.Load() && c.conn.IsValid() }

func (c *killConn) CheckNamedValue(nv *driver.NamedValue) error { return c.conn.CheckNamedValue(nv) }

// killStmt is a prepared statement of a killConn: each execution is watched.
type killStmt struct {
	driver.Stmt
	conn *killConn
}

func (s *killStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	done := s.conn.watch(ctx)
	defer done()
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *killStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	done := s.conn.watch(ctx)
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		done()
		return nil, err
	}
	return &killRows{Rows: rows, done: done}, nil
}

func (s *killStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if nvc, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return nvc.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// killRows keeps its statement watched until the rows are closed: a ctx that
// ends while they are read aborts the connection before the driver would read
// the rest of the result to drain it.
type killRows struct {
	driver.Rows
	done func()
}

func (r *killRows) Close() error {
	r.done()
	return r.Rows.Close()
}

// KillTimeout bounds one KILL QUERY: its connection and the statement.
const KillTimeout = 3 * time.Second

// maxKillsInFlight bounds the kill connections one server opens at once.
const maxKillsInFlight = 4

// kill runs KILL QUERY id on a fresh connection of its own (not the pool's,
// which the statement's own client may have exhausted), in the background,
// bounded by KillTimeout, and reports it to the observer as op "kill" (KindMiss
// when the statement had already ended). Close waits for kills in flight;
// none starts after it.
func (s *mysqlServer) kill(pool string, id uint64) {
	s.killMu.Lock()
	defer s.killMu.Unlock()
	if s.killsDone {
		return
	}
	s.kills.Add(1)
	go func() {
		defer s.kills.Done()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), KillTimeout)
		defer cancel()
		err := s.killQuery(ctx, id)
		kind := s.classify(ctx, err)
		if me := mysqlErrorNumber(err); me == 1094 { // ER_NO_SUCH_THREAD: it had ended already
			kind = KindMiss
		}
		s.obs.Observe(Op{Backend: "mysql", Pool: pool, Server: s.label, Name: "kill", Kind: kind, Duration: time.Since(start)})
	}()
}

func (s *mysqlServer) killQuery(ctx context.Context, id uint64) error {
	select {
	case s.killSlots <- struct{}{}:
		defer func() { <-s.killSlots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	c, err := s.raw.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.(driver.ExecerContext).ExecContext(ctx, "KILL QUERY "+strconv.FormatUint(id, 10), nil)
	return err
}

// healthCheck is the breaker's health check: a fresh connection from the
// driver's connector (not from the pool, which slow clients may have
// exhausted) and a ping, within ctx (HealthCheckTimeout).
func (s *mysqlServer) healthCheck(ctx context.Context) error {
	c, err := s.raw.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.(driver.Pinger).Ping(ctx)
}
