<?php
/**
 * A fae client for PHP, as a php-fpm page uses it: one connection per request
 * (TSocket + TBufferedTransport + TBinaryProtocol), one Context per request.
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
use Thrift\Protocol\TBinaryProtocol;
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
    /** @var \fun\rpc\FunServantClient */
    public $rpc;
    /** @var \fun\rpc\Context */
    public $ctx;
    private $transport;

    /**
     * @param string $addr   "host:port" or the path of faed's unix socket
     * @param string $reason why the calls are made, e.g. "controller.action"
     * @param int    $uid    end-user id, for logs
     */
    public function __construct($addr, $reason, $uid = 0)
    {
        if (strpos($addr, '/') !== false) {
            $socket = new TUnixSocket($addr);
        } else {
            list($host, $port) = explode(':', $addr);
            $socket = new TSocket($host, (int)$port);
        }
        $socket->setSendTimeout(4000); // ms
        $socket->setRecvTimeout(4000); // ms
        $this->transport = new TBufferedTransport($socket, 1024, 1024);
        $this->rpc = new \fun\rpc\FunServantClient(new TBinaryProtocol($this->transport));
        $this->transport->open();
        $this->ctx = new \fun\rpc\Context(array(
            'rid' => hexdec(uniqid()),
            'reason' => $reason,
            'uid' => $uid,
        ));
    }

    public function __destruct()
    {
        $this->transport->close();
    }
}
