"""End to end: a real ``twistd summitd`` process and slixmpp clients talking to it.

``summitd.testing.process`` starts the server (two accounts made with summitctl);
``slixmpp_scenario.py`` runs the clients (asyncio, so in a process of its own) and
prints JSON that the tests check. The server log must hold no traceback.
"""

import os

from twisted.internet import defer
from twisted.trial import unittest

from summitd.testing.process import SummitdProcessMixin

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_scenario.py")
ALICE, ALICE_PASSWORD = "alice@localhost", "alice's secret p\u00e4ssword"
BOB, BOB_PASSWORD = "bob@localhost", "bob-S3cret,=with=commas"
PASSWORDS = {"SCENARIO_ALICE_PASSWORD": ALICE_PASSWORD, "SCENARIO_BOB_PASSWORD": BOB_PASSWORD}


class SlixmppIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 120
    accounts = {ALICE: ALICE_PASSWORD, BOB: BOB_PASSWORD}

    def assertSession(self, info, jid, tls_via_starttls):
        self.assertEqual(info["mechanism"], "SCRAM-SHA-256")
        self.assertTrue(info["tls_event"])
        self.assertIn(info["tls_version"], ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(info["starttls_negotiated"], tls_via_starttls)
        self.assertTrue(info["bound_jid"].startswith(jid + "/"), info["bound_jid"])

    @defer.inlineCallbacks
    def test_starttls_scram_sha256_message(self):
        """Two slixmpp users log in over STARTTLS with SCRAM-SHA-256, send initial
        presence, and bob's chat message to alice's bare JID reaches alice."""
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--tls", "starttls",
                                         "--scenario", "message", "--mechanism", "SCRAM-SHA-256",
                                         env=PASSWORDS)
        sessions = result["sessions"]
        self.assertSession(sessions["alice"], ALICE, tls_via_starttls=True)
        self.assertSession(sessions["bob"], BOB, tls_via_starttls=True)
        message = result["message"]
        self.assertEqual(message["from"], sessions["bob"]["bound_jid"])
        self.assertIn(message["to"], (ALICE, sessions["alice"]["bound_jid"]))
        self.assertEqual(message["type"], "chat")
        self.assertTrue(message["body"].startswith("hello alice, this is bob ("), message["body"])
        yield self.stop_server()
        self.assertCleanServerLog()
        self.assertIn(f"bound {ALICE}/", self.server_log())

    @defer.inlineCallbacks
    def test_direct_tls_ping(self):
        """Direct TLS (XEP-0368): slixmpp logs in on the TLS port, the generated
        certificate verifies for 'localhost', and the server answers a ping."""
        result = yield self.run_scenario(SCENARIO, "--port", str(self.tls_port), "--tls", "direct",
                                         "--scenario", "ping", "--mechanism", "SCRAM-SHA-256",
                                         "--cafile", self.cert_path, env=PASSWORDS)
        self.assertSession(result["sessions"]["alice"], ALICE, tls_via_starttls=False)
        self.assertEqual(result["ping"]["to"], "localhost")
        self.assertGreaterEqual(result["ping"]["rtt"], 0)
        yield self.stop_server()
        self.assertCleanServerLog()
        self.assertIn("(direct TLS)", self.server_log())
