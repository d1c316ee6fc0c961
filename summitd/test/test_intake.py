"""The client intake (summitd.core.intake): holds pause every client connection, new ones
start paused, the last release resumes them; extensions hold through their context."""

from twisted.internet import defer, reactor, task, tcp, threads
from twisted.trial import unittest

from summitd.test.test_tls_loopback import HEADER, _Wire
from summitd.testing import FakeClient, add_user, make_server
from summitd.testing.loopback import start_loopback_service


class IntakeTests(unittest.TestCase):
    def setUp(self):
        self.server = make_server(extensions=["delivery"])
        self.intake = self.server.intake
        add_user(self.server, "alice@localhost", "pw")
        self.alice = FakeClient(self.server)
        self.alice.login("alice", "pw", "phone")

    def state(self, client):
        return client.transport.producerState

    def test_hold_pauses_and_release_resumes(self):
        self.intake.hold("one")
        self.intake.hold("two")
        self.assertEqual(self.state(self.alice), "paused")
        late = FakeClient(self.server)
        self.assertEqual(self.state(late), "paused")        # connections made while held
        self.intake.release("one")
        self.assertEqual(self.state(self.alice), "paused")  # "two" still holds
        self.intake.release("two")
        self.assertEqual((self.state(self.alice), self.state(late)), ("producing", "producing"))
        self.intake.release("two")                          # releasing again changes nothing
        self.assertFalse(self.intake.held)

    def test_closed_connections_are_forgotten(self):
        self.intake.hold("x")
        self.alice.stream.connectionLost()
        self.intake.release("x")
        self.assertEqual(self.state(self.alice), "paused")  # not resumed after it closed

    def test_extension_holds_end_with_the_extension(self):
        context = self.server.extensions.loaded["delivery"][1]
        context.hold_client_intake("busy")
        self.assertTrue(self.intake.held)
        context.release_client_intake("busy")
        self.assertFalse(self.intake.held)
        context.hold_client_intake("busy")
        context.close()
        self.assertFalse(self.intake.held)
        self.assertEqual(self.state(self.alice), "producing")


class IntakeOnRealConnectionsTests(unittest.TestCase):
    """Plain, STARTTLS and direct TLS connections of a real service on loopback: a hold takes
    their sockets out of the reactor's readers; the release reads what waited meanwhile."""

    timeout = 30

    @defer.inlineCallbacks
    def test_hold_and_release_real_sockets(self):
        service, ports = yield start_loopback_service(self, {"alice@localhost": "secret"})
        intake = service.server.intake

        def connect(kind):
            wire = _Wire(ports["starttls" if kind == "plain" else kind])
            if kind != "plain":
                if kind == "starttls":
                    wire.request_starttls()
                wire.start_tls(alpn=[b"xmpp-client"] if kind == "direct_tls" else None)
            return wire

        wires = []
        for kind in ("plain", "starttls", "direct_tls"):
            wires.append((yield threads.deferToThread(connect, kind)))
        for _ in range(100):                        # the plain accept may trail the connect
            if len(intake._streams) == 3:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(intake._streams), 3)
        intake.hold("test")
        readers = set(reactor.getReaders())
        sockets = [_socket_transport(stream.transport) for stream in intake._streams]
        self.assertEqual([s for s in sockets if s in readers], [])
        yield threads.deferToThread(lambda: [wire.send(HEADER) for wire in wires])
        intake.release("test")
        readers = set(reactor.getReaders())
        self.assertEqual([s for s in sockets if s not in readers], [])
        replies = yield threads.deferToThread(
            lambda: [wire.read_until(b"</stream:features>") for wire in wires])
        self.assertEqual(len([r for r in replies if b"<stream:features" in r]), 3)
        for wire in wires:
            wire.close()


def _socket_transport(transport):
    """The tcp.Connection under a (possibly TLS-wrapping) transport."""
    while not isinstance(transport, tcp.Connection):
        transport = transport.transport
    return transport
