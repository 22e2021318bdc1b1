package pool

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// This file knows Redis commands: their names (for bounded metric labels),
// the ones a pooled connection must never run for a client, and where the
// blocking ones keep their timeout.

// rdCommandNames are the commands of Redis 7: COMMAND LIST of Redis 7.0.15
// (top-level names), plus WAITAOF (7.2) and the hash-field expiry commands
// (7.4). An Op is labelled with one of them or "OTHER", so that a client
// sending made-up names cannot grow the set of metric labels.
const rdCommandNames = `ACL APPEND ASKING AUTH BGREWRITEAOF BGSAVE BITCOUNT BITFIELD BITFIELD_RO BITOP BITPOS
BLMOVE BLMPOP BLPOP BRPOP BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN CLIENT CLUSTER COMMAND CONFIG COPY DBSIZE DEBUG
DECR DECRBY DEL DISCARD DUMP ECHO EVAL EVALSHA EVALSHA_RO EVAL_RO EXEC EXISTS EXPIRE EXPIREAT EXPIRETIME
FAILOVER FCALL FCALL_RO FLUSHALL FLUSHDB FUNCTION GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUSBYMEMBER
GEORADIUSBYMEMBER_RO GEORADIUS_RO GEOSEARCH GEOSEARCHSTORE GET GETBIT GETDEL GETEX GETRANGE GETSET HDEL HELLO
HEXISTS HGET HGETALL HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET HRANDFIELD HSCAN HSET HSETNX HSTRLEN HVALS
INCR INCRBY INCRBYFLOAT INFO KEYS LASTSAVE LATENCY LCS LINDEX LINSERT LLEN LMOVE LMPOP LOLWUT LPOP LPOS LPUSH
LPUSHX LRANGE LREM LSET LTRIM MEMORY MGET MIGRATE MODULE MONITOR MOVE MSET MSETNX MULTI OBJECT PERSIST PEXPIRE
PEXPIREAT PEXPIRETIME PFADD PFCOUNT PFDEBUG PFMERGE PFSELFTEST PING PSETEX PSUBSCRIBE PSYNC PTTL PUBLISH PUBSUB
PUNSUBSCRIBE QUIT RANDOMKEY READONLY READWRITE RENAME RENAMENX REPLCONF REPLICAOF RESET RESTORE RESTORE-ASKING
ROLE RPOP RPOPLPUSH RPUSH RPUSHX SADD SAVE SCAN SCARD SCRIPT SDIFF SDIFFSTORE SELECT SET SETBIT SETEX SETNX
SETRANGE SHUTDOWN SINTER SINTERCARD SINTERSTORE SISMEMBER SLAVEOF SLOWLOG SMEMBERS SMISMEMBER SMOVE SORT SORT_RO
SPOP SPUBLISH SRANDMEMBER SREM SSCAN SSUBSCRIBE STRLEN SUBSCRIBE SUBSTR SUNION SUNIONSTORE SUNSUBSCRIBE SWAPDB
SYNC TIME TOUCH TTL TYPE UNLINK UNSUBSCRIBE UNWATCH WAIT WATCH XACK XADD XAUTOCLAIM XCLAIM XDEL XGROUP XINFO
XLEN XPENDING XRANGE XREAD XREADGROUP XREVRANGE XSETID XTRIM ZADD ZCARD ZCOUNT ZDIFF ZDIFFSTORE ZINCRBY ZINTER
ZINTERCARD ZINTERSTORE ZLEXCOUNT ZMPOP ZMSCORE ZPOPMAX ZPOPMIN ZRANDMEMBER ZRANGE ZRANGEBYLEX ZRANGEBYSCORE
ZRANGESTORE ZRANK ZREM ZREMRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYLEX
ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE ZUNION ZUNIONSTORE
WAITAOF HEXPIRE HEXPIREAT HEXPIRETIME HPERSIST HPEXPIRE HPEXPIREAT HPEXPIRETIME HPTTL HTTL`

// rdCommands maps each known name to itself, so that labels are the table's
// own strings, not a client's.
var rdCommands = func() map[string]string {
	m := map[string]string{}
	for _, n := range strings.Fields(rdCommandNames) {
		m[n] = n
	}
	return m
}()

