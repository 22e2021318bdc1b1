/**
 * FunServant: the one Thrift service that faed serves.
 *
 * Wire-compatible with the original fae (funkygao/fae 86d1d62): method names,
 * argument field ids and types, structs and exceptions are unchanged, so PHP,
 * Python and Java stubs generated from the original IDL keep working.
 * Argument names are not on the wire; the original's `ctx` is named `c` here
 * because the Go generator adds a `ctx context.Context` to every method.
 *
 * Errors: a method fails either with a declared exception (TCacheMissed,
 * TMongoNotFound, TMongoDegrade, TMongoReadOnly) or with a
 * TApplicationException whose message names what failed, e.g. "invalid
 * context", "mysql is not configured (servants.mysql)".
 * Unless said otherwise, every method checks its Context first: rid == 0, an
 * empty reason or a missing Context fails with "invalid context".
 */

namespace go fun.rpc
namespace py fun.rpc
namespace php fun.rpc
namespace java fun.rpc

/** Per-request context, made once per web request by the client. */
struct Context {
    /** Request id shared by every call of one web request (PHP: hexdec(uniqid())). Must not be 0. */
    1: i64 rid
    /** Why the call is made, e.g. "controller.action"; used for stats and logs. Must not be empty. */
    2: string reason
    /** End-user id, for logs only. */
    3: i64 uid
    /** Set by a forwarding peer: run the call here, do not forward it again. */
    4: optional bool sticky
}

/** A memcached item: the value and memcached's 32-bit client flags (PHP memcache: 1 serialized, 2 compressed). */
struct TMemcacheData {
    1: binary data
    2: i32 flags
}

/** Result of my_query: every value is a string; SQL NULL is the string "NULL" when allow_nullable_columns is on. */
struct MysqlResult {
    /** Rows changed by an exec; 0 for a query. */
    1: i64 rowsAffected
    /** AUTO_INCREMENT id of an INSERT; 0 for a query. */
    2: i64 lastInsertId
    /** Column names of a query, in select order. */
    3: list<string> cols
    /** Rows of a query, each as long as cols. */
    4: list<list<string>> rows
}

/** Result of my_merge: ok and the merged JSON as stored. */
struct MysqlMergeResult {
    1: bool ok
    2: string newVal
}

/** A cache (lcache, memcache) has no value for the key. */
exception TCacheMissed {
    11: optional string message
}

/** mg_find_one matched no document. */
exception TMongoNotFound {
    11: optional string message
}

/**
 * The MongoDB server entry of the call is switched to degraded by an operator (servants.mongodb.servers[].mode
 * or POST /svt/pool/mode): every mg_* call to it is refused, no server asked. The message names the pool, the
 * mode and how it was set. Thrown as field 2 of every mg_* method (new; stubs of the original IDL, which do not
 * know the field, see a TApplicationException MISSING_RESULT "<method> failed: unknown result").
 */
exception TMongoDegrade {
    11: optional string message
}

/**
 * The MongoDB server entry of the call is switched to read_only: mg_insert(s), mg_update(_id), mg_upsert(_id),
 * mg_delete and mg_find_and_modify are refused, no server asked. Thrown as field 3 of those methods (new; old
 * stubs see a TApplicationException, as for TMongoDegrade).
 */
exception TMongoReadOnly {
    11: optional string message
}

