"""The SASL2 exchange (XEP-0388): the feature, every SCRAM mechanism and PLAIN, challenges,
<success/> with the authorization identifier, failures, <abort/>, and the stream rules."""

from dataclasses import replace

from summitd.core.jid import parse_jid
from summitd.testing import FakeClient
from summitd.test.test_sasl2_support import (
    AGENT, NS_SASL2, PASSWORD, SECURE_MECHANISMS, Sasl2TestCase, b64, child, text_of)


class FeatureTests(Sasl2TestCase):
    def test_feature_lists_mechanisms_and_inline_features(self):
        """<authentication/> names the SCRAM mechanisms and PLAIN (on TLS), the upgrade
        tasks, and inline FAST and Bind 2."""
        features = self.client().open()
        auth = child(features, NS_SASL2, "authentication")
        self.assertEqual([str(m) for m in auth.elements(NS_SASL2, "mechanism")], SECURE_MECHANISMS)
        upgrades = [str(e) for e in auth.elements("urn:xmpp:sasl:upgrade:0", "upgrade")]
        self.assertIn("UPGR-SCRAM-SHA-256", upgrades)
        inline = child(auth, NS_SASL2, "inline")
        self.assertEqual([(e.uri, e.name) for e in inline.elements()],
                         [("urn:xmpp:fast:0", "fast"), ("urn:xmpp:bind:0", "bind")])

    def test_no_plain_without_tls(self):
        """On a plain-text stream (allowed by the test config) PLAIN is not offered."""
        auth = child(self.client(secure=False).open(), NS_SASL2, "authentication")
        self.assertNotIn("PLAIN", [str(m) for m in auth.elements(NS_SASL2, "mechanism")])

    def test_not_offered_before_required_tls(self):
        """With require_encryption and no TLS yet, SASL2 is neither offered nor accepted."""
        client = self.client(secure=False)
        client.stream.config = _requiring_tls(client.stream.config)
        self.assertIsNone(child(client.open(), NS_SASL2, "authentication"))
        client.authenticate("SCRAM-SHA-256", b"n,,n=alice,r=abc")
        client.expect_stream_error("policy-violation")

    def test_not_offered_after_authentication(self):
        """The features after <success/> no longer offer SASL2, and a second <authenticate/>
        is a stream error (XEP-0388 §rules)."""
        client = self.client()
        client.open()
        client.scram_login("alice")
        features = client.next()
        self.assertIsNone(child(features, NS_SASL2, "authentication"))
        self.assertIsNotNone(child(features, "urn:ietf:params:xml:ns:xmpp-bind", "bind"))
        client.authenticate("PLAIN", b"\0alice\0" + PASSWORD.encode())
        client.expect_stream_error("unsupported-stanza-type")


def _requiring_tls(config):
    return replace(config, require_encryption=True)


class MechanismTests(Sasl2TestCase):
    def test_scram_sha_256(self):
        """SCRAM-SHA-256 in two round trips: the challenge carries the XEP-0474 hash of the
        SASL2 list, <success/> the server signature and the bare JID, then features follow
        without a stream restart and legacy binding works on the same stream."""
        client = self.client()
        client.open()
        success = client.scram_login("alice")
        self.assertEqual(success.name, "success")
        self.assertEqual(text_of(success, NS_SASL2, "authorization-identifier"), "alice@localhost")
        self.assertTrue(client.downgrade_hash_ok(SECURE_MECHANISMS))
        client.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        self.assertTrue(client.fake.bind("desk").startswith("alice@localhost/desk"))

    def test_scram_sha_1(self):
        """SCRAM-SHA-1 works as well."""
        client = self.client()
        client.open()
        self.assertEqual(client.scram_login("alice", hash_name="sha1").name, "success")

    def test_plain_over_tls(self):
        """PLAIN in one round trip, no additional data."""
        client = self.client()
        client.open()
        success = client.plain_login("alice")
        self.assertEqual(success.name, "success")
        self.assertIsNone(child(success, NS_SASL2, "additional-data"))

    def test_no_initial_response_gets_empty_challenge(self):
        """Without <initial-response/> the server challenges with nothing (XEP-0388 §initiation),
        and the client-first-message comes in <response/>."""
        client = self.client()
        client.open()
        client.authenticate("PLAIN")
        self.assertEqual(str(client.expect(f"<challenge xmlns='{NS_SASL2}'/>")).strip(), "")
        client.send(f"<response xmlns='{NS_SASL2}'>{b64(chr(0) + 'alice' + chr(0) + PASSWORD)}</response>")
        client.expect(f"<success xmlns='{NS_SASL2}'/>")

    def test_wrong_password_then_retry(self):
        """A wrong password is <failure><not-authorized/>; the stream stays and a new
        <authenticate/> succeeds."""
        client = self.client()
        client.open()
        self.assertFailure(client.scram_login("alice", "wrong"), "not-authorized")
        self.assertEqual(client.scram_login("alice").name, "success")

    def test_unknown_user_looks_like_wrong_password(self):
        """An unknown account fails at the same step with the same condition."""
        client = self.client()
        client.open()
        self.assertFailure(client.scram_login("nobody"), "not-authorized")

    def test_unknown_mechanism(self):
        """A mechanism that was not offered fails with invalid-mechanism (XEP-0388 §initiation)."""
        client = self.client()
        client.open()
        client.authenticate("CRAM-MD5", b"x")
        self.assertFailure(client.next(), "invalid-mechanism")

    def test_bad_base64(self):
        """A response that is not base64 fails with incorrect-encoding."""
        client = self.client()
        client.open()
        client.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='PLAIN'>"
                    "<initial-response>%%%</initial-response></authenticate>")
        self.assertFailure(client.next(), "incorrect-encoding")

    def test_authzid_of_another_account(self):
        """PLAIN with someone else's authorization identity fails with invalid-authzid."""
        client = self.client()
        client.open()
        client.authenticate("PLAIN", f"bob@localhost\0alice\0{PASSWORD}".encode())
        self.assertFailure(client.next(), "invalid-authzid")

    def test_five_failures_close_the_stream(self):
        """After five failed exchanges the stream is closed with policy-violation."""
        client = self.client()
        client.open()
        for _ in range(4):
            self.assertFailure(client.plain_login("alice", "wrong"), "not-authorized")
        self.assertFailure(client.plain_login("alice", "wrong"), "not-authorized")
        client.expect_stream_error("policy-violation")

    def test_invalid_user_agent_id_is_ignored(self):
        """A user-agent id that is not a UUID is no id: the login works, FAST gives no token."""
        client = self.client()
        client.open()
        success = client.scram_login(
            "alice", agent="not-a-uuid",
            inline="<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>")
        self.assertEqual(success.name, "success")
        self.assertIsNone(child(success, "urn:xmpp:fast:0", "token"))


