<?php
/**
 * A fae client for PHP, as a php-fpm page uses it: one connection per request,
 * one Context per request.
 *
 *   $fae = new FaeClient('127.0.0.1:9001', 'user.profile', $uid);       // one node (or a unix socket path)
 *   $fae = new FaeClient(array('10.0.0.5:9001', '10.0.0.6:9001'), ...);  // a random one of these
 *   $fae = FaeClient::fromFile('/etc/fae/nodes.json', 'user.profile', $uid); // the live nodes, from faeconf
 *   $fae->rpc->ping($fae->ctx);                // retried once elsewhere if it never ran (below)
 *
 * With more than one node it picks one at random per request (per FaeClient)
 * and checks it answers: a node whose connect fails (refused, or no answer
 * within connect_timeout_ms) or that does not answer a ping within
 * probe_timeout_ms (a frozen or overloaded node accepts connections but
 * answers nothing) is given up for this request only, and the next one is
 * tried, up to max_tries nodes. Nothing is remembered across requests:
 * unlike PHP Thrift's TSocketPool there is no host-wide ban (its APC-kept 60 s
 * ban would keep every php-fpm worker off a node that only blinked). A page
 * with one dead node and one frozen one in its way is therefore at most about
 * connect_timeout_ms + probe_timeout_ms (400 ms with the defaults) slower.
 * Option shuffle => false tries the nodes in the order given instead (e.g.
 * the local unix socket first, other nodes as fallbacks).
 *
 * A call made through $fae->rpc (FaeRpc, a proxy of the generated
 * FunServantClient with the same methods) is retried once, on another node of
 * the list not tried yet in this request (reconnecting, probed as above),
 * only when it certainly never ran:
 *  - the connection was closed before any byte of the reply was read (the
 *    read saw end-of-file or a reset, or the write failed): faed's drain
 *    closes only sessions idle between calls, and an overloaded faed closes
 *    a connection without answering it only when no call was read;
 *  - the reply is a TApplicationException whose message contains
 *    "faed overloaded:" (faed past rpc.max_outstanding_sessions answers a
 *    new connection's first call that way, then closes it).
 * Never a call that may have run: a timeout after the request was written,
 * or a connection closed after part of the reply was read, is the page's
 * error, as is any error of the retry. $fae->client is the generated client
 * itself, on the same connection, without retries.
 *
 * fromFile reads faeconf's JSON file (faeconf -json) on every call, so a
 * rewritten file is seen at once; faeconf's PHP form would be cached by
 * opcache, and with opcache.validate_timestamps=0 never read again.
 * Each node is spoken to in the protocol and transport its entry says.
 *
 * Needs the Apache Thrift PHP library (Debian: php-thrift, installed under
 * /usr/lib/php; or lib/php/lib of the apache/thrift sources: set THRIFT_PHP_LIB)
 * and the stubs generated from idl/servant.thrift (gen-php/, `make idl`).
 */

$thriftLib = getenv('THRIFT_PHP_LIB') ?: '/usr/lib/php';
$genDir = __DIR__ . '/gen-php';

// Debian's php-thrift puts Thrift\X\Y at /usr/lib/php/X/Y.php (no Thrift/ folder).
spl_autoload_register(function ($class) use ($thriftLib, $genDir) {
    $parts = explode('\\', ltrim($class, '\\'));
    if ($parts[0] === 'Thrift') {
        $file = $thriftLib . '/' . implode('/', array_slice($parts, 1)) . '.php';
        if (!is_file($file)) {
            $file = $thriftLib . '/Thrift/' . implode('/', array_slice($parts, 1)) . '.php';
        }
    } else {
        $file = $genDir . '/' . implode('/', $parts) . '.php';
    }
    if (is_file($file)) {
        require_once $file;
    }
});

use Thrift\Transport\TSocket;
use Thrift\Transport\TBufferedTransport;
use Thrift\Transport\TFramedTransport;
use Thrift\Protocol\TBinaryProtocol;
use Thrift\Protocol\TCompactProtocol;
use Thrift\Exception\TApplicationException;
use Thrift\Exception\TException;
use Thrift\Exception\TTransportException;