service FunServant {

    // ---------------------------------------------------------------- misc

    /** Returns x unchanged. No Context, no stats: for raw throughput tests. */
    i32 noop(1: i32 x)

    /**
     * Returns "ver:<version>, build:<build id>, myid:<idgen_worker_id>, uptime:<Go duration>",
     * e.g. "ver:0.1.0, build:4f2a1c9, myid:1, uptime:3h2m1.5s".
     */
    string ping(1: Context c)

    // ---------------------------------------------------------------- zookeeper

    /**
     * Creates a persistent ZooKeeper node at path with data, on the node's session. Errors (naming the path and
     * ZooKeeper's reason): ZooKeeper not configured, node exists, no parent, a path under the registration root.
     */
    bool zk_create(1: Context c, 2: string path, 3: string data)

    /** Child names of the ZooKeeper node at path, sorted. Errors: not configured, no node, the registration root. */
    list<string> zk_children(1: Context c, 2: string path)

    /**
     * Deletes the ZooKeeper node at path (any version). Errors: not configured, no node, node has children, a path
     * under the registration root.
     */
    bool zk_del(1: Context c, 2: string path)

    // ---------------------------------------------------------------- lock

    /**
     * Takes the lock named key without waiting, on the key's owner in a cluster. True if the key was free or its
     * lock is older than servants.lock.expires (default 10s; the stale lock is taken over), false if it is held.
     * The lock records c.rid. reason is only logged. A lock held on a node that dies, or whose key moves to
     * another owner (a node joins or leaves), is lost.
     */
    bool lock(1: Context c, 2: string reason, 3: string key)

    /**
     * Frees the lock named key if c.rid took it, or once it has expired. Another rid's unlock returns normally
     * and leaves the lock held (counted and logged). Freeing a free key is not an error. PHP rids
     * (hexdec(uniqid())) can collide across web hosts.
     */
    void unlock(1: Context c, 2: string reason, 3: string key)

    // ---------------------------------------------------------------- id generator

    /** A new id with tag 0; see id_next_with_tag. */
    i64 id_next(1: Context c)

    /**
     * A new 64-bit id, unique and strictly increasing per node:
     * 1 sign bit 0 | 41 bits ms since 1388834974657 (2014-01-04 11:29:34.657 UTC) | 5 bits tag |
     * 5 bits worker id (servants.idgen_worker_id) | 12 bits sequence.
     * Errors: tag outside 0..31; the clock moved backwards further than the daemon waits.
     */
    i64 id_next_with_tag(1: Context c, 2: i16 tag)

    /** Splits id into [timestamp ms since the Unix epoch, tag, worker id, sequence]. No Context check. */
    list<i64> id_decode(1: Context c, 2: i64 id)

    // ---------------------------------------------------------------- local cache

    /** Stores value under key in this node's LRU (servants.lcache.max_items items). Always true. */
    bool lc_set(1: Context c, 2: string key, 3: binary value)

    /** The value stored under key on this node. Throws TCacheMissed "lcache missed: <key>" when absent. */
    binary lc_get(1: Context c, 2: string key) throws (1: TCacheMissed miss)

    /** Removes key from this node's LRU; absent keys are ignored. */
    void lc_del(1: Context c, 2: string key)

    // ---------------------------------------------------------------- redis

    /**
     * Runs one Redis command cmd on the server of pool that keysAndArgs[0] hashes to, with keysAndArgs as
     * its arguments. The reply as a string: bulk → its bytes, status → its text, integer → decimal,
     * nil → "", array → JSON array of strings. Errors: unknown pool, empty keysAndArgs, denied command,
     * GET of a missing key ("key not exists"), a Redis error reply (its text), a dead server.
     */
    string rd_call(1: Context c, 2: string cmd, 3: string pool, 4: list<string> keysAndArgs)

    // ---------------------------------------------------------------- memcache

    /** memcached set of key in pool; expiration in seconds (≤ 30 days relative, else a Unix time; 0 = never). */
    bool mc_set(1: Context c, 2: string pool, 3: string key, 4: TMemcacheData value, 5: i32 expiration)

    /** memcached get of key in pool. Throws TCacheMissed when absent. */
    TMemcacheData mc_get(1: Context c, 2: string pool, 3: string key) throws (1: TCacheMissed miss)

    /** memcached add: like mc_set, but false (no error) when the key exists. */
    bool mc_add(1: Context c, 2: string pool, 3: string key, 4: TMemcacheData value, 5: i32 expiration)

    /** memcached delete; false (no error) when the key is absent. */
    bool mc_delete(1: Context c, 2: string pool, 3: string key)

    /** memcached incr (delta ≥ 0) or decr (delta < 0, clamped at 0); the new value. Errors: missing key, non-numeric value. */
    i64 mc_increment(1: Context c, 2: string pool, 3: string key, 4: i64 delta)

    // ---------------------------------------------------------------- mongodb
    // All take pool, table (the collection) and shardId (picks the server); documents are BSON.

    /** The first document matching query, projected by fields (empty document = all fields). Throws TMongoNotFound. */
    binary mg_find_one(1: Context c, 2: string pool, 3: string table, 4: i32 shardId,
        5: binary query, 6: binary fields) throws (1: TMongoNotFound miss, 2: TMongoDegrade degraded)

    /** Documents matching query; limit and skip apply when > 0; orderBy keys, "-key" for descending. */
    list<binary> mg_find_all(1: Context c, 2: string pool, 3: string table, 4: i32 shardId,
        5: binary query, 6: binary fields, 7: i32 limit, 8: i32 skip, 9: list<string> orderBy)
        throws (2: TMongoDegrade degraded)

    /** The document whose _id is id (BSON), or an empty document. */
    binary mg_find_id(1: Context c, 2: string pool, 3: string table, 4: i32 shardId, 5: binary id)
        throws (2: TMongoDegrade degraded)

    /** Number of documents matching query. */
    i32 mg_count(1: Context c, 2: string pool, 3: string table, 4: i32 shardId, 5: binary query)
        throws (2: TMongoDegrade degraded)

    /** Applies change to one document matching query; false when none matched. */
    bool mg_update(1: Context c, 2: string pool, 3: string table, 4: i32 shardId,
        5: binary query, 6: binary change) throws (2: TMongoDegrade degraded, 3: TMongoReadOnly readOnly)

    /** Applies change to the document whose _id is id; false when none matched. */
    bool mg_update_id(1: Context c, 2: string pool, 3: string table, 4: i32 shardId,
        5: i32 id, 6: binary change) throws (2: TMongoDegrade degraded, 3: TMongoReadOnly readOnly)

    /** Applies change to one document matching query, inserting one when none matches. */
    bool mg_upsert(1: Context c, 2: string pool, 3: string table, 4: i32 shardId,
        5: binary query, 6: binary change) throws (2: TMongoDegrade degraded, 3: TMongoReadOnly readOnly)

    /** Applies change to the document whose _id is id, inserting it when absent. */
    bool mg_upsert_id(1: Context c, 2: string pool, 3: string table, 4: i32 shardId,
        5: i32 id, 6: binary change) throws (2: TMongoDegrade degraded, 3: TMongoReadOnly readOnly)

    /** Inserts doc. */
    bool mg_insert(1: Context c, 2: string pool, 3: string table, 4: i32 shardId, 5: binary doc)
        throws (2: TMongoDegrade degraded, 3: TMongoReadOnly readOnly)

    /** Inserts every document of docs. */
    bool mg_inserts(1: Context c, 2: string pool, 3: string table, 4: i32 shardId, 5: list<binary> docs)
        throws (2: TMongoDegrade degraded, 3: TMongoReadOnly readOnly)

    /** Deletes one document matching query; false when none matched. */
    bool mg_delete(1: Context c, 2: string pool, 3: string table, 4: i32 shardId, 5: binary query)
        throws (2: TMongoDegrade degraded, 3: TMongoReadOnly readOnly)

    /**
     * Finds one document matching query and updates (or, with remove, deletes) it; returns the old document,
     * or the new one with returnNew; an empty document when nothing matched and upsert is off.
     */
    binary mg_find_and_modify(1: Context c, 2: string pool, 3: string table, 4: i32 shardId,
        5: binary query, 6: binary change, 7: bool upsert, 8: bool remove, 9: bool returnNew)
        throws (2: TMongoDegrade degraded, 3: TMongoReadOnly readOnly)

    // ---------------------------------------------------------------- mysql

    /**
     * Runs my_query for each index i in order, with pool[i], table[i], hintId[i], sql[i], argv[i], cacheKey[i].
     * Returns the sum of rowsAffected. Stops at the first error and returns it, naming the index.
     * NOT atomic: statements before the failing one stay committed. Lists of unequal length are an error.
     */
    i64 my_bulk_exec(1: Context c, 2: list<string> pool, 3: list<string> table, 4: list<i64> hintId,
        5: list<string> sql, 6: list<list<string>> argv, 7: list<string> cacheKey)

    /**
     * Runs sql with argv bound to its ? placeholders on the server for (pool, table, hintId): a global pool
     * by name, a sharded pool through its lookup table (hintId > 0). SELECT, SHOW, DESCRIBE and EXPLAIN return
     * rows; anything else returns rowsAffected and lastInsertId. With a cacheKey, a query is answered from the
     * query cache and a successful exec evicts the key. Transaction statements are refused.
     */
    MysqlResult my_query(1: Context c, 2: string pool, 3: string table, 4: i64 hintId, 5: string sql,
        6: list<string> argv, 7: string cacheKey)

    /** Runs a SELECT on every shard server of pool (<pool><n>), rows concatenated in shard order. */
    MysqlResult my_query_shards(1: Context c, 2: string pool, 3: string table, 4: string sql,
        5: list<string> argv)

    /**
     * Atomically deep-merges the JSON object jsonValue into column of the one row of table matching where
     * (the caller's trusted SQL fragment), in one transaction on the row's shard. key names the merge for logs.
     */
    MysqlMergeResult my_merge(1: Context c, 2: string pool, 3: string table, 4: i64 hintId, 5: string where,
        6: string key, 7: string column, 8: string jsonValue)

    /** Deletes cacheKey from the MySQL query cache. */
    void my_evict(1: Context c, 2: string cacheKey)
}
