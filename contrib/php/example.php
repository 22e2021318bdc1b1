<?php
/**
 * What a PHP page does with fae: ping, an id, the local cache and its miss.
 *
 *   php contrib/php/example.php [127.0.0.1:9001 | /path/to/faed.sock]
 *
 * Prints one line per call; exits 1 on an unexpected error.
 */
require_once __DIR__ . '/FaeClient.php';

$addr = isset($argv[1]) ? $argv[1] : '127.0.0.1:9001';
try {
    $fae = new FaeClient($addr, 'example.index', 42);
    $rpc = $fae->rpc;
    $ctx = $fae->ctx;

    echo "ping: ", $rpc->ping($ctx), "\n";

    $id = $rpc->id_next($ctx);
    echo "id_next: $id\n";
    list($ts, $tag, $worker, $seq) = $rpc->id_decode($ctx, $id);
    echo "id_decode: ts=$ts tag=$tag worker=$worker seq=$seq\n";

    $key = 'php.example.' . $id;
    $rpc->lc_set($ctx, $key, "hello from php \x00\xff");
    $value = $rpc->lc_get($ctx, $key);
    echo "lc_get: ", ($value === "hello from php \x00\xff" ? 'same bytes' : 'DIFFERENT: ' . bin2hex($value)), "\n";

    try {
        $rpc->lc_get($ctx, $key . '.missing');
        echo "lc_get missing: NO MISS\n";
    } catch (\fun\rpc\TCacheMissed $miss) {
        echo "lc_get missing: TCacheMissed: ", $miss->message, "\n";
    }

    try {
        $rpc->ping(new \fun\rpc\Context(array('rid' => 0, 'reason' => '')));
        echo "bad context: NO ERROR\n";
    } catch (\Thrift\Exception\TApplicationException $e) {
        echo "bad context: TApplicationException: ", $e->getMessage(), "\n";
    }
} catch (TException $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
