"""An in-memory client for whole-server tests: it speaks to a ClientStream through a
StringTransport, so a test drives the real protocol code with a fake clock and no sockets."""

import base64
from collections import deque

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from summitd.core.errors import NS_STREAMS
from summitd.core.xmlstream import StreamParser
from summitd.testing.matching import mismatch, parse_xml
from summitd.testing.scram_client import ScramClient
from summitd.transports.c2s import NS_BIND, NS_SASL, ClientStream

STREAM_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'>")


class ProtocolMismatch(AssertionError):
    """What the server sent is not what the test expected."""


class FakeClient:
    """One client connection to ``server``.

    ``send(xml)`` feeds bytes to the server; ``expect(pattern)`` takes the next
    element the server sent and checks it (see summitd.testing.matching);
    ``expect_nothing()`` checks the server sent no element.
    """

    def __init__(self, server, peer="127.0.0.1", port=40000):
        self.server = server
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer, port))
        self.stream = ClientStream(server)
        self.stream.makeConnection(self.transport)
        self.inbox = deque()
        self.header = None
        self.ended = False
        self._parser = None
        self.jid = None

    # -- raw I/O ------------------------------------------------------------------------

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.stream.dataReceived(data)

    def _pump(self):
        data = self.transport.value()
        self.transport.clear()
        if data and self._parser is not None:
            self._parser.feed(data)

    @property
    def disconnected(self):
        """The server closed (or is closing) the connection."""
        return self.transport.disconnecting

    def lose_connection(self):
        """The client vanishes (unclean disconnect)."""
        from twisted.python.failure import Failure
        from twisted.internet.error import ConnectionLost
        self.stream.connectionLost(Failure(ConnectionLost()))

    # -- StreamParser handler (the client side parses what the server sends) ---------

    def stream_started(self, attrs, default_ns):
        self.header = attrs

    def element_received(self, element):
        self.inbox.append(element)

    def stream_ended(self):
        self.ended = True

    # -- expectations ---------------------------------------------------------------

    def next(self):
        """The next element the server sent (ProtocolMismatch if none)."""
        self._pump()
        if not self.inbox:
            raise ProtocolMismatch("the server sent nothing more")
        return self.inbox.popleft()

    def expect(self, pattern):
        element = self.next()
        problem = mismatch(element, parse_xml(pattern))
        if problem is not None:
            raise ProtocolMismatch(f"{problem}\n  received: {element.toXml()}")
        return element

    def expect_nothing(self):
        self._pump()
        if self.inbox:
            raise ProtocolMismatch(f"unexpected: {self.inbox[0].toXml()}")

    def expect_stream_error(self, condition):
        error = self.expect(f"<error xmlns='{NS_STREAMS}'/>")
        names = [c.name for c in error.elements()]
        if condition not in names:
            raise ProtocolMismatch(f"expected stream error {condition}, got {names}")
        if not self.disconnected:
            raise ProtocolMismatch("the server did not close the connection after a stream error")
        return error

    # -- conversations ----------------------------------------------------------------

    def open_stream(self, to="localhost", header=None):
        """Send a stream header; returns the <stream:features/> element."""
        self._parser = StreamParser(self, max_stanza_size=10 ** 8, max_header_size=10 ** 6)
        self.send(header if header is not None else STREAM_HEADER.format(to=to))
        return self.expect(f"<features xmlns='{NS_STREAMS}'/>")

    def authenticate(self, username, password, mechanism="SCRAM-SHA-256"):
        """SCRAM or PLAIN; returns True on success, else the failure element."""
        if mechanism == "PLAIN":
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
            return self._sasl_result()
        scram = ScramClient(username, password, "sha1" if mechanism == "SCRAM-SHA-1" else "sha256")
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>"
                  f"{base64.b64encode(scram.first()).decode()}</auth>")
        challenge = self.next()
        if challenge.name != "challenge":
            return challenge
        final = scram.final(base64.b64decode(str(challenge)))
        self.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final).decode()}</response>")
        return self._sasl_result(scram)

    def _sasl_result(self, scram=None):
        result = self.next()
        if result.name != "success":
            return result
        if scram is not None and not scram.verify(base64.b64decode(str(result))):
            raise ProtocolMismatch("the server's SCRAM signature is wrong")
        return True

    def bind(self, resource=None):
        """Bind a resource; returns the full JID the server assigned (a str)."""
        body = f"<resource>{resource}</resource>" if resource else ""
        self.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>{body}</bind></iq>")
        reply = self.expect("<iq type='result' id='bind1'/>")
        self.jid = str(next(next(reply.elements()).elements())).strip()
        return self.jid

    def login(self, username, password, resource=None, to="localhost", mechanism="SCRAM-SHA-256"):
        """Open, authenticate, restart, bind; returns the full JID."""
        self.open_stream(to)
        result = self.authenticate(username, password, mechanism)
        if result is not True:
            raise ProtocolMismatch(f"login failed: {result.toXml()}")
        self.open_stream(to)
        return self.bind(resource)
