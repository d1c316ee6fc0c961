"""Interoperability with Debian's Prosody over loopback (summitd on 127.0.0.2, Prosody on 127.0.0.4).

Prosody runs as a child process with its own config, data and pid file in the test's
temp folder; ``prosody/mod_summitd_test_routes.lua`` stands in for DNS on its side,
``[s2s] static_routes`` on ours. alice@summitd.test and bob@prosody.test (slixmpp)
subscribe to each other, see each other's presence and exchange messages both ways.
Skipped when prosody is not installed (the Makefile's APT_PACKAGES installs it).
"""

from twisted.internet import defer
from twisted.trial import unittest

from summitd.test.s2s_process import PROSODY, ProsodyNode, SummitdNode, federate, make_pki

PASSWORDS = {"alice": "alice meets prosody \u00e4", "bob": "bob-on-prosody-123"}


class ProsodyInteropTests(unittest.TestCase):
    timeout = 150

    def setUp(self):
        # make test installs Debian's prosody: its absence is a broken setup, not a skip.
        self.assertTrue(PROSODY, "prosody is not installed (make test-deps installs it)")

    @defer.inlineCallbacks
    def run_pair(self, trusted, bidi=True):
        """(our log, Prosody's log) after the federation scenario."""
        base, ca_path, certs = make_pki(self, ["summitd.test", "prosody.test"], trusted)
        ours = SummitdNode(base, "summitd.test", "127.0.0.2", certs["summitd.test"], ca_path,
                           "" if bidi else "bidi = false")
        theirs = ProsodyNode(base, "prosody.test", "127.0.0.4", certs["prosody.test"], ca_path,
                             secure_auth=trusted)
        yield federate(self, ours, theirs, PASSWORDS, cafile=ca_path if trusted else None)
        return ours.read_log(), theirs.read_log()

    @defer.inlineCallbacks
    def test_certificates_sasl_external_both_ways(self):
        """Test-CA certificates, bidi off: our outgoing stream authenticates by SASL EXTERNAL
        at Prosody, and Prosody's outgoing stream by SASL EXTERNAL at ours."""
        ours, theirs = yield self.run_pair(trusted=True, bidi=False)
        self.assertRegex(ours, r"s2s out summitd\.test -> prosody\.test \(127\.0\.0\.4:\d+\): authenticated "
                               r"by SASL EXTERNAL")
        self.assertIn("authenticated prosody.test -> summitd.test by certificate (SASL EXTERNAL)", ours)
        self.assertIn("Accepting SASL EXTERNAL identity from summitd.test", theirs)

    @defer.inlineCallbacks
    def test_certificates_bidirectional(self):
        """Test-CA certificates with bidi: one connection carries both directions (XEP-0288)."""
        ours, theirs = yield self.run_pair(trusted=True)
        self.assertIn("authenticated by SASL EXTERNAL (bidirectional)", ours)
        self.assertNotIn("authenticated prosody.test -> summitd.test", ours)

    @defer.inlineCallbacks
    def test_dialback_only(self):
        """Certificates nobody trusts, s2s_secure_auth off at Prosody: dialback over TLS in
        both directions, each server verifying the other's key (both roles on both sides)."""
        ours, theirs = yield self.run_pair(trusted=False, bidi=False)
        self.assertIn("authenticated prosody.test -> summitd.test by dialback", ours)
        self.assertRegex(ours, r"s2s out summitd\.test -> prosody\.test \(127\.0\.0\.4:\d+\): authenticated "
                               r"by dialback")
        self.assertNotIn("SASL EXTERNAL", ours)
