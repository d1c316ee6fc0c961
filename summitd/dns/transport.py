"""One DNS exchange with one server, on the reactor: UDP, then TCP when the answer is truncated.

Why Twisted sockets carrying dnspython messages, rather than dnspython's blocking
``dns.query`` in threads or ``twisted.names`` alone: a DNSSEC lookup is a chain of
dependent queries (DS and DNSKEY per zone cut), and holding a pool thread for each
waiting query would let a slow resolver starve the reactor's thread pool; here a
query costs one socket and one timer, and is cancellable. ``twisted.names`` cannot
parse RRSIG/DNSKEY/DS/NSEC/NSEC3/TLSA, so dnspython builds and parses the messages
(and validates them, in ``summitd.dns.resolver``) while Twisted only moves bytes.

RFC 1035 §4.2 (UDP, TCP with a two-byte length prefix), RFC 7766 (TCP fallback on
the TC bit). The UDP socket is connected to the server, so datagrams from any other
address are dropped by the kernel; the answer must also match the query's ID and
question (``Message.is_response``) or it is ignored.
"""

import ipaddress

import dns.exception
import dns.flags
import dns.message
from twisted.internet import defer, endpoints, error, protocol
from twisted.python import failure
from twisted.protocols.basic import Int16StringReceiver


class ExchangeError(Exception):
    """The server could not be reached or gave no usable answer."""


class ExchangeTimeout(ExchangeError):
    """No answer within the timeout."""


def _parse_answer(query, data):
    """The response in ``data`` if it answers ``query``, else None."""
    try:
        response = dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None
    return response if query.is_response(response) else None


class _UDPExchange(protocol.DatagramProtocol):
    def __init__(self, query, address):
        self.query = query
        self.address = address
        self.finished = False
        self.deferred = defer.Deferred(self._cancel)

    def startProtocol(self):
        self.transport.connect(*self.address)
        self.transport.write(self.query.to_wire())

    def datagramReceived(self, data, addr):
        response = _parse_answer(self.query, data)
        if response is not None:
            self._finish(response)

    def connectionRefused(self):
        self._finish(ExchangeError(f"{self.address[0]} port {self.address[1]}: connection refused"))

    def _finish(self, result):
        if self.finished or self.deferred.called:
            return
        self.finished = True
        closed = defer.maybeDeferred(self.transport.stopListening)
        closed.addBoth(lambda _: failure.Failure(result) if isinstance(result, Exception) else result)
        closed.chainDeferred(self.deferred)

    def _cancel(self, d):
        self.finished = True
        if self.transport is not None:
            self.transport.stopListening()


class _TCPExchange(Int16StringReceiver):
    def __init__(self, query):
        self.query = query
        self.response = None
        self.done = defer.Deferred()

    def connectionMade(self):
        self.sendString(self.query.to_wire())

    def stringReceived(self, data):
        response = _parse_answer(self.query, data)
        if response is not None and self.response is None:
            self.response = response
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.response is not None:
            self.done.callback(self.response)
        else:
            self.done.errback(ExchangeError(f"connection closed without an answer: {reason.value}"))


def _udp(reactor, query, host, port):
    exchange = _UDPExchange(query, (host, port))
    interface = "::" if ipaddress.ip_address(host.split("%")[0]).version == 6 else ""
    reactor.listenUDP(0, exchange, interface=interface)
    return exchange.deferred


def connect_and_wait(reactor, host, port, proto, timeout):
    """Connect ``proto`` to the IP address ``host``; fires with the result of ``proto.done``
    (a Deferred the protocol fires when it has finished). Cancelling aborts the connection."""
    version = ipaddress.ip_address(host.split("%")[0]).version
    kind = endpoints.TCP6ClientEndpoint if version == 6 else endpoints.TCP4ClientEndpoint
    connecting = endpoints.connectProtocol(kind(reactor, host, port, timeout=timeout), proto)

    def cancel(d):
        connecting.cancel()
        if proto.transport is not None:
            proto.transport.abortConnection()

    result = defer.Deferred(cancel)
    connecting.addCallbacks(lambda _: proto.done, lambda f: defer.fail(
        ExchangeError(f"{host} port {port}: {f.getErrorMessage()}")))
    connecting.chainDeferred(result)
    return result


def _bounded(d, reactor, timeout, what):
    def timed_out(failure):
        failure.trap(defer.TimeoutError)
        raise ExchangeTimeout(f"no answer from {what} within {timeout:g}s")
    return d.addTimeout(timeout, reactor).addErrback(timed_out)


@defer.inlineCallbacks
def exchange(reactor, query, host, port, timeout):
    """Send ``query`` (a dnspython Message) to ``host:port``; fires with the response Message.

    UDP first; a truncated answer is asked again over TCP. Each leg is bounded by
    ``timeout`` seconds; failures raise ExchangeError (ExchangeTimeout on timeouts).
    """
    what = f"{host} port {port}"
    try:
        response = yield _bounded(_udp(reactor, query, host, port), reactor, timeout, what)
        if response.flags & dns.flags.TC:
            response = yield _bounded(connect_and_wait(reactor, host, port, _TCPExchange(query), timeout), reactor, timeout,
                                      f"{what} (TCP)")
    except (OSError, error.CannotListenError) as e:
        raise ExchangeError(f"{what}: {e}") from None
    return response