/**
 * What FaeRpc needs of a socket to tell a call that never ran: the bytes read
 * since it was opened, and whether the last read or write failed because the
 * connection was closed (end-of-file, a reset, a failed write) rather than by a
 * timeout.
 */
trait FaeSocketWatch
{
    /** @var int bytes read since the socket was opened */
    public $bytesRead = 0;
    /** @var bool the last failed read or write found the connection closed */
    public $closed = false;

    public function read($len)
    {
        try {
            $data = parent::read($len);
        } catch (TTransportException $e) {
            // TSocket throws "timed out reading" when select saw nothing, and on
            // EOF or a read error (a reset) the stream is at EOF.
            $this->closed = is_resource($this->handle_) && feof($this->handle_);
            throw $e;
        }
        $this->bytesRead += strlen($data);
        return $data;
    }

    public function write($buf)
    {
        try {
            parent::write($buf);
        } catch (TTransportException $e) {
            $this->closed = strpos($e->getMessage(), 'TSocket: Could not write') === 0;
            throw $e;
        }
    }
}

/** PHP's TSocket (host:port) with FaeSocketWatch. */
class FaeSocket extends TSocket
{
    use FaeSocketWatch;
}

/** TSocket over a unix socket path (PHP's TSocket only opens host:port), with FaeSocketWatch. */
class TUnixSocket extends TSocket
{
    use FaeSocketWatch;

    private $path;

    public function __construct($path)
    {
        parent::__construct('localhost', 1);
        $this->path = $path;
    }

    public function open()
    {
        $this->handle_ = @stream_socket_client('unix://' . $this->path, $errno, $errstr,
            $this->sendTimeoutSec_ + ($this->sendTimeoutUsec_ / 1000000));
        if ($this->handle_ === false) {
            throw new TTransportException("TUnixSocket: could not connect to {$this->path} ($errstr [$errno])",
                TTransportException::NOT_OPEN);
        }
    }
}

class FaeClient
{
    /**
     * The options and their defaults (milliseconds for the timeouts).
     *  connect_timeout_ms  bound of one TCP (or unix socket) connect
     *  probe_timeout_ms    bound of the ping that checks a node before it is used
     *  send_timeout_ms     bound of each write of a call
     *  recv_timeout_ms     bound of each wait for the bytes of an answer (keep it
     *                      above the slowest call, e.g. a MySQL query)
     *  probe               ping the chosen node first: null = when there is more
     *                      than one node to choose from
     *  max_tries           nodes tried per request at most (the connect and a
     *                      call's retry together)
     *  shuffle             try the nodes in random order; false = in the order given
     *  protocol, framed    for nodes given as bare addresses: "binary" or
     *                      "compact", framed or buffered transport (faed's
     *                      rpc.protocol and rpc.framed)
     */
    const DEFAULTS = array(
        'connect_timeout_ms' => 200,
        'probe_timeout_ms' => 200,
        'send_timeout_ms' => 4000,
        'recv_timeout_ms' => 4000,
        'probe' => null,
        'max_tries' => 3,
        'shuffle' => true,
        'protocol' => 'binary',
        'framed' => false,
    );

    /**
     * @var FaeRpc the calls: $fae->rpc->lc_get($fae->ctx, $key), every method of
     *             \fun\rpc\FunServantClient, retried once on another node when
     *             the call certainly never ran (see FaeRpc)
     */
    public $rpc;
    /** @var \fun\rpc\Context */
    public $ctx;

    /**
     * @param string|array $nodes   "host:port" or the path of faed's unix socket; or a
     *                              list of nodes, each such an address or an array
     *                              ('addr' => ..., 'protocol' => ..., 'framed' => ...)
     *                              as in faeconf's JSON "nodes"
     * @param string       $reason  why the calls are made, e.g. "controller.action"
     * @param int          $uid     end-user id, for logs
     * @param array        $options see DEFAULTS
     * @throws TTransportException (NOT_OPEN) naming every node tried and why it was
     *                              given up, when none could be used
     */
    public function __construct($nodes, $reason, $uid = 0, array $options = array())
    {
        $opt = array_merge(self::DEFAULTS, $options);
        $list = self::normalize(is_array($nodes) ? $nodes : array($nodes), $opt);
        if (count($list) === 0) {
            throw new TTransportException('FaeClient: no fae node given', TTransportException::NOT_OPEN);
        }
        if ($opt['shuffle']) {
            shuffle($list);
        }
        $this->ctx = new \fun\rpc\Context(array(
            'rid' => hexdec(uniqid()),
            'reason' => $reason,
            'uid' => $uid,
        ));
        $this->rpc = new FaeRpc($list, $opt, $this->ctx);
    }

