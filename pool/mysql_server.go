package pool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysqlServer is one configured MySQL server: a database/sql pool over
// killConnector, its breaker, its prepared-statement cache and the gate that
// bounds the operations using a connection (max_conns_per_server, as the
// pool's MaxOpenConns, so database/sql itself never queues a call) and the
// calls waiting for one (max_waiting_calls, each at most timeout). Safe for
// concurrent use.
type mysqlServer struct {
	name           string // the server entry's pool name, e.g. "UserShard3"
	label          string // "UserShard3 (127.0.0.1:3306)", in errors and observations
	db             *sql.DB
	raw            driver.Connector // the driver's connector: health checks and kills
	breaker        *Breaker
	stmts          *stmtCache // nil = off
	gate           *connGate  // nil when max_conns_per_server is 0 (unlimited)
	timeout        time.Duration
	connectTimeout time.Duration
	nullable       bool
	obs            Observer
	closed         atomic.Bool
	stop           chan struct{}
	killMu         sync.Mutex
	killsDone      bool           // set by close: no kill starts any more; guarded by killMu
	kills          sync.WaitGroup // kills in flight
	killSlots      chan struct{}
}

func newMysqlServer(sc MySQLServerConfig, cfg *MySQLConfig, obs Observer, limits Limits) (*mysqlServer, error) {
	mc := mysql.NewConfig()
	mc.User, mc.Passwd = sc.Username, sc.Password
	mc.Net, mc.Addr = "tcp", net.JoinHostPort(sc.Host, strconv.Itoa(int(sc.Port)))
	mc.DBName = sc.DB
	mc.Timeout = cfg.Timeout
	mc.DialFunc = dialConn
	mc.Logger = quietClosedLogger{mc.Logger}
	if err := mc.Apply(mysql.Charset(sc.Charset, "")); err != nil {
		return nil, fmt.Errorf("mysql server %s: charset %q: %w", sc.Pool, sc.Charset, err)
	}
	raw, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql server %s: %w", sc.Pool, err)
	}
	s := &mysqlServer{name: sc.Pool, label: sc.Pool + " (" + mc.Addr + ")", raw: raw,
		timeout: cfg.QueryTimeout, connectTimeout: cfg.Timeout, nullable: cfg.AllowNullableColumns,
		obs: obs, stop: make(chan struct{}), killSlots: make(chan struct{}, maxKillsInFlight)}
	s.breaker = NewBreaker("mysql", sc.Pool, cfg.Breaker, s.healthCheck)
	if cfg.MaxConnsPerServer > 0 {
		s.gate = newConnGate(mc.Addr, cfg.MaxConnsPerServer, waitingBound(cfg.MaxWaitingCalls, cfg.MaxConnsPerServer),
			cfg.Timeout, "max_conns_per_server", "timeout")
	}
	s.db = sql.OpenDB(&killConnector{srv: s, raw: raw})
	s.db.SetMaxOpenConns(cfg.MaxConnsPerServer)
	s.db.SetMaxIdleConns(cfg.MaxIdleConnsPerServer)
	s.db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	if cfg.CachePrepareStmtMaxItems > 0 {
		s.stmts = newStmtCache(cfg.CachePrepareStmtMaxItems, s.db.PrepareContext, prepareTimeout(cfg.QueryTimeout))
	}
	if cfg.MaxIdleTime > 0 {
		go s.keepAlive(cfg.MaxIdleTime)
	}
	return s, nil
}

// keepAlive pings the server every interval (the original's max_idle_time),
// as an operation "ping" like any other: a ping that fails or times out
// counts on the breaker by the same rules.
func (s *mysqlServer) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			s.do(ctx, s.name, "ping", func(ctx context.Context) error { return s.db.PingContext(ctx) })
			cancel()
		}
	}
}

func (s *mysqlServer) close() {
	if s.closed.Swap(true) {
		return
	}
	close(s.stop)
	if s.stmts != nil {
		s.stmts.purge()
	}
	s.db.Close()
	s.killMu.Lock()
	s.killsDone = true
	s.killMu.Unlock()
	s.kills.Wait()
}

// queryTimeoutError is the cause of a statement's ctx ending at query_timeout.
type queryTimeoutError struct{ d time.Duration }

func (e *queryTimeoutError) Error() string {
	return fmt.Sprintf("query_timeout %s passed (the statement is killed)", e.d)
}