// rdOpName is the Op.Name of upper-case command cmd: cmd if Redis 7 knows it, else "OTHER".
func rdOpName(cmd string) string { return rdLookup(cmd).label }

// rdCmd is what faed knows of one upper-case command name, from the tables
// of this file, so that a call looks its command up once (a string map
// lookup each was about 1 % of a pipelined GET's CPU in faed, five of them).
type rdCmd struct {
	label string      // its Op.Name: the table's own string, or "OTHER"
	state string      // what it does to a connection's state (rdStateCommands); "" none
	block *rdBlocking // where it keeps its timeout (rdBlockingCommands); nil: it does not block
	pipe  bool        // it may share a pipelined connection (rdPipelinable)
}

// rdCmds are the commands of rdCommands, rdStateCommands and
// rdBlockingCommands; rdOther is every other name.
var (
	rdCmds  = rdCmdTable()
	rdOther = &rdCmd{label: "OTHER", pipe: true}
)

func rdCmdTable() map[string]*rdCmd {
	m := map[string]*rdCmd{}
	get := func(n string) *rdCmd {
		if m[n] == nil {
			label := "OTHER"
			if l, ok := rdCommands[n]; ok {
				label = l
			}
			m[n] = &rdCmd{label: label, pipe: n != "ASKING"}
		}
		return m[n]
	}
	for n := range rdCommands {
		get(n)
	}
	for n, what := range rdStateCommands {
		c := get(n)
		c.state, c.pipe = what, false
	}
	for n, b := range rdBlockingCommands {
		c := get(n)
		c.block, c.pipe = &b, false
	}
	return m
}

// rdLookup is what faed knows of upper-case command cmd.
func rdLookup(cmd string) *rdCmd {
	if c := rdCmds[cmd]; c != nil {
		return c
	}
	return rdOther
}

// rdStateCommands are the commands Do refuses whatever deny_commands says, with
// what each does to the connection: they change or end the state of the
// connection they run on, and the next caller of that pooled connection would
// inherit it (another database, protocol or user, subscriber mode, an open
// transaction, a closed connection). REVIEW §2.A1: redigo resets only MULTI,
// WATCH and SUBSCRIBE state when a connection goes back to its pool.
var rdStateCommands = map[string]string{
	"SELECT":       "switches it to another database",
	"HELLO":        "switches its protocol version and user",
	"AUTH":         "switches its user",
	"RESET":        "resets its database, user and modes",
	"QUIT":         "closes it",
	"CLIENT":       "sets its name, reply mode, tracking or pauses",
	"SUBSCRIBE":    "puts it in subscriber mode",
	"PSUBSCRIBE":   "puts it in subscriber mode",
	"SSUBSCRIBE":   "puts it in subscriber mode",
	"UNSUBSCRIBE":  "acts on subscriber mode",
	"PUNSUBSCRIBE": "acts on subscriber mode",
	"SUNSUBSCRIBE": "acts on subscriber mode",
	"MONITOR":      "turns it into a stream of every command the server runs",
	"SYNC":         "turns it into a replication stream",
	"PSYNC":        "turns it into a replication stream",
	"MULTI":        "opens a transaction on it",
	"EXEC":         "ends a transaction opened on it",
	"DISCARD":      "ends a transaction opened on it",
	"WATCH":        "watches keys for a transaction on it",
	"UNWATCH":      "clears the keys watched on it",
	"READONLY":     "switches its cluster read mode",
	"READWRITE":    "switches its cluster read mode",
}

// rdStateRefusal is why upper-case command cmd is refused, "" when it is not
// a state-changing command.
func rdStateRefusal(cmd string) string { return rdLookup(cmd).stateRefusal(cmd) }

// stateRefusal is rdStateRefusal of c, command cmd.
func (c *rdCmd) stateRefusal(cmd string) string {
	what := c.state
	if what == "" {
		return ""
	}
	return fmt.Sprintf("%s changes the state of the connection (%s), which the next caller of the pooled connection would inherit", cmd, what)
}

// rdBlocking says where a blocking command keeps its timeout.
type rdBlocking struct {
	unit  time.Duration // time.Second (fractional allowed) or time.Millisecond (integer)
	index int           // the timeout's argument: ≥ 0 from the start, -1 the last; unused with option
	arity int           // the number of arguments the command takes: exactly when > 0, at least when < 0
	// option: the timeout is the value of the BLOCK option, given before
	// STREAMS and after the first index arguments; without it the command
	// does not block (XREAD, XREADGROUP).
	option bool
}

