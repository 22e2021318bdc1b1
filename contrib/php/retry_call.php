<?php
/**
 * One request whose call may be retried on another node (FaeRpc), for the tests.
 *
 *   php contrib/php/retry_call.php NODES RECV_TIMEOUT_MS [WAIT]
 *
 * NODES is a comma-separated list of host:port, tried in that order, no probe.
 * With WAIT=1 it first pings the first node, prints {"ready":"<node>"} and
 * waits for a line on stdin (the session is then idle between calls). Then it
 * writes and reads back a local-cache key and prints one JSON line:
 *   {"node":"127.0.0.1:9002","failed":{"127.0.0.1:9001":"lc_set never ran: ..."},"value":"v"}
 * or, when the call failed, {"node":...,"failed":...,"error":"..."}. Exits 1 if it failed.
 */
require_once __DIR__ . '/FaeClient.php';

use Thrift\Exception\TException;

$nodes = explode(',', $argv[1]);
$fae = new FaeClient($nodes, 'retry.call', 42,
    array('shuffle' => false, 'probe' => false, 'recv_timeout_ms' => (int)$argv[2]));
if (isset($argv[3]) && $argv[3] === '1') {
    $fae->rpc->ping($fae->ctx);
    echo json_encode(array('ready' => $fae->node)), "\n";
    fgets(STDIN);
}
$line = array();
try {
    $fae->rpc->lc_set($fae->ctx, 'retry.key', 'v');
    $line['value'] = $fae->rpc->lc_get($fae->ctx, 'retry.key');
} catch (TException $e) {
    $line['error'] = get_class($e) . ': ' . $e->getMessage();
}
$line['node'] = $fae->node;
$line['failed'] = (object)$fae->failed;
echo json_encode($line), "\n";
exit(isset($line['error']) ? 1 : 0);