    /**
     * The connection's state, read from $rpc (it changes when a call is retried):
     *  node    string, the address of the node serving this request now
     *  failed  array, address => why it was given up, for the nodes tried before
     *  client  \fun\rpc\FunServantClient, the generated client on the current
     *          connection: its calls are never retried
     */
    public function __get($name)
    {
        if ($name === 'node' || $name === 'failed' || $name === 'client') {
            return $this->rpc->$name;
        }
        trigger_error("FaeClient has no property $name", E_USER_NOTICE);
        return null;
    }

    /** isset($fae->node) and the like, as for __get's properties. */
    public function __isset($name)
    {
        return ($name === 'node' || $name === 'failed' || $name === 'client') && isset($this->rpc->$name);
    }

    /**
     * A FaeClient on the nodes of faeconf's JSON file, read now (see nodesFromFile).
     */
    public static function fromFile($path, $reason, $uid = 0, array $options = array())
    {
        return new self(self::nodesFromFile($path), $reason, $uid, $options);
    }

    /**
     * The "nodes" of faeconf's JSON file at $path.
     * @throws TTransportException (NOT_OPEN) naming the file when it cannot be read,
     *         is not faeconf's JSON or lists no node
     */
    public static function nodesFromFile($path)
    {
        $text = @file_get_contents($path);
        if ($text === false) {
            $err = error_get_last();
            throw new TTransportException("FaeClient: cannot read the node list $path: " .
                ($err ? $err['message'] : 'unknown error'), TTransportException::NOT_OPEN);
        }
        $conf = json_decode($text, true);
        if (!is_array($conf) || !isset($conf['nodes']) || !is_array($conf['nodes']) || count($conf['nodes']) === 0) {
            throw new TTransportException("FaeClient: $path is not a node list written by faeconf " .
                '(a JSON object with a non-empty "nodes")', TTransportException::NOT_OPEN);
        }
        return $conf['nodes'];
    }

    /** Each node as array(addr, protocol, framed); entries without an address are dropped. */
    private static function normalize(array $nodes, array $opt)
    {
        $out = array();
        foreach ($nodes as $n) {
            if (is_string($n)) {
                $n = array('addr' => $n);
            }
            if (!is_array($n) || !isset($n['addr']) || !is_string($n['addr']) || $n['addr'] === '') {
                continue;
            }
            $out[] = array(
                'addr' => $n['addr'],
                'protocol' => isset($n['protocol']) ? $n['protocol'] : $opt['protocol'],
                'framed' => isset($n['framed']) ? (bool)$n['framed'] : (bool)$opt['framed'],
            );
        }
        return $out;
    }
}

/**
 * One request's connection to a fae node and its calls: every method of
 * \fun\rpc\FunServantClient, same arguments, same results and exceptions
 * (FaeClient's $rpc). A call is retried once, with the same arguments, on the
 * next node of the request's list not tried yet (connected and probed as at
 * the start, within max_tries nodes for the request), only when it certainly
 * never ran: the connection was found closed before any byte of the reply was
 * read, or the reply is a TApplicationException containing "faed overloaded:".
 * The node given up is added to $failed with the reason. If no other node can
 * be used, or the retry fails, the caller gets that call's error.
 */
class FaeRpc
{
    /** @var \fun\rpc\FunServantClient the generated client on the current connection (never retried) */
    public $client;
    /** @var string the address of the node serving this request now */
    public $node;
    /** @var array address => why it was given up, for the nodes tried before $node */
    public $failed = array();
    private $list;
    private $opt;
    private $probe;
    private $ctx;
    private $next = 0; // index in $list of the next node to try
    private $socket;
    private $transport;

