<?php
/**
 * Prints which server PHP's memcache extensions pick for keys, without
 * connecting: reads {"strategy": "standard"|"consistent", "servers": [[host, port], …],
 * "keys": [...]} on stdin, writes one "host:port" line per key.
 *
 * standard:   pecl memcache, memcache.hash_strategy=standard, hash_function=crc32 (findServer)
 * consistent: pecl memcached, OPT_LIBKETAMA_COMPATIBLE (getServerByKey)
 */
$in = json_decode(file_get_contents('php://stdin'), true);
if ($in['strategy'] === 'standard') {
    ini_set('memcache.hash_strategy', 'standard');
    ini_set('memcache.hash_function', 'crc32');
    $m = new Memcache;
    foreach ($in['servers'] as $s) {
        $m->addServer($s[0], $s[1]);
    }
    foreach ($in['keys'] as $k) {
        echo $m->findServer($k), "\n";
    }
} else {
    $m = new Memcached;
    $m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
    $m->addServers($in['servers']);
    foreach ($in['keys'] as $k) {
        $s = $m->getServerByKey($k);
        echo $s['host'], ':', $s['port'], "\n";
    }
}