// kindError is an outcome whose kind the code that made it knows.
type kindError struct {
	kind Kind
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

type poolKey struct{}

// poolOf is the pool the caller of the operation running under ctx named.
func poolOf(ctx context.Context) string {
	p, _ := ctx.Value(poolKey{}).(string)
	return p
}

// do runs fn, one operation op ("query", "exec", "tx", "lookup", "ping") of
// the caller's pool, behind the breaker and under query_timeout; it reports it
// to the observer once and returns nil or a *Error.
func (s *mysqlServer) do(ctx context.Context, pool, op string, fn func(ctx context.Context) error) error {
	start := time.Now()
	kind, err := s.run(ctx, pool, fn)
	s.obs.Observe(Op{Backend: "mysql", Pool: pool, Server: s.label, Name: op, Kind: kind, Duration: time.Since(start)})
	if kind == KindOK {
		return nil
	}
	var ke *kindError
	if errors.As(err, &ke) {
		err = ke.err
	}
	return &Error{Backend: "mysql", Op: op, Pool: pool, Server: s.label, Kind: kind, Err: err}
}

func (s *mysqlServer) run(ctx context.Context, pool string, fn func(ctx context.Context) error) (Kind, error) {
	if s.closed.Load() {
		return KindClosed, nil
	}
	if err := ctx.Err(); err != nil {
		return s.classify(ctx, err), err
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.timeout, &queryTimeoutError{s.timeout})
		defer cancel()
	}
	ctx = context.WithValue(ctx, poolKey{}, pool)
	var opErr, dialErr, waitErr error
	kind, _ := s.breaker.Do(func() (Kind, error) {
		if s.gate != nil {
			if waitErr = s.gate.acquire(ctx); waitErr != nil {
				return KindBusy, nil // counts neither way, whatever ended the wait
			}
			defer s.gate.release()
		}
		opErr = fn(ctx)
		if isDialError(opErr) {
			// killConnector dialled through Breaker.Dial, which counted it:
			// report it to Do as an outcome that counts neither way.
			dialErr = opErr
			return KindCanceled, nil
		}
		return s.classify(ctx, opErr), opErr
	})
	if waitErr != nil {
		return waitOutcome(ctx, waitErr)
	}
	if dialErr != nil {
		kind = s.classify(ctx, dialErr)
	}
	if k, ok := opErr.(Kind); opErr == nil || ok && k == kind {
		return kind, nil // refused by the breaker (Do, or Breaker.Dial in the connector)
	}
	if kind == KindTimeout {
		<-ctx.Done() // its deadline has passed (classify): the timer and its cause are at most a moment away
		var qt *queryTimeoutError
		if errors.As(context.Cause(ctx), &qt) {
			return kind, fmt.Errorf("%w: %w", qt, opErr)
		}
	}
	return kind, opErr
}

// mysqlServerErrors are the MySQL error numbers that mean the server, not the
// statement, failed: too many connections, out of memory or disk, shutting down,
// host blocked, network read/write errors, connection killed.
var mysqlServerErrors = map[uint16]bool{
	1021: true, 1037: true, 1038: true, 1040: true, 1041: true, 1053: true, 1077: true, 1129: true,
	1152: true, 1153: true, 1158: true, 1159: true, 1160: true, 1161: true, 1927: true,
}

// mysqlErrorNumber is the MySQL error number of err, 0 if it is no server error.
func mysqlErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// classify is the kind of err, the outcome of an operation under ctx. The
// caller's ctx decides first (its deadline or query_timeout is a timeout, a
// cancel is a cancel); a statement the server rejected (syntax 1064, unknown
// column 1054, duplicate key 1062, any error the server answered that is not
// in mysqlServerErrors) is refused and never counts on the breaker; connection
// and server failures are server failures. (The original tripped on syntax
// errors and crashed on error texts shorter than 10 bytes.)
func (s *mysqlServer) classify(ctx context.Context, err error) Kind {
	if err == nil {
		return KindOK
	}
	if ctx.Err() != nil {
		return ctxKind(ctx.Err())
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		// The socket's deadline, set from ctx's, can fire a moment before ctx's
		// own timer: the driver then reports a broken connection, not a timeout.
		return KindTimeout
	}
	var ke *kindError
	var k Kind
	switch {
	case errors.As(err, &ke):
		return ke.kind
	case errors.As(err, &k):
		return k
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ctxKind(err)
	}
	if n := mysqlErrorNumber(err); n != 0 {
		if mysqlServerErrors[n] {
			return KindServerFailure
		}
		return KindRefused
	}
	var ne net.Error
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, mysql.ErrMalformPkt),
		errors.Is(err, mysql.ErrPktSync), errors.Is(err, mysql.ErrPktSyncMul), errors.Is(err, mysql.ErrBusyBuffer),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne), isDialError(err):
		return KindServerFailure
	}
	return KindRefused
}