class AbortAndRulesTests(Sasl2TestCase):
    def test_abort_mid_exchange(self):
        """<abort/> after the challenge ends the exchange with <failure><aborted/>, no
        failure is counted, and the client can start again."""
        client = self.client()
        client.open()
        client.authenticate("SCRAM-SHA-256", b"n,,n=alice,r=abcdef")
        client.expect(f"<challenge xmlns='{NS_SASL2}'/>")
        client.send(f"<abort xmlns='{NS_SASL2}'><text>changed my mind</text></abort>")
        self.assertFailure(client.next(), "aborted")
        self.assertNotIn(client.stream, self.sasl2().core.failures)
        client.send(f"<response xmlns='{NS_SASL2}'>{b64('c=biws')}</response>")
        client.expect_stream_error("policy-violation")      # nothing to respond to any more

    def test_abort_then_new_authentication(self):
        """After <abort/> a new <authenticate/> succeeds."""
        client = self.client()
        client.open()
        client.authenticate("PLAIN")
        client.next()
        client.send(f"<abort xmlns='{NS_SASL2}'/>")
        self.assertFailure(client.next(), "aborted")
        self.assertEqual(client.plain_login("alice").name, "success")

    def test_other_elements_during_exchange_close_the_stream(self):
        """While authenticating only SASL2 elements are allowed (XEP-0388 §challenges)."""
        client = self.client()
        client.open()
        client.authenticate("PLAIN")
        client.next()
        client.send("<enable xmlns='urn:xmpp:sm:3'/>")
        client.expect_stream_error("policy-violation")

    def test_response_without_exchange(self):
        """A <response/> with no authentication in progress is a stream error."""
        client = self.client()
        client.open()
        client.send(f"<response xmlns='{NS_SASL2}'>AAAA</response>")
        client.expect_stream_error("policy-violation")

    def test_address_rate_limit(self):
        """After the configured failed logins from one address, SASL2 answers
        temporary-auth-failure even for the right password."""
        limit = int(self.server.config.auth.failures_per_address)
        for _ in range(limit):
            client = self.client(peer="192.0.2.9")
            client.open()
            client.plain_login("alice", "wrong")
        client = self.client(peer="192.0.2.9")
        client.open()
        self.assertFailure(client.plain_login("alice"), "temporary-auth-failure")

    def test_legacy_sasl_still_works(self):
        """RFC 6120 SASL stays beside SASL2 for older clients."""
        legacy = FakeClient(self.server)
        self.assertTrue(legacy.login("alice", PASSWORD, "old").startswith("alice@localhost/old"))

    def test_session_remembers_how_it_logged_in(self):
        """The bound session carries the user-agent id, the origin and the mechanism."""
        client = self.client()
        client.logged_in("alice")
        jid = client.fake.bind("desk")
        info = self.server.router.session(parse_jid(jid)).data["sasl2"]
        self.assertEqual((info.agent, info.origin, info.mechanism), (AGENT, "password", "SCRAM-SHA-256"))
