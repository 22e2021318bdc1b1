<?php
/**
 * Shares memcache items with faed through PHP's own memcache extensions:
 *
 *   php mc_share.php standard|consistent set|get <prefix> <n> <host:port>...
 *
 * standard:   pecl memcache, memcache.hash_strategy=standard, hash_function=crc32
 * consistent: pecl memcached with Memcached::OPT_LIBKETAMA_COMPATIBLE
 * set stores "php:<i>" under <prefix><i> for i < n (and, for standard, an array
 * under <prefix>arr, which PHP serializes and flags 1); get prints
 * "<key> <value>" or "<key> MISS" per key.
 */
list(, $strategy, $action, $prefix, $n) = $argv;
$servers = array_slice($argv, 5);
if ($strategy === 'standard') {
    ini_set('memcache.hash_strategy', 'standard');
    ini_set('memcache.hash_function', 'crc32');
    $m = new Memcache;
    foreach ($servers as $s) {
        list($host, $port) = explode(':', $s);
        $m->addServer($host, (int)$port);
    }
    $set = function ($k, $v) use ($m) { return $m->set($k, $v, 0, 60); };
} else {
    $m = new Memcached;
    $m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
    foreach ($servers as $s) {
        list($host, $port) = explode(':', $s);
        $m->addServer($host, (int)$port);
    }
    $set = function ($k, $v) use ($m) { return $m->set($k, $v, 60); };
}
for ($i = 0; $i < (int)$n; $i++) {
    $k = $prefix . $i;
    if ($action === 'set') {
        if (!$set($k, "php:$i")) {
            fwrite(STDERR, "set $k failed\n");
            exit(1);
        }
    } else {
        $v = $m->get($k);
        echo $k, ' ', ($v === false ? 'MISS' : $v), "\n";
    }
}
if ($action === 'set' && $strategy === 'standard') {
    $set($prefix . 'arr', array('x' => 1));
}
