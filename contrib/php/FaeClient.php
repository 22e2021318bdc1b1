<?php
/**
 * A fae client for PHP, as a php-fpm page uses it: one connection per request,
 * one Context per request.
 *
 *   $fae = new FaeClient('127.0.0.1:9001', 'user.profile', $uid);       // one node (or a unix socket path)
 *   $fae = new FaeClient(array('10.0.0.5:9001', '10.0.0.6:9001'), ...);  // a random one of these
 *   $fae = FaeClient::fromFile('/etc/fae/nodes.json', 'user.profile', $uid); // the live nodes, from faeconf
 *   $fae->rpc->ping($fae->ctx);
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
 * Once connected, calls are not retried: a call that fails is the page's error.
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
use Thrift\Exception\TException;
use Thrift\Exception\TTransportException;

/** TSocket over a unix socket path (PHP's TSocket only opens host:port). */
class TUnixSocket extends TSocket
{
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
     *  max_tries           nodes tried per request at most
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
        'protocol' => 'binary',
        'framed' => false,
    );

    /** @var \fun\rpc\FunServantClient */
    public $rpc;
    /** @var \fun\rpc\Context */
    public $ctx;
    /** @var string the address of the node serving this request */
    public $node;
    /** @var array address => why it was given up, for the nodes tried before $node */
    public $failed = array();
    private $transport;

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
        $probe = $opt['probe'] === null ? count($list) > 1 : (bool)$opt['probe'];
        shuffle($list);
        $this->ctx = new \fun\rpc\Context(array(
            'rid' => hexdec(uniqid()),
            'reason' => $reason,
            'uid' => $uid,
        ));
        foreach (array_slice($list, 0, max(1, (int)$opt['max_tries'])) as $node) {
            try {
                $this->open($node, $opt, $probe);
                $this->node = $node['addr'];
                return;
            } catch (TException $e) {
                $this->failed[$node['addr']] = $e->getMessage();
                $this->close();
            }
        }
        $why = array();
        foreach ($this->failed as $addr => $msg) {
            $why[] = "$addr: $msg";
        }
        throw new TTransportException(sprintf('FaeClient: no fae node could be used (%d of %d tried): %s',
            count($this->failed), count($list), implode('; ', $why)), TTransportException::NOT_OPEN);
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

    public function __destruct()
    {
        $this->close();
    }

    /** Closes the connection, if one is open (TSocket::close fails on a socket never opened). */
    private function close()
    {
        if ($this->transport !== null && $this->transport->isOpen()) {
            $this->transport->close();
        }
        $this->transport = null;
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

    /** Connects to $node (and pings it when $probe); sets rpc and transport. */
    private function open(array $node, array $opt, $probe)
    {
        $addr = $node['addr'];
        if (strpos($addr, '/') !== false) {
            $socket = new TUnixSocket($addr);
        } else {
            $i = strrpos($addr, ':');
            if ($i === false) {
                throw new TTransportException("not a host:port: $addr", TTransportException::NOT_OPEN);
            }
            $socket = new TSocket(trim(substr($addr, 0, $i), '[]'), (int)substr($addr, $i + 1));
        }
        $socket->setSendTimeout($opt['connect_timeout_ms']); // PHP's TSocket connects within the send timeout
        $socket->setRecvTimeout($probe ? $opt['probe_timeout_ms'] : $opt['recv_timeout_ms']);
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
        $this->rpc = new \fun\rpc\FunServantClient($protocol);
        $this->transport->open();
        $socket->setSendTimeout($opt['send_timeout_ms']);
        if ($probe) {
            $this->rpc->ping($this->ctx);
            $socket->setRecvTimeout($opt['recv_timeout_ms']);
        }
    }
}
