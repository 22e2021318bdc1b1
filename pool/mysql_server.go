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
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MysqlServer is one configured MySQL server: a database/sql pool, its
// breaker and its prepared-statement cache. Safe for concurrent use.
type MysqlServer struct {
	Name    string // the server entry's pool name, e.g. "UserShard3"
	Addr    string // host:port
	db      *sql.DB
	breaker *legacyBreaker
	stmts   *stmtCache // nil = off
	timeout time.Duration
	stats   *MysqlStats
	stop    chan struct{}
}

// ErrNullColumn: a row has SQL NULL in a column while allow_nullable_columns is false.
var ErrNullColumn = errors.New("mysql: NULL value")

func newMysqlServer(s MysqlServerConfig, cfg *MysqlConfig, stats *MysqlStats) (*MysqlServer, error) {
	mc := mysql.NewConfig()
	mc.User, mc.Passwd = s.Username, s.Password
	mc.Net, mc.Addr = "tcp", net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port)))
	mc.DBName = s.DB
	mc.Timeout = cfg.Timeout
	if err := mc.Apply(mysql.Charset(s.Charset, "")); err != nil {
		return nil, fmt.Errorf("mysql server %s: charset %q: %w", s.Pool, s.Charset, err)
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql server %s: %w", s.Pool, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.MaxConnsPerServer)
	db.SetMaxIdleConns(cfg.MaxIdleConnsPerServer)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	srv := &MysqlServer{Name: s.Pool, Addr: mc.Addr, db: db, breaker: newLegacyBreaker("mysql", s.Pool, cfg.Breaker),
		timeout: cfg.QueryTimeout, stats: stats, stop: make(chan struct{})}
	if cfg.CachePrepareStmtMaxItems > 0 {
		srv.stmts = newStmtCache(cfg.CachePrepareStmtMaxItems)
	}
	if cfg.MaxIdleTime > 0 {
		go srv.keepAlive(cfg.MaxIdleTime)
	}
	return srv, nil
}

// keepAlive pings the server every interval (the original's max_idle_time); a
// failed ping counts on the breaker.
func (s *MysqlServer) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.breaker.Do(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), interval)
				defer cancel()
				return s.db.PingContext(ctx)
			}, isMysqlServerFailure)
		}
	}
}

func (s *MysqlServer) close() {
	close(s.stop)
	if s.stmts != nil {
		s.stmts.purge()
	}
	s.db.Close()
}

// do runs fn behind the breaker with the query timeout, and wraps its error
// with the server's name.
func (s *MysqlServer) do(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	err := s.breaker.Do(func() error { return fn(ctx) }, isMysqlServerFailure)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrBreakerOpen):
		s.stats.BreakerOpen.Add(1)
		return err
	case errors.Is(err, ErrNullColumn):
		return err
	case isMysqlServerFailure(err):
		s.stats.ServerErrors.Add(1)
	default:
		s.stats.UserErrors.Add(1)
	}
	return fmt.Errorf("mysql %s (%s): %w", s.Name, s.Addr, err)
}

// Query runs a statement that returns rows, args bound to its ? placeholders.
// Every value comes back as a string; SQL NULL is "NULL" when nullable, else
// the call fails with ErrNullColumn naming the column.
func (s *MysqlServer) Query(ctx context.Context, query string, args []any, nullable bool) (cols []string, rows [][]string, err error) {
	err = s.do(ctx, func(ctx context.Context) error {
		return s.withStmt(ctx, query, func(st *sql.Stmt) (err error) {
			var r *sql.Rows
			if st != nil {
				r, err = st.QueryContext(ctx, args...)
			} else {
				r, err = s.db.QueryContext(ctx, query, args...)
			}
			if err != nil {
				return err
			}
			cols, rows, err = scanRows(r, nullable)
			return err
		})
	})
	return cols, rows, err
}

// withStmt runs fn with the cached prepared statement of query, or with nil
// when the statement cache is off (fn then runs the text on the pool).
func (s *MysqlServer) withStmt(ctx context.Context, query string, fn func(*sql.Stmt) error) error {
	if s.stmts == nil {
		return fn(nil)
	}
	e, err := s.stmts.acquire(ctx, s.db, query)
	if err != nil {
		return err
	}
	defer s.stmts.release(e)
	return fn(e.stmt)
}

// scanRows reads every row as strings; each row is its own slice.
func scanRows(r *sql.Rows, nullable bool) ([]string, [][]string, error) {
	defer r.Close()
	cols, err := r.Columns()
	if err != nil {
		return nil, nil, err
	}
	raw := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range raw {
		dest[i] = &raw[i]
	}
	rows := [][]string{}
	for r.Next() {
		if err := r.Scan(dest...); err != nil {
			return nil, nil, err
		}
		row := make([]string, len(cols))
		for i, b := range raw {
			switch {
			case b != nil:
				row[i] = string(b)
			case nullable:
				row[i] = "NULL"
			default:
				return nil, nil, fmt.Errorf("%w in column %q (allow_nullable_columns is false)", ErrNullColumn, cols[i])
			}
		}
		rows = append(rows, row)
	}
	return cols, rows, r.Err()
}

// Exec runs a statement that returns no rows; it returns rows affected and the last insert id.
func (s *MysqlServer) Exec(ctx context.Context, query string, args []any) (affected, lastID int64, err error) {
	err = s.do(ctx, func(ctx context.Context) error {
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

// Tx runs fn in one transaction (committed when fn returns nil, else rolled back).
func (s *MysqlServer) Tx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.do(ctx, func(ctx context.Context) error {
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

// BreakerState is "closed", "half-open" or "open".
func (s *MysqlServer) BreakerState() string { return s.breaker.State() }

// mysqlServerErrors are the MySQL error numbers that mean the server, not the
// statement, failed: too many connections, out of memory or disk, shutting down,
// host blocked, network read/write errors, connection killed.
var mysqlServerErrors = map[uint16]bool{
	1021: true, 1037: true, 1038: true, 1040: true, 1041: true, 1053: true, 1077: true, 1129: true,
	1152: true, 1153: true, 1158: true, 1159: true, 1160: true, 1161: true, 1927: true,
}

// isMysqlServerFailure decides what counts on a breaker: connection and server
// failures do; a statement the server rejected (syntax 1064, unknown column
// 1054, duplicate key 1062, any other error the server answered) does not, nor
// does the caller giving up. The original tripped on syntax errors and crashed
// on error texts shorter than 10 bytes.
func isMysqlServerFailure(err error) bool {
	var me *mysql.MySQLError
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, ErrNullColumn), errors.Is(err, sql.ErrNoRows):
		return false
	case errors.As(err, &me):
		return mysqlServerErrors[me.Number]
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

// MysqlStats counts MySQL outcomes, one counter per kind of failure.
type MysqlStats struct {
	LookupHits     atomic.Int64 // shard lookups answered from the lookup cache
	LookupQueries  atomic.Int64 // shard lookups that queried the lookup table
	LookupNoEntity atomic.Int64 // lookups of an entity the table lacks
	LookupLocked   atomic.Int64 // lookups of an entity being moved (shardLock > 0)
	LookupEvicts   atomic.Int64 // cached lookups dropped after a write to the lookup table
	UnknownServer  atomic.Int64 // calls naming a pool or shard with no server entry
	BadHint        atomic.Int64 // sharded calls with hintId ≤ 0
	BreakerOpen    atomic.Int64 // calls refused by an open breaker
	ServerErrors   atomic.Int64 // connection and server failures (counted on breakers)
	UserErrors     atomic.Int64 // statements the server rejected (syntax, unknown column, duplicate key…)
}
