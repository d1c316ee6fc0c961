"""End to end with xmpp.js: a real SASL2 / Bind 2 / FAST client over a real socket.

A real ``twistd summitd`` process (``summitd.testing.process``) with the sasl2 extension;
``xmppjs/run.py`` runs ``xmppjs/scenario.mjs`` under node with @xmpp/client from the
committed package-lock.json. Two users log in with SASL2 (STARTTLS, SCRAM-SHA-1, Bind 2
with a tag), exchange messages, and alice logs in again with the FAST token xmpp.js
asked for, a wrong password in hand so that only the token can let her in.
"""

import os
import shutil

from twisted.internet import defer
from twisted.trial import unittest

from summitd.testing.process import SummitdProcessMixin, child_env, run_process

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "xmppjs", "run.py")
ALICE, ALICE_PASSWORD = "alice@localhost", "alice's xmpp.js p\u00e4ssword"
BOB, BOB_PASSWORD = "bob@localhost", "bob's xmpp.js password"


class XmppJsIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 300
    extensions = ("sasl2", "stream_management", "carbons", "delivery", "csi")
    accounts = {ALICE: ALICE_PASSWORD, BOB: BOB_PASSWORD}

    @defer.inlineCallbacks
    def setUp(self):
        if shutil.which("node") is None or shutil.which("npm") is None:
            self.fail("node and npm are needed for the xmpp.js test (make test-deps installs them)")
        code, out, err = yield run_process([RUN, "--install-only"], child_env(), 200)
        self.assertEqual(code, 0, f"installing @xmpp/client failed:\n{out}\n{err}")
        yield SummitdProcessMixin.setUp(self)

    @defer.inlineCallbacks
    def test_sasl2_bind2_fast(self):
        """xmpp.js logs in with SASL2 and Bind 2 (resource TAG/SUFFIX), sends and receives a
        message, then logs in again with its FAST token (HT-SHA-256-NONE)."""
        result = yield self.run_scenario(RUN, "--port", str(self.port), env={
            "SCENARIO_ALICE_PASSWORD": ALICE_PASSWORD, "SCENARIO_BOB_PASSWORD": BOB_PASSWORD,
            "NODE_EXTRA_CA_CERTS": self.cert_path})
        self.assertTrue(result["alice_jid"].startswith("alice@localhost/xmppjs/"), result)
        self.assertEqual(result["alice_received"]["body"], "hello alice, from bob")
        self.assertEqual(result["bob_received"]["body"], "hello bob, from alice")
        self.assertEqual(result["token_mechanism"], "HT-SHA-256-NONE")
        self.assertTrue(result["fast_jid"].startswith("alice@localhost/xmppjs/"), result)
        yield self.stop_server()
        log = self.server_log()
        self.assertIn("with SASL2 SCRAM-SHA-1", log)
        self.assertIn("with SASL2 HT-SHA-256-NONE", log)
        self.assertCleanServerLog()