// rdBlockingCommands are the commands that wait on the server for data or
// replicas, with their timeout (0 = forever) as Redis 7 documents it.
var rdBlockingCommands = map[string]rdBlocking{
	"BLPOP":      {unit: time.Second, index: -1, arity: -2}, // key [key …] timeout
	"BRPOP":      {unit: time.Second, index: -1, arity: -2},
	"BZPOPMIN":   {unit: time.Second, index: -1, arity: -2},
	"BZPOPMAX":   {unit: time.Second, index: -1, arity: -2},
	"BRPOPLPUSH": {unit: time.Second, index: 2, arity: 3},          // source destination timeout
	"BLMOVE":     {unit: time.Second, index: 4, arity: 5},          // source destination LEFT|RIGHT LEFT|RIGHT timeout
	"BLMPOP":     {unit: time.Second, index: 0, arity: -4},         // timeout numkeys key [key …] LEFT|RIGHT [COUNT n]
	"BZMPOP":     {unit: time.Second, index: 0, arity: -4},         // timeout numkeys key [key …] MIN|MAX [COUNT n]
	"WAIT":       {unit: time.Millisecond, index: 1, arity: 2},     // numreplicas timeout
	"WAITAOF":    {unit: time.Millisecond, index: 2, arity: 3},     // numlocal numreplicas timeout
	"XREAD":      {unit: time.Millisecond, option: true},           // [COUNT n] [BLOCK ms] STREAMS …
	"XREADGROUP": {unit: time.Millisecond, option: true, index: 3}, // GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS …
}

// rdBlockTimeout checks the timeout of a blocking command against ioTimeout.
// It returns how long the command may block (0 for a command that does not
// block, or whose arguments Redis will refuse at once for their number), or
// the kind and cause of a refusal: KindRefused for a timeout of 0 (forever)
// or longer than ioTimeout, KindBadArgument for a timeout that is not a
// non-negative number.
func rdBlockTimeout(cmd string, args []any, ioTimeout time.Duration) (time.Duration, Kind, error) {
	return rdLookup(cmd).blockTimeout(cmd, args, ioTimeout)
}

// blockTimeout is rdBlockTimeout of c, command cmd.
func (c *rdCmd) blockTimeout(cmd string, args []any, ioTimeout time.Duration) (time.Duration, Kind, error) {
	b := c.block
	if b == nil {
		return 0, KindOK, nil
	}
	arg, ok := b.timeoutArg(args)
	if !ok {
		return 0, KindOK, nil
	}
	d, err := b.parse(arg)
	switch {
	case err != nil:
		return 0, KindBadArgument, fmt.Errorf("%s timeout %q: %w", cmd, arg, err)
	case d == 0:
		return 0, KindRefused, fmt.Errorf("%s timeout 0 (forever) is longer than io_timeout %s", cmd, ioTimeout)
	case d > ioTimeout:
		return 0, KindRefused, fmt.Errorf("%s timeout %s is longer than io_timeout %s", cmd, d, ioTimeout)
	}
	return d, KindOK, nil
}

// timeoutArg finds the timeout argument; false when the command will not
// block (no BLOCK option) or Redis will refuse its number of arguments.
func (b rdBlocking) timeoutArg(args []any) (string, bool) {
	if b.option {
		for i := b.index; i+1 < len(args); i++ {
			switch strings.ToUpper(rdString(args[i])) {
			case "STREAMS":
				return "", false
			case "BLOCK":
				return rdString(args[i+1]), true
			case "COUNT":
				i++ // its value, which may read BLOCK
			}
		}
		return "", false
	}
	if b.arity > 0 && len(args) != b.arity || b.arity < 0 && len(args) < -b.arity {
		return "", false
	}
	if b.index < 0 {
		return rdString(args[len(args)-1]), true
	}
	return rdString(args[b.index]), true
}

