<?php
/**
 * A PHP page reading and writing a user's row through fae's my_query, with the
 * query cache: read (cached under "user:<uid>"), add gold (the write carries the
 * same cacheKey, so the cached row is dropped), read again.
 *
 *   php contrib/php/mysql_page.php 127.0.0.1:9001 <uid>
 *
 * Expects a sharded pool UserShard with a table UserInfo (uid, name, gold).
 */
require_once __DIR__ . '/FaeClient.php';

$addr = isset($argv[1]) ? $argv[1] : '127.0.0.1:9001';
$uid = isset($argv[2]) ? (int)$argv[2] : 1;
try {
    $fae = new FaeClient($addr, 'profile.show', $uid);
    $rpc = $fae->rpc;
    $ctx = $fae->ctx;
    $sql = 'SELECT uid, name, gold FROM UserInfo WHERE uid = ?';

    $r = $rpc->my_query($ctx, 'UserShard', 'UserInfo', $uid, $sql, array((string)$uid), "user:$uid");
    echo "read: ", json_encode(array_combine($r->cols, $r->rows[0])), "\n";

    $w = $rpc->my_query($ctx, 'UserShard', 'UserInfo', $uid, 'UPDATE UserInfo SET gold = gold + ? WHERE uid = ?',
        array('10', (string)$uid), "user:$uid");
    echo "write: rowsAffected=", $w->rowsAffected, "\n";

    $r = $rpc->my_query($ctx, 'UserShard', 'UserInfo', $uid, $sql, array((string)$uid), "user:$uid");
    echo "read again: ", json_encode(array_combine($r->cols, $r->rows[0])), "\n";

    try {
        $rpc->my_query($ctx, 'UserShard', 'UserInfo', $uid, 'BEGIN', array(), '');
        echo "begin: NO ERROR\n";
    } catch (\Thrift\Exception\TApplicationException $e) {
        echo "begin: refused: ", $e->getMessage(), "\n";
    }
} catch (\Thrift\Exception\TException $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