    /**
     * Connects to the first usable node of $list (see FaeClient).
     * @throws TTransportException (NOT_OPEN) naming every node tried and why, when none could be used
     */
    public function __construct(array $list, array $opt, \fun\rpc\Context $ctx)
    {
        $this->list = $list;
        $this->opt = $opt;
        $this->ctx = $ctx;
        $this->probe = $opt['probe'] === null ? count($list) > 1 : (bool)$opt['probe'];
        if ($this->connectNext()) {
            return;
        }
        $why = array();
        foreach ($this->failed as $addr => $msg) {
            $why[] = "$addr: $msg";
        }
        throw new TTransportException(sprintf('FaeClient: no fae node could be used (%d of %d tried): %s',
            count($this->failed), count($list), implode('; ', $why)), TTransportException::NOT_OPEN);
    }

    public function __destruct()
    {
        $this->close();
    }

    /**
     * Calls $method of the generated client, retrying once as the class says.
     * @throws TException what the call (or its retry) threw
     */
    public function __call($method, array $args)
    {
        $before = $this->socket->bytesRead;
        $this->socket->closed = false;
        try {
            return $this->client->$method(...$args);
        } catch (TException $e) {
            $why = $this->neverRan($e, $before);
            if ($why === null) {
                throw $e;
            }
            $this->failed[$this->node] = "$method never ran: $why";
            $this->close();
            if (!$this->connectNext()) {
                throw $e;
            }
        }
        return $this->client->$method(...$args);
    }

    /** Why the call that threw $e certainly never ran, or null when it may have. */
    private function neverRan(TException $e, $before)
    {
        if ($e instanceof TApplicationException) {
            return strpos($e->getMessage(), 'faed overloaded:') !== false ? $e->getMessage() : null;
        }
        if ($e instanceof TTransportException && $this->socket->closed && $this->socket->bytesRead === $before) {
            return 'connection closed before any reply byte (' . $e->getMessage() . ')';
        }
        return null;
    }

    /**
     * Connects to the next usable node of the list, within max_tries nodes for
     * the request; false (each failure in $failed) when none is left.
     */
    private function connectNext()
    {
        $limit = min(count($this->list), max(1, (int)$this->opt['max_tries']));
        while ($this->next < $limit) {
            $node = $this->list[$this->next++];
            try {
                $this->open($node);
                $this->node = $node['addr'];
                return true;
            } catch (TException $e) {
                $this->failed[$node['addr']] = $e->getMessage();
                $this->close();
            }
        }
        return false;
    }

    /** Closes the connection, if one is open (TSocket::close fails on a socket never opened). */
    private function close()
    {
        if ($this->transport !== null && $this->transport->isOpen()) {
            $this->transport->close();
        }
        $this->transport = null;
    }

    /** Connects to $node (and pings it when probing); sets client, socket and transport. */
    private function open(array $node)
    {
        $opt = $this->opt;
        $addr = $node['addr'];
        if (strpos($addr, '/') !== false) {
            $socket = new TUnixSocket($addr);
        } else {
            $i = strrpos($addr, ':');
            if ($i === false) {
                throw new TTransportException("not a host:port: $addr", TTransportException::NOT_OPEN);
            }
            $socket = new FaeSocket(trim(substr($addr, 0, $i), '[]'), (int)substr($addr, $i + 1));
        }
        $socket->setSendTimeout($opt['connect_timeout_ms']); // PHP's TSocket connects within the send timeout
        $socket->setRecvTimeout($this->probe ? $opt['probe_timeout_ms'] : $opt['recv_timeout_ms']);
        $this->socket = $socket;
        if ($node['framed']) {
            $this->transport = new TFramedTransport($socket);
        } else {
            $this->transport = new TBufferedTransport($socket, 1024, 1024);
        }
        if ($node['protocol'] === 'compact') {
            $protocol = new TCompactProtocol($this->transport);
        } elseif ($node['protocol'] === 'binary') {
            $protocol = new TBinaryProtocol($this->transport);
        } else {
            throw new TTransportException("unknown protocol \"{$node['protocol']}\" (binary or compact)",
                TTransportException::NOT_OPEN);
        }
        $this->client = new \fun\rpc\FunServantClient($protocol);
        $this->transport->open();
        $socket->setSendTimeout($opt['send_timeout_ms']);
        if ($this->probe) {
            $this->client->ping($this->ctx);
            $socket->setRecvTimeout($opt['recv_timeout_ms']);
        }
    }
}