// parse reads a timeout as Redis 7 does (getTimeoutFromObjectOrReply): integer
// milliseconds, or seconds, possibly fractional, truncated to milliseconds, so
// that 0.0001 is 0, forever. Timeouts too long for a Duration come back as the
// longest one.
func (b rdBlocking) parse(s string) (time.Duration, error) {
	var ms float64
	if b.unit == time.Millisecond {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil && !isRangeError(err) || n < 0 {
			return 0, fmt.Errorf("want a non-negative integer number of milliseconds")
		}
		ms = float64(n)
	} else {
		sec, err := strconv.ParseFloat(s, 64)
		if err != nil && !isRangeError(err) || math.IsNaN(sec) || sec < 0 {
			return 0, fmt.Errorf("want a non-negative number of seconds")
		}
		ms = math.Trunc(sec * 1000)
	}
	if ms*float64(time.Millisecond) >= math.MaxInt64 {
		return math.MaxInt64, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// rdString is an argument as Redis sees it: a string or []byte itself, any
// other value as fmt.Sprint writes it.
func rdString(a any) string {
	switch k := a.(type) {
	case string:
		return k
	case []byte:
		return string(k)
	}
	return fmt.Sprint(a)
}

// rdWriteCommands are the commands a read_only pool refuses (RedisWrites):
// those COMMAND of Redis 7.0.15 flags "write" (top-level names), plus XGROUP
// (its subcommands CREATE, SETID, DESTROY… write), the hash-field expiry
// commands of 7.4, and the scripts and functions that may write (EVAL,
// EVALSHA, FCALL, SCRIPT, FUNCTION; EVAL_RO and FCALL_RO do not).
var rdWriteCommands = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`APPEND BITFIELD BITOP BLMOVE BLMPOP BLPOP BRPOP BRPOPLPUSH BZMPOP BZPOPMAX
BZPOPMIN COPY DECR DECRBY DEL EXPIRE EXPIREAT FLUSHALL FLUSHDB GEOADD GEORADIUS GEORADIUSBYMEMBER GEOSEARCHSTORE
GETDEL GETEX GETSET HDEL HINCRBY HINCRBYFLOAT HMSET HSET HSETNX INCR INCRBY INCRBYFLOAT LINSERT LMOVE LMPOP LPOP
LPUSH LPUSHX LREM LSET LTRIM MIGRATE MOVE MSET MSETNX PERSIST PEXPIRE PEXPIREAT PFADD PFDEBUG PFMERGE PSETEX RENAME
RENAMENX RESTORE RESTORE-ASKING RPOP RPOPLPUSH RPUSH RPUSHX SADD SDIFFSTORE SET SETBIT SETEX SETNX SETRANGE
SINTERSTORE SMOVE SORT SPOP SREM SUNIONSTORE SWAPDB UNLINK XACK XADD XAUTOCLAIM XCLAIM XDEL XREADGROUP XSETID XTRIM
ZADD ZDIFFSTORE ZINCRBY ZINTERSTORE ZMPOP ZPOPMAX ZPOPMIN ZRANGESTORE ZREM ZREMRANGEBYLEX ZREMRANGEBYRANK
ZREMRANGEBYSCORE ZUNIONSTORE
XGROUP HEXPIRE HEXPIREAT HPERSIST HPEXPIRE HPEXPIREAT EVAL EVALSHA FCALL SCRIPT FUNCTION`) {
		m[n] = true
	}
	return m
}()

// RedisWrites reports whether a read_only pool refuses command cmd (any
// case): a command of rdWriteCommands, or one Redis 7 does not know (it
// might write).
func RedisWrites(cmd string) bool {
	cmd = strings.ToUpper(cmd)
	return rdWriteCommands[cmd] || rdOpName(cmd) == "OTHER"
}

// RedisBlocks reports whether command cmd, any case, is one that waits by
// design for something to happen (rdBlockingCommands: BLPOP, XREAD with its
// BLOCK option, WAIT, …), bounded by io_timeout: the one kind of rd_call
// whose client is worth watching while it waits. Any other command Redis
// answers as soon as it has run it.
func RedisBlocks(cmd string) bool {
	_, ok := rdBlockingCommands[strings.ToUpper(strings.TrimSpace(cmd))]
	return ok
}

// RedisOpName is the Op.Name (metric label) of command cmd, any case: its
// upper-case name if Redis 7 knows it, else "OTHER".
func RedisOpName(cmd string) string { return rdOpName(strings.ToUpper(cmd)) }