// ctxKind is the kind of a ctx error: a deadline is a timeout, else a cancel.
func ctxKind(err error) Kind {
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	return KindCanceled
}

// query is the operation "query": a statement that returns rows, bounded by budget.
func (s *mysqlServer) query(ctx context.Context, pool, query string, args []any, budget *replyBudget) (cols []string, rows [][]string, err error) {
	err = s.do(ctx, pool, "query", func(ctx context.Context) error {
		cols, rows, err = s.rows(ctx, query, args, budget)
		return err
	})
	return cols, rows, err
}

// rows runs query and reads its rows. Stopped early (over budget), the
// statement's ctx is canceled before the rows are closed: the connection is
// closed rather than drained and the statement killed (killConn).
func (s *mysqlServer) rows(ctx context.Context, query string, args []any, budget *replyBudget) (cols []string, rows [][]string, err error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	err = s.withStmt(ctx, query, func(st *sql.Stmt) (err error) {
		var r *sql.Rows
		if st != nil {
			r, err = st.QueryContext(ctx, args...)
		} else {
			r, err = s.db.QueryContext(ctx, query, args...)
		}
		if err != nil {
			return err
		}
		cols, rows, err = scanRows(r, s.nullable, budget, stop)
		return err
	})
	return cols, rows, err
}

// lookup is the operation "lookup": the shard of entity in table, on this (the lookup_pool) server.
func (s *mysqlServer) lookup(ctx context.Context, pool, table string, entity int64) (shard int, err error) {
	err = s.do(ctx, pool, "lookup", func(ctx context.Context) error {
		_, rows, err := s.rows(ctx, "SELECT shardId, shardLock FROM `"+table+"` WHERE entityId = ?", []any{entity}, nil)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return &kindError{KindMiss, fmt.Errorf("shard lookup: no entity %d in %s", entity, table)}
		}
		var lock int
		var err1, err2 error
		shard, err1 = strconv.Atoi(rows[0][0])
		lock, err2 = strconv.Atoi(rows[0][1])
		if err1 != nil || err2 != nil {
			return &kindError{KindRefused, fmt.Errorf("shard lookup of %d in %s: bad row %q", entity, table, rows[0])}
		}
		if lock > 0 {
			return &kindError{KindRefused, fmt.Errorf("entity %d is locked (shardLock %d in %s): it is being moved to another shard; retry later",
				entity, lock, table)}
		}
		return nil
	})
	return shard, err
}

// withStmt runs fn with the cached prepared statement of query, or with nil
// when the statement cache is off (fn then runs the text on the pool).
func (s *mysqlServer) withStmt(ctx context.Context, query string, fn func(*sql.Stmt) error) error {
	if s.stmts == nil {
		return fn(nil)
	}
	e, err := s.stmts.acquire(ctx, query)
	if err != nil {
		return err
	}
	defer s.stmts.release(e)
	return fn(e.stmt)
}

// exec is the operation "exec": a statement that returns no rows.
func (s *mysqlServer) exec(ctx context.Context, pool, query string, args []any) (affected, lastID int64, err error) {
	err = s.do(ctx, pool, "exec", func(ctx context.Context) error {
		return s.withStmt(ctx, query, func(st *sql.Stmt) (err error) {
			var res sql.Result
			if st != nil {
				res, err = st.ExecContext(ctx, args...)
			} else {
				res, err = s.db.ExecContext(ctx, query, args...)
			}
			if err != nil {
				return err
			}
			affected, _ = res.RowsAffected()
			lastID, _ = res.LastInsertId()
			return nil
		})
	})
	return affected, lastID, err
}

// tx is the operation "tx": fn in one transaction (committed when fn returns nil, else rolled back).
func (s *mysqlServer) tx(ctx context.Context, pool string, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.do(ctx, pool, "tx", func(ctx context.Context) error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(ctx, tx); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	})
}
