"""Tests for summitd.sasl.plain: PLAIN (RFC 4616) checked against stored SCRAM keys."""

from twisted.internet import defer
from twisted.trial import unittest

from summitd.sasl.mechanism import Challenge, Failure, ISASLMechanism, SASLContext, Success
from summitd.sasl.plain import PlainMechanism
from summitd.test.test_sasl_scram import SECRET, CredentialStore, make_context


class PlainTests(unittest.TestCase):
    """PLAIN exchanges."""

    def setUp(self):
        self.store = CredentialStore()
        self.store.add("user", "pencil")

    def step(self, response, context=None, mechanism=None):
        """Run one step (the Deferreds here fire at once) and return its outcome."""
        mechanism = mechanism or PlainMechanism(context or make_context(self.store))
        return self.successResultOf(mechanism.step(response))

    def test_interface(self):
        """PlainMechanism provides ISASLMechanism and is named PLAIN."""
        mechanism = PlainMechanism(make_context())
        self.assertTrue(ISASLMechanism.providedBy(mechanism))
        self.assertEqual(mechanism.name, "PLAIN")

    def test_success(self):
        """The right password authenticates, with no additional data."""
        self.assertEqual(self.step(b"\x00user\x00pencil"), Success(None, "user", None))
        self.assertEqual(self.store.lookups, [("user", "sha256")])

    def test_rfc4616_example(self):
        """RFC 4616 §4, first example: tim / tanstaaftanstaaf."""
        self.store.add("tim", "tanstaaftanstaaf")
        self.assertEqual(self.step(b"\x00tim\x00tanstaaftanstaaf"), Success(None, "tim", None))

    def test_authzid(self):
        """A non-empty authzid is passed on, unchecked (RFC 4616 §4, second example)."""
        self.store.add("kurt", "xipj3plmq")
        self.assertEqual(self.step(b"Ursel\x00Kurt\x00xipj3plmq"), Success(None, "kurt", "Ursel"))

    def test_username_is_prepared(self):
        """The authcid is prepared (case-mapped) before lookup."""
        self.assertEqual(self.step(b"\x00USER\x00pencil").username, "user")

    def test_password_is_prepared(self):
        """The password is prepared with OpaqueString (no-break space -> space)."""
        self.store.add("spacey", "pass word")
        self.assertIsInstance(self.step("\x00spacey\x00pass\u00a0word".encode()), Success)

    def test_sha1_fallback(self):
        """Without SHA-256 keys, the SHA-1 keys are used."""
        store = CredentialStore()
        store.add("old", "pencil", ["sha1"])
        self.assertIsInstance(self.step(b"\x00old\x00pencil", make_context(store)), Success)
        self.assertEqual(store.lookups, [("old", "sha256"), ("old", "sha1")])

    def test_sha1_fallback_wrong_password(self):
        """The SHA-1 keys really are checked."""
        store = CredentialStore()
        store.add("old", "pencil", ["sha1"])
        self.assertEqual(self.step(b"\x00old\x00crayon", make_context(store)),
                         Failure("not-authorized", None, "old"))

    def test_no_initial_response(self):
        """Without an initial response the server asks with an empty challenge."""
        mechanism = PlainMechanism(make_context(self.store))
        self.assertEqual(self.step(None, mechanism=mechanism), Challenge(b""))
        self.assertIsInstance(self.step(b"\x00user\x00pencil", mechanism=mechanism), Success)

    def test_wrong_password_and_unknown_user(self):
        """A wrong password and an unknown user fail alike; both lookups are tried."""
        wrong = self.step(b"\x00user\x00crayon")
        unknown = self.step(b"\x00nobody\x00crayon")
        self.assertEqual(wrong, Failure("not-authorized", None, "user"))
        self.assertEqual(unknown, Failure("not-authorized", None, "nobody"))
        self.assertIn(("nobody", "sha1"), self.store.lookups)

    def test_requires_tls(self):
        """Without TLS, PLAIN refuses before even looking at the credentials."""
        context = make_context(self.store, secure=False)
        self.assertEqual(self.step(b"\x00user\x00pencil", context), Failure("encryption-required"))
        self.assertEqual(self.step(None, context), Failure("encryption-required"))
        self.assertEqual(self.store.lookups, [])

    def test_malformed(self):
        """Messages that do not follow RFC 4616 §2 give malformed-request."""
        messages = [
            b"",                            # empty initial response
            b"user\x00pencil",              # one NUL
            b"\x00user\x00pencil\x00",      # three NULs
            b"\x00\x00pencil",              # empty authcid
            b"\x00user\x00",                # empty password
            b"\x00us\xffer\x00pencil",      # not UTF-8
        ]
        for message in messages:
            outcome = self.step(message)
            self.assertEqual(outcome.condition, "malformed-request", message)
        self.assertEqual(self.store.lookups, [])

    def test_invalid_username(self):
        """An authcid PRECIS refuses gives a bare not-authorized."""
        self.assertEqual(self.step(b"\x00two words\x00pencil"), Failure("not-authorized"))
        self.assertEqual(self.store.lookups, [])

    def test_invalid_password(self):
        """A password OpaqueString refuses simply fails."""
        self.assertEqual(self.step(b"\x00user\x00pen\x07cil"),
                         Failure("not-authorized", None, "user"))

    def test_no_step_after_completion(self):
        """Once finished, further steps fail."""
        mechanism = PlainMechanism(make_context(self.store))
        self.assertIsInstance(self.step(b"\x00user\x00pencil", mechanism=mechanism), Success)
        self.assertEqual(self.step(b"\x00user\x00pencil", mechanism=mechanism).condition,
                         "malformed-request")

    def test_lookup_error(self):
        """A failing credential lookup gives temporary-auth-failure."""
        context = SASLContext(lambda user, hash_name: defer.fail(OSError("db down")),
                              {}, (), None, True, SECRET)
        self.assertEqual(self.step(b"\x00user\x00pencil", context),
                         Failure("temporary-auth-failure", None, "user"))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
