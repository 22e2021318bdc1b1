<?php
/**
 * Web pages against a fae cluster: each page is one request's worth of work on
 * a FaeClient of its own (a random live node, another one if it fails).
 *
 *   php contrib/php/cluster_pages.php NODES [PAGES] [PAUSE_MS]
 *
 * NODES is faeconf's JSON file (a path ending in .json, read anew by every
 * page) or a comma-separated list of host:port. PAGES (default 10) pages, PAUSE_MS
 * (default 0) apart. Each page pings its node, takes an id and writes and
 * reads back a local-cache key, then prints one JSON line:
 *   {"page":1,"start":1764500000.123,"ms":1.9,"node":"127.0.0.1:9001","failed":{"127.0.0.1:9002":"..."}}
 * or, when it failed, {"page":1,...,"error":"..."}. Exits 1 if a page failed.
 */
require_once __DIR__ . '/FaeClient.php';

use Thrift\Exception\TException;

$nodes = isset($argv[1]) ? $argv[1] : '127.0.0.1:9001';
$pages = isset($argv[2]) ? (int)$argv[2] : 10;
$pauseMs = isset($argv[3]) ? (int)$argv[3] : 0;
$failures = 0;

for ($page = 1; $page <= $pages; $page++) {
    $start = microtime(true);
    $line = array('page' => $page, 'start' => $start);
    try {
        if (substr($nodes, -5) === '.json') {
            $fae = FaeClient::fromFile($nodes, 'cluster.page', 42);
        } else {
            $fae = new FaeClient(explode(',', $nodes), 'cluster.page', 42);
        }
        $rpc = $fae->rpc;
        $ctx = $fae->ctx;
        $rpc->ping($ctx);
        $id = $rpc->id_next($ctx);
        $key = "cluster.page.$id";
        $rpc->lc_set($ctx, $key, "page $page");
        if ($rpc->lc_get($ctx, $key) !== "page $page") {
            throw new TException("lc_get $key: not what lc_set wrote");
        }
        $line['node'] = $fae->node;
        $line['failed'] = (object)$fae->failed;
        unset($fae); // the request ends: its connection closes
    } catch (TException $e) {
        $line['error'] = get_class($e) . ': ' . $e->getMessage();
        $failures++;
    }
    $line['ms'] = round((microtime(true) - $start) * 1000, 3);
    echo json_encode($line), "\n";
    if ($pauseMs > 0) {
        usleep($pauseMs * 1000);
    }
}
exit($failures > 0 ? 1 : 0);
