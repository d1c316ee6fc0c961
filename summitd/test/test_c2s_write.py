"""Tests for c2s.write_now: stanzas go straight to a plain TCP socket when nothing is queued,
and through Twisted's queue otherwise (order and flow control stay Twisted's)."""

from twisted.internet import tcp
from twisted.test.proto_helpers import StringTransport
from twisted.trial import unittest

from summitd.transports.c2s import write_now


class FakeSocket:
    """Takes at most ``room`` bytes per send; ``error`` is raised instead when set."""

    def __init__(self, room=10 ** 6, error=None):
        self.room = room
        self.error = error
        self.sent = []

    def send(self, data):
        if self.error is not None:
            raise self.error
        taken = bytes(data[:self.room])
        self.sent.append(taken)
        return len(taken)


def plain_tcp(socket, tls=False, queued=b""):
    """A tcp.Server in the state write_now looks at, without a real connection; its
    ``write`` (Twisted's queue) is recorded in ``.queued``."""
    transport = object.__new__(tcp.Server)
    transport.TLS = tls
    transport.connected = True
    transport.disconnecting = False
    transport._writeDisconnected = False
    transport._tempDataBuffer = [queued] if queued else []
    transport.dataBuffer = b""
    transport.offset = 0
    transport.socket = socket
    transport.queued = []
    transport.write = transport.queued.append
    return transport


class WriteNowTests(unittest.TestCase):

    def test_sent_at_once(self):
        """With nothing queued, the bytes go to the socket and nothing is queued."""
        sock = FakeSocket()
        transport = plain_tcp(sock)
        write_now(transport, b"<message/>")
        self.assertEqual((sock.sent, transport.queued), ([b"<message/>"], []))

    def test_rest_of_a_partial_send_is_queued(self):
        """What the socket does not take is queued with Twisted."""
        sock = FakeSocket(room=4)
        transport = plain_tcp(sock)
        write_now(transport, b"<message/>")
        self.assertEqual((sock.sent, transport.queued), ([b"<mes"], [b"sage/>"]))

    def test_full_socket_queues_everything(self):
        """A socket that would block leaves the whole stanza to Twisted."""
        transport = plain_tcp(FakeSocket(error=BlockingIOError()))
        write_now(transport, b"<message/>")
        self.assertEqual(transport.queued, [b"<message/>"])

    def test_socket_error_left_to_twisted(self):
        """A broken connection is Twisted's to notice: the bytes are queued, not lost silently."""
        transport = plain_tcp(FakeSocket(error=ConnectionResetError()))
        write_now(transport, b"<message/>")
        self.assertEqual(transport.queued, [b"<message/>"])

    def test_behind_queued_data(self):
        """Bytes never overtake what Twisted still holds."""
        sock = FakeSocket()
        transport = plain_tcp(sock, queued=b"<earlier/>")
        write_now(transport, b"<message/>")
        self.assertEqual((sock.sent, transport.queued), ([], [b"<message/>"]))

    def test_tls_goes_through_twisted(self):
        """A TLS connection's bytes must be encrypted: Twisted's write does it."""
        sock = FakeSocket()
        transport = plain_tcp(sock, tls=True)
        write_now(transport, b"<message/>")
        self.assertEqual((sock.sent, transport.queued), ([], [b"<message/>"]))

    def test_other_transports(self):
        """Any other transport (tests' StringTransport, WebSocket later) gets a plain write."""
        transport = StringTransport()
        write_now(transport, b"<message/>")
        self.assertEqual(transport.value(), b"<message/>")
