<?php
/**
 * What a web page does with fae's memcache and Redis: a cache-aside read of a
 * user through memcache, a page-view counter and a session in Redis.
 *
 *   php contrib/php/webpage.php [127.0.0.1:9001 | /path/to/faed.sock] [memcache pool] [redis pool]
 *
 * faed needs servants.memcache and servants.redis with those pools (both
 * "default" unless given). Prints one line per step; exits 1 on an unexpected error.
 */
require_once __DIR__ . '/FaeClient.php';

use fun\rpc\TCacheMissed;
use fun\rpc\TMemcacheData;
use Thrift\Exception\TApplicationException;
use Thrift\Exception\TException;

$addr = isset($argv[1]) ? $argv[1] : '127.0.0.1:9001';
$mcPool = isset($argv[2]) ? $argv[2] : 'default';
$rdPool = isset($argv[3]) ? $argv[3] : 'default';
$uid = 42;
$run = 'kvtest:php:' . uniqid();   // the page's keys, unique per run

try {
    $fae = new FaeClient($addr, 'user.profile', $uid);
    $rpc = $fae->rpc;
    $ctx = $fae->ctx;

    // Cache-aside: the user from memcache, else "from the database", then cached
    // for 5 minutes, serialized with flag 1 as PHP's memcache extension does.
    $key = "$run:user:$uid";
    try {
        $user = unserialize($rpc->mc_get($ctx, $mcPool, $key)->data);
        echo "mc_get: hit\n";
    } catch (TCacheMissed $miss) {
        echo "mc_get: miss: ", $miss->message, "\n";
        $user = array('uid' => $uid, 'name' => "Zo\u{eb} <admin>", 'tags' => array('a', 'b'));
        $item = new TMemcacheData(array('data' => serialize($user), 'flags' => 1));
        echo "mc_set: ", var_export($rpc->mc_set($ctx, $mcPool, $key, $item, 300), true), "\n";
    }
    $item = $rpc->mc_get($ctx, $mcPool, $key);
    echo "mc_get: flags=", $item->flags, " ", (unserialize($item->data) === $user ? 'same user' : 'DIFFERENT'), "\n";
    $other = new TMemcacheData(array('data' => 'x', 'flags' => 0));
    echo "mc_add existing: ", var_export($rpc->mc_add($ctx, $mcPool, $key, $other, 300), true), "\n";

    // A counter in memcache.
    $hits = "$run:hits";
    $rpc->mc_add($ctx, $mcPool, $hits, new TMemcacheData(array('data' => '0', 'flags' => 0)), 60);
    $rpc->mc_increment($ctx, $mcPool, $hits, 7);
    echo "mc_increment: ", $rpc->mc_increment($ctx, $mcPool, $hits, -2), "\n";
    echo "mc_delete: ", var_export($rpc->mc_delete($ctx, $mcPool, $hits), true), "\n";

    // Page views and the session in Redis.
    echo "rd_call INCR: ", $rpc->rd_call($ctx, 'INCR', $rdPool, array("$run:views")), "\n";
    $sess = "$run:session";
    echo "rd_call SET: ", $rpc->rd_call($ctx, 'SET', $rdPool, array($sess, json_encode($user), 'EX', '60')), "\n";
    $back = json_decode($rpc->rd_call($ctx, 'GET', $rdPool, array($sess)), true);
    echo "rd_call GET: ", ($back === $user ? 'same user' : 'DIFFERENT'), "\n";
    $rpc->rd_call($ctx, 'RPUSH', $rdPool, array("$run:recent", 'home', 'profile'));
    echo "rd_call LRANGE: ", $rpc->rd_call($ctx, 'LRANGE', $rdPool, array("$run:recent", '0', '-1')), "\n";
    try {
        $rpc->rd_call($ctx, 'GET', $rdPool, array("$run:nosession"));
        echo "rd_call GET missing: NO ERROR\n";
    } catch (TApplicationException $e) {
        echo "rd_call GET missing: ", $e->getMessage(), "\n";
    }
    foreach (array("$run:views", $sess, "$run:recent") as $k) {
        $rpc->rd_call($ctx, 'DEL', $rdPool, array($k));
    }
    $rpc->mc_delete($ctx, $mcPool, $key);
} catch (TException $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
