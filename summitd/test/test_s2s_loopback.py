"""Two real summitd processes federating over loopback TCP and real TLS (127.0.0.2, 127.0.0.3).

alice@summitd.test and bob@peer.test subscribe to each other, see each other's presence
and exchange messages (``slixmpp_federation.py``): with certificates from a test CA (SASL
EXTERNAL, one bidirectional connection; also over direct TLS), and with certificates
nobody trusts (dialback over TLS, both roles, two connections).
"""

from twisted.internet import defer
from twisted.trial import unittest

from summitd.test.s2s_process import SummitdNode, federate, make_pki

PASSWORDS = {"alice": "alice federates \u00e4", "bob": "bob-S3cret,=federates"}


class LoopbackFederationTests(unittest.TestCase):
    timeout = 150

    @defer.inlineCallbacks
    def run_pair(self, trusted, s2s_options="", direct_tls=False):
        """(summitd.test's log, peer.test's log) after the federation scenario."""
        base, ca_path, certs = make_pki(self, ["summitd.test", "peer.test"], trusted)
        ours = SummitdNode(base, "summitd.test", "127.0.0.2", certs["summitd.test"], ca_path, s2s_options)
        theirs = SummitdNode(base, "peer.test", "127.0.0.3", certs["peer.test"], ca_path, s2s_options,
                             direct_tls)
        yield federate(self, ours, theirs, PASSWORDS, cafile=ca_path if trusted else None)
        return ours.read_log(), theirs.read_log()

    @defer.inlineCallbacks
    def test_certificates_sasl_external(self):
        """Test-CA certificates: SASL EXTERNAL over STARTTLS, both directions on one
        bidirectional connection (XEP-0288); presence and messages both ways."""
        ours, theirs = yield self.run_pair(trusted=True)
        self.assertIn("authenticated summitd.test -> peer.test by certificate (SASL EXTERNAL)", theirs)
        self.assertIn("authenticated by SASL EXTERNAL (bidirectional)", ours)
        self.assertNotIn("s2s out peer.test -> summitd.test: connected", theirs)

    @defer.inlineCallbacks
    def test_dialback_only(self):
        """Untrusted certificates and bidi off: dialback over TLS each way, each server
        verifying the other's key with its Authoritative Server."""
        ours, theirs = yield self.run_pair(trusted=False, s2s_options="bidi = false")
        for log, pair in ((ours, "peer.test -> summitd.test"), (theirs, "summitd.test -> peer.test")):
            self.assertIn(f"authenticated {pair} by dialback", log)
            self.assertIn("TLS started", log)
            self.assertNotIn("SASL EXTERNAL", log)

    @defer.inlineCallbacks
    def test_direct_tls(self):
        """peer.test is reached on its direct TLS port (XEP-0368, ALPN xmpp-server): TLS from
        the first byte, no STARTTLS, SASL EXTERNAL."""
        ours, theirs = yield self.run_pair(trusted=True, direct_tls=True)
        self.assertIn("s2s (direct TLS) listening", theirs)
        self.assertIn("(direct TLS)", ours)
        self.assertRegex(theirs, r"s2s in: connection from 127\.0\.0\.1:\d+ \(direct TLS\)")
        self.assertIn("authenticated summitd.test -> peer.test by certificate (SASL EXTERNAL)", theirs)
        self.assertNotIn("TLS started", ours)
