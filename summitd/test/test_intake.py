"""The client intake (summitd.core.intake): holds pause every client connection, new ones
start paused, the last release resumes them; extensions hold through their context."""

from twisted.trial import unittest

from summitd.testing import FakeClient, add_user, make_server


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
