"""End to end with a real ``twistd summitd`` and slixmpp (``slixmpp_registration.py``):
registration with an invitation made by summitctl (XEP-0077 + XEP-0445), a stranger's
message held until the XEP-0158 challenge is answered, and a spam report (XEP-0377)
that summitctl then lists."""

import json
import os

from twisted.internet import defer
from twisted.trial import unittest

from summitd import ctl
from summitd.test.test_integration_slixmpp import ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, PASSWORDS
from summitd.testing.process import ACCOUNT_TIMEOUT, SummitdProcessMixin, child_env, run_process

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_registration.py")
# summitctl's own commands once ctl.py wires them in; this module's entry point until then.
CTL = "summitd.ctl" if "reports" in getattr(ctl, "COMMANDS", {}) else "summitd.ctl_registration"


class SpamDefenceIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 150
    extensions = ("ping", "roster", "delivery", "blocking", "registration", "stranger_challenge")
    extra_config = """
[extensions.registration]
mode = "invite"

[extensions.stranger_challenge]
mode = "new-contacts"
pow_bits = 10
"""
    accounts = {ALICE: ALICE_PASSWORD, BOB: BOB_PASSWORD}

    @defer.inlineCallbacks
    def summitctl(self, *args):
        """Run summitctl with the test's config; the parsed JSON it printed."""
        code, out, err = yield run_process(["-m", CTL, "--config", self.config_path] + list(args),
                                           child_env(), ACCOUNT_TIMEOUT)
        self.assertEqual(code, 0, f"summitctl {args} failed:\n{out}{err}")
        return json.loads(out)

    @defer.inlineCallbacks
    def test_register_with_an_invitation(self):
        """summitctl creates a single-use invitation; slixmpp redeems it (XEP-0445 preauth),
        registers juliet with XEP-0077 and logs in as her; the replayed token is refused;
        summitctl lists the invitation as used."""
        made = yield self.summitctl("invite", "create", "--domain", "localhost", "--expires", "1h", "--json")
        self.assertIn("?register;preauth=", made["uri"])
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--scenario", "invite-register",
                                         env={**PASSWORDS, "SCENARIO_TOKEN": made["token"]})
        self.assertEqual(result["registration"], {"registered": True})
        self.assertTrue(result["sessions"]["newbie"]["bound_jid"].startswith("juliet@localhost/"))
        self.assertEqual(result["replay"], {"preauth_error": "item-not-found"})
        listed = yield self.summitctl("invite", "list", "--json")
        self.assertEqual([(i["id"], i["state"]) for i in listed], [(made["id"], "used")])
        yield self.stop_server()
        self.assertCleanServerLog()
        self.assertIn("registration: juliet@localhost registered", self.server_log())

    @defer.inlineCallbacks
    def test_stranger_answers_the_challenge(self):
        """bob is not in alice's roster: his message is held and he is challenged; alice
        gets nothing until he answers, then she gets the message from him."""
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--scenario", "stranger", env=PASSWORDS)
        self.assertEqual(result["held"], [])
        self.assertEqual(result["answer"], "result")
        self.assertTrue(result["delivered"]["body"].startswith("hello stranger alice"))
        yield self.stop_server()
        self.assertCleanServerLog()

    @defer.inlineCallbacks
    def test_spam_report_shows_in_summitctl(self):
        """alice blocks bob with a spam report; summitctl reports lists it."""
        yield self.run_scenario(SCENARIO, "--port", str(self.port), "--scenario", "report", env=PASSWORDS)
        reports = yield self.summitctl("reports", "--json")
        self.assertEqual([(r["reporter"], r["reported"], r["reason"]) for r in reports],
                         [(ALICE, BOB, "urn:xmpp:reporting:spam")])
        yield self.stop_server()
        self.assertCleanServerLog()
