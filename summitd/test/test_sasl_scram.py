"""Tests for summitd.sasl.scram: the server side of SCRAM (RFC 5802, RFC 7677)."""

import base64
import hashlib
import hmac

from twisted.internet import defer
from twisted.trial import unittest

from summitd.sasl.credentials import ScramCredentials
from summitd.sasl.mechanism import Challenge, Failure, ISASLMechanism, SASLContext, Success
from summitd.sasl.scram import (
    FAKE_ITERATIONS, ScramMechanism, compute_downgrade_hash, derive_credentials,
)

SECRET = b"server secret for tests"
ITERATIONS = 4096  # low enough to keep the tests fast; it is also the RFC vectors' count


class CredentialStore:
    """An in-memory account database answering ``lookup_credentials``."""

    def __init__(self):
        self.credentials = {}
        self.lookups = []

    def add(self, username, password, hash_names=("sha1", "sha256"), salt=None):
        for hash_name in hash_names:
            self.credentials[username, hash_name] = derive_credentials(
                password, hash_name, ITERATIONS, salt)

    def lookup(self, username, hash_name):
        self.lookups.append((username, hash_name))
        return defer.succeed(self.credentials.get((username, hash_name)))


def make_context(store=None, channel_bindings=None, advertised_mechanisms=(),
                 advertised_cb_types=None, secure=True, secret=SECRET):
    """A SASLContext with test defaults: no XEP-0474 "h" unless mechanisms are given."""
    if store is None:
        store = CredentialStore()
        store.add("user", "pencil")
    return SASLContext(
        lookup_credentials=store.lookup,
        channel_bindings=channel_bindings or {},
        advertised_mechanisms=advertised_mechanisms,
        advertised_cb_types=advertised_cb_types,
        secure=secure,
        secret=secret,
    )


def attributes(message):
    """Parse ``a=x,b=y`` into a dict (test helper, values may contain "=")."""
    return dict(part.split("=", 1) for part in message.split(","))


class ScramClient:
    """A small SCRAM client written from RFC 5802 §3 and §7, to drive the server."""

    def __init__(self, hash_name, username, password, nonce="clientnonce",
                 gs2_header="n,,", cb_data=b"", extensions=""):
        self.hash_name = hash_name
        self.username = username
        self.password = password
        self.nonce = nonce
        self.gs2_header = gs2_header
        self.cb_data = cb_data
        self.extensions = extensions
        self.server_signature = None

    def _hmac(self, key, msg):
        return hmac.new(key, msg, self.hash_name).digest()

    def first(self):
        """client-first-message."""
        name = self.username.replace("=", "=3D").replace(",", "=2C")
        self.bare = f"n={name},r={self.nonce}"
        return (self.gs2_header + self.bare).encode("utf-8")

    def final(self, server_first, nonce=None):
        """client-final-message for server_first, echoing ``nonce`` if given instead of r=."""
        server_first = server_first.decode("utf-8")
        attrs = attributes(server_first)
        assert attrs["r"].startswith(self.nonce)
        salt = base64.b64decode(attrs["s"])
        salted = hashlib.pbkdf2_hmac(
            self.hash_name, self.password.encode("utf-8"), salt, int(attrs["i"]))
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        channel_binding = base64.b64encode(self.gs2_header.encode() + self.cb_data).decode()
        without_proof = f"c={channel_binding},r={nonce or attrs['r']}{self.extensions}"
        auth_message = f"{self.bare},{server_first},{without_proof}".encode("utf-8")
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode("utf-8")

    def verify(self, server_final):
        """Whether the server-final-message proves the server knows our keys."""
        return server_final == b"v=" + base64.b64encode(self.server_signature)


class ScramTestCase(unittest.TestCase):
    """Shared helpers to run exchanges synchronously."""

    def step(self, mechanism, response):
        """Feed one response and return the outcome (the Deferreds here fire at once)."""
        return self.successResultOf(mechanism.step(response))

    def run_exchange(self, mechanism, client):
        """Run a whole exchange with ``client``; return the last outcome."""
        challenge = self.step(mechanism, client.first())
        if not isinstance(challenge, Challenge):
            return challenge
        return self.step(mechanism, client.final(challenge.data))

    def start(self, mechanism, client_first):
        """Send a client-first-message and expect a challenge."""
        challenge = self.step(mechanism, client_first)
        self.assertIsInstance(challenge, Challenge)
        return challenge.data


class RFCVectorTests(ScramTestCase):
    """The example exchanges of the RFCs, byte for byte."""

    def test_rfc5802_sha1(self):
        """RFC 5802 §5: the SCRAM-SHA-1 example exchange for user/pencil."""
        store = CredentialStore()
        store.add("user", "pencil", ["sha1"], base64.b64decode("QSXCR+Q6sek8bf92"))
        mechanism = ScramMechanism("sha1", False, make_context(store),
                                   nonce_factory=lambda: "3rfcNHYJY1ZVvWVs7j")
        challenge = self.step(mechanism, b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
        self.assertEqual(challenge, Challenge(
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"))
        outcome = self.step(mechanism, b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                                       b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
        self.assertEqual(outcome, Success(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", "user", None))
        self.assertEqual(store.lookups, [("user", "sha1")])

    def test_rfc7677_sha256(self):
        """RFC 7677 §3: the SCRAM-SHA-256 example exchange for user/pencil."""
        store = CredentialStore()
        store.add("user", "pencil", ["sha256"], base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
        mechanism = ScramMechanism("sha256", False, make_context(store),
                                   nonce_factory=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        challenge = self.step(mechanism, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        self.assertEqual(challenge, Challenge(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
        outcome = self.step(mechanism, b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)"
                                       b"hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        self.assertEqual(outcome, Success(
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", "user", None))

    def test_derive_credentials_rfc5802(self):
        """derive_credentials gives the keys behind the RFC 5802 example."""
        creds = derive_credentials("pencil", "sha1", 4096, base64.b64decode("QSXCR+Q6sek8bf92"))
        salted = hashlib.pbkdf2_hmac("sha1", b"pencil", creds.salt, 4096)
        client_key = hmac.new(salted, b"Client Key", "sha1").digest()
        self.assertEqual(creds, ScramCredentials(
            "sha1", creds.salt, 4096, hashlib.sha1(client_key).digest(),
            hmac.new(salted, b"Server Key", "sha1").digest()))


class DeriveCredentialsTests(unittest.TestCase):
    """derive_credentials: PBKDF2 over the prepared password."""

    def test_random_salt(self):
        """Without a salt, a fresh random 16-byte salt is used each time."""
        a = derive_credentials("pencil", "sha256", 4096)
        b = derive_credentials("pencil", "sha256", 4096)
        self.assertEqual(len(a.salt), 16)
        self.assertNotEqual(a.salt, b.salt)
        self.assertEqual((a.hash_name, a.iterations), ("sha256", 4096))
        self.assertEqual(len(a.stored_key), 32)

    def test_password_is_prepared(self):
        """The password goes through OpaqueString: a no-break space becomes a space."""
        salt = b"0123456789abcdef"
        self.assertEqual(derive_credentials("a\u00a0b", "sha1", 10, salt),
                         derive_credentials("a b", "sha1", 10, salt))

    def test_invalid_password(self):
        """An empty password or one with control characters is refused."""
        self.assertRaises(ValueError, derive_credentials, "", "sha1", 10)
        self.assertRaises(ValueError, derive_credentials, "a\x07b", "sha1", 10)

    def test_invalid_parameters(self):
        """Unknown hashes and non-positive iteration counts are refused."""
        self.assertRaises(ValueError, derive_credentials, "pencil", "md5", 4096)
        self.assertRaises(ValueError, derive_credentials, "pencil", "sha1", 0)


class ExchangeTests(ScramTestCase):
    """Successful exchanges with the test client."""

    def test_names(self):
        """Mechanism names follow RFC 5802 §4 and the interface is provided."""
        context = make_context()
        self.assertEqual(ScramMechanism("sha1", False, context).name, "SCRAM-SHA-1")
        self.assertEqual(ScramMechanism("sha256", True, context).name, "SCRAM-SHA-256-PLUS")
        self.assertTrue(ISASLMechanism.providedBy(ScramMechanism("sha1", True, context)))
        self.assertRaises(ValueError, ScramMechanism, "md5", False, context)

    def test_sha256(self):
        """A full SCRAM-SHA-256 exchange succeeds and the server proves itself."""
        client = ScramClient("sha256", "user", "pencil")
        outcome = self.run_exchange(ScramMechanism("sha256", False, make_context()), client)
        self.assertIsInstance(outcome, Success)
        self.assertTrue(client.verify(outcome.data))
        self.assertEqual((outcome.username, outcome.authzid), ("user", None))

    def test_no_initial_response(self):
        """Without an initial response the server sends an empty challenge first."""
        mechanism = ScramMechanism("sha1", False, make_context())
        self.assertEqual(self.step(mechanism, None), Challenge(b""))
        client = ScramClient("sha1", "user", "pencil")
        self.assertIsInstance(self.run_exchange(mechanism, client), Success)

    def test_username_is_prepared(self):
        """The username is prepared (case-mapped) for lookup and in Success."""
        store = CredentialStore()
        store.add("user", "pencil")
        client = ScramClient("sha256", "UsEr", "pencil")
        outcome = self.run_exchange(ScramMechanism("sha256", False, make_context(store)), client)
        self.assertEqual(outcome.username, "user")
        self.assertEqual(store.lookups, [("user", "sha256")])

    def test_username_quoting(self):
        """"=2C" and "=3D" in the username are decoded before lookup."""
        store = CredentialStore()
        store.add("a,b=c", "pencil")
        client = ScramClient("sha1", "a,b=c", "pencil")
        self.assertIn(b"n=a=2Cb=3Dc,", client.first())
        outcome = self.run_exchange(ScramMechanism("sha1", False, make_context(store)), client)
        self.assertEqual(outcome.username, "a,b=c")

    def test_authzid(self):
        """An authzid is decoded and passed on, unchecked, in Success."""
        client = ScramClient("sha256", "user", "pencil",
                             gs2_header="n,a=admin=2Cx=3Dy@example.org,")
        outcome = self.run_exchange(ScramMechanism("sha256", False, make_context()), client)
        self.assertEqual(outcome.authzid, "admin,x=y@example.org")

    def test_optional_extensions_ignored(self):
        """Unknown optional attributes are ignored (RFC 5802 §5.1) yet covered by the proof."""
        mechanism = ScramMechanism("sha1", False, make_context())
        client = ScramClient("sha1", "user", "pencil", extensions=",x=whatever")
        server_first = self.start(mechanism, client.first() + b",y=ignored=too")
        client.bare += ",y=ignored=too"
        outcome = self.step(mechanism, client.final(server_first))
        self.assertIsInstance(outcome, Success)

    def test_y_flag_without_plus_offer(self):
        """"y" is fine when the server offered no -PLUS mechanism; c= is base64("y,,")."""
        context = make_context(advertised_mechanisms=["SCRAM-SHA-1", "SCRAM-SHA-256"])
        client = ScramClient("sha1", "user", "pencil", gs2_header="y,,")
        self.assertIsInstance(self.run_exchange(ScramMechanism("sha1", False, context), client),
                              Success)

    def test_server_nonce(self):
        """The default server nonce is random, printable, comma-free, after the client's."""
        nonces = set()
        for _ in range(5):
            mechanism = ScramMechanism("sha256", False, make_context())
            server_first = self.start(mechanism, b"n,,n=user,r=abc").decode()
            nonce = attributes(server_first)["r"]
            self.assertTrue(nonce.startswith("abc") and len(nonce) > len("abc") + 16)
            self.assertTrue(all(0x21 <= ord(c) <= 0x7E and c != "," for c in nonce))
            nonces.add(nonce)
        self.assertEqual(len(nonces), 5)

    def test_no_h_attribute_without_advertised_mechanisms(self):
        """The XEP-0474 "h" attribute is left out when no advertised list is known."""
        server_first = self.start(ScramMechanism("sha1", False, make_context()), b"n,,n=user,r=a")
        self.assertNotIn("h", attributes(server_first.decode()))

    def test_h_attribute(self):
        """With an advertised list, server-first carries its XEP-0474 hash."""
        mechanisms = ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "PLAIN"]
        context = make_context(advertised_mechanisms=mechanisms,
                               advertised_cb_types=["tls-exporter"])
        server_first = self.start(ScramMechanism("sha256", False, context), b"n,,n=user,r=a")
        self.assertEqual(attributes(server_first.decode())["h"],
                         compute_downgrade_hash("sha256", mechanisms, ["tls-exporter"]))


class ChannelBindingTests(ScramTestCase):
    """-PLUS exchanges with fake channel-binding data (RFC 5802 §6)."""

    def plus_context(self):
        """A context offering two channel-binding types with fake data."""
        return make_context(channel_bindings={
            "tls-exporter": lambda: b"fake exporter data",
            "tls-server-end-point": lambda: b"fake end point data",
        })

    def test_tls_exporter(self):
        """SCRAM-SHA-256-PLUS with tls-exporter succeeds with the right data."""
        client = ScramClient("sha256", "user", "pencil", gs2_header="p=tls-exporter,,",
                             cb_data=b"fake exporter data")
        outcome = self.run_exchange(ScramMechanism("sha256", True, self.plus_context()), client)
        self.assertIsInstance(outcome, Success)
        self.assertTrue(client.verify(outcome.data))

    def test_tls_server_end_point_with_authzid(self):
        """SCRAM-SHA-1-PLUS with tls-server-end-point and an authzid succeeds."""
        client = ScramClient("sha1", "user", "pencil", gs2_header="p=tls-server-end-point,a=bob,",
                             cb_data=b"fake end point data")
        outcome = self.run_exchange(ScramMechanism("sha1", True, self.plus_context()), client)
        self.assertEqual(outcome.authzid, "bob")

    def test_wrong_cb_data(self):
        """Channel-binding data that differ from the server's fail the exchange."""
        client = ScramClient("sha256", "user", "pencil", gs2_header="p=tls-exporter,,",
                             cb_data=b"the attacker's session")
        outcome = self.run_exchange(ScramMechanism("sha256", True, self.plus_context()), client)
        self.assertEqual(outcome.condition, "not-authorized")

    def test_cb_data_of_other_type(self):
        """Data of another channel-binding type than the one announced fail."""
        client = ScramClient("sha256", "user", "pencil", gs2_header="p=tls-exporter,,",
                             cb_data=b"fake end point data")
        outcome = self.run_exchange(ScramMechanism("sha256", True, self.plus_context()), client)
        self.assertEqual(outcome.condition, "not-authorized")

    def test_cb_header_without_data(self):
        """c= must include the channel-binding data, not only the GS2 header."""
        client = ScramClient("sha256", "user", "pencil", gs2_header="p=tls-exporter,,")
        outcome = self.run_exchange(ScramMechanism("sha256", True, self.plus_context()), client)
        self.assertEqual(outcome.condition, "not-authorized")

    def test_unsupported_cb_type(self):
        """A channel-binding type not usable on this connection fails at once."""
        outcome = self.step(ScramMechanism("sha256", True, self.plus_context()),
                            b"p=tls-unique,,n=user,r=abc")
        self.assertEqual(outcome, Failure("not-authorized", "unsupported channel-binding type",
                                          "user"))

    def test_plus_without_p_flag(self):
        """A -PLUS mechanism with "n" or "y" is a malformed request."""
        for header in (b"n,,", b"y,,"):
            outcome = self.step(ScramMechanism("sha256", True, self.plus_context()),
                                header + b"n=user,r=abc")
            self.assertEqual(outcome.condition, "malformed-request")

    def test_p_flag_on_non_plus(self):
        """A "p=" flag on a mechanism without -PLUS is refused."""
        outcome = self.step(ScramMechanism("sha256", False, self.plus_context()),
                            b"p=tls-exporter,,n=user,r=abc")
        self.assertEqual(outcome.condition, "malformed-request")

    def test_non_plus_with_cb_data(self):
        """Without channel binding, c= must be exactly base64 of the GS2 header."""
        client = ScramClient("sha256", "user", "pencil", cb_data=b"extra")
        outcome = self.run_exchange(ScramMechanism("sha256", False, self.plus_context()), client)
        self.assertEqual(outcome.condition, "not-authorized")

    def test_gs2_header_changed(self):
        """c= must repeat the GS2 header of the first message (here: a different flag)."""
        mechanism = ScramMechanism("sha1", False, make_context())
        client = ScramClient("sha1", "user", "pencil", gs2_header="y,,")
        server_first = self.start(mechanism, b"n,," + client.first()[3:])
        self.assertEqual(self.step(mechanism, client.final(server_first)).condition,
                         "not-authorized")


class AuthenticationFailureTests(ScramTestCase):
    """Wrong passwords and unknown users."""

    def test_wrong_password(self):
        """A wrong password gives not-authorized, with the username for rate limiting."""
        client = ScramClient("sha256", "user", "pencil!")
        outcome = self.run_exchange(ScramMechanism("sha256", False, make_context()), client)
        self.assertEqual(outcome, Failure("not-authorized", None, "user"))

    def test_unknown_user_indistinguishable(self):
        """An unknown user gets a normal-looking challenge and the same failure."""
        context = make_context()
        known = ScramMechanism("sha256", False, context, nonce_factory=lambda: "srv")
        unknown = ScramMechanism("sha256", False, context, nonce_factory=lambda: "srv")
        known_first = attributes(self.start(known, b"n,,n=user,r=c").decode())
        unknown_first = attributes(self.start(unknown, b"n,,n=nobody,r=c").decode())
        self.assertEqual(sorted(known_first), sorted(unknown_first))
        self.assertEqual(unknown_first["i"], str(FAKE_ITERATIONS))
        self.assertEqual(len(base64.b64decode(unknown_first["s"])),
                         len(base64.b64decode(known_first["s"])))

        wrong = self.run_exchange(ScramMechanism("sha256", False, context),
                                  ScramClient("sha256", "user", "guess"))
        missing = self.run_exchange(ScramMechanism("sha256", False, context),
                                    ScramClient("sha256", "nobody", "guess"))
        self.assertEqual(missing, Failure("not-authorized", None, "nobody"))
        self.assertEqual(wrong[:2], missing[:2])

    def test_fake_salt_is_stable(self):
        """The fake salt is the same for the same user and secret, else different."""
        def salt(username, secret=SECRET, hash_name="sha256"):
            mechanism = ScramMechanism(hash_name, False, make_context(secret=secret))
            first = self.start(mechanism, f"n,,n={username},r=c".encode())
            return attributes(first.decode())["s"]

        self.assertEqual(salt("nobody"), salt("nobody"))
        self.assertEqual(salt("nobody"), salt("NoBody"))
        self.assertNotEqual(salt("nobody"), salt("somebody"))
        self.assertNotEqual(salt("nobody"), salt("nobody", secret=b"another secret"))
        self.assertNotEqual(salt("nobody"), salt("nobody", hash_name="sha1"))

    def test_unknown_user_with_any_proof(self):
        """An unknown user fails even with a proof that fits the fake keys' length."""
        outcome = self.run_exchange(ScramMechanism("sha1", False, make_context()),
                                    ScramClient("sha1", "ghost", ""))
        self.assertEqual(outcome, Failure("not-authorized", None, "ghost"))

    def test_invalid_username(self):
        """A username PRECIS refuses gives a bare not-authorized, no lookup."""
        store = CredentialStore()
        for name in (b"two words", b"at@sign", b"\xe2\x85\xa0", b"\xc2\xa0"):
            outcome = self.step(ScramMechanism("sha1", False, make_context(store)),
                                b"n,,n=" + name + b",r=abc")
            self.assertEqual(outcome, Failure("not-authorized"), name)
        self.assertEqual(store.lookups, [])

    def test_lookup_error(self):
        """A failing credential lookup gives temporary-auth-failure."""
        context = SASLContext(lambda user, hash_name: defer.fail(OSError("db down")),
                              {}, (), None, True, SECRET)
        outcome = self.step(ScramMechanism("sha1", False, context), b"n,,n=user,r=abc")
        self.assertEqual(outcome, Failure("temporary-auth-failure", None, "user"))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_lookup_raises(self):
        """A lookup function that raises is handled like a failed lookup."""
        def lookup(user, hash_name):
            raise OSError("db down")
        context = SASLContext(lookup, {}, (), None, True, SECRET)
        outcome = self.step(ScramMechanism("sha1", False, context), b"n,,n=user,r=abc")
        self.assertEqual(outcome.condition, "temporary-auth-failure")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_lookup_wrong_hash(self):
        """Credentials for another hash than the mechanism's are an internal error."""
        creds = derive_credentials("pencil", "sha1", 4096)
        context = SASLContext(lambda user, hash_name: defer.succeed(creds),
                              {}, (), None, True, SECRET)
        outcome = self.step(ScramMechanism("sha256", False, context), b"n,,n=user,r=abc")
        self.assertEqual(outcome.condition, "temporary-auth-failure")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_step_while_lookup_pending(self):
        """A response while the lookup is still running fails; the exchange goes on."""
        pending = defer.Deferred()
        context = SASLContext(lambda user, hash_name: pending, {}, (), None, True, SECRET)
        mechanism = ScramMechanism("sha1", False, context)
        d = mechanism.step(b"n,,n=user,r=abc")
        self.assertNoResult(d)
        self.assertEqual(self.step(mechanism, b"c=biws").condition, "malformed-request")
        pending.callback(None)
        self.assertIsInstance(self.successResultOf(d), Challenge)


class MalformedMessageTests(ScramTestCase):
    """Client messages that break RFC 5802 §7."""

    def assertMalformed(self, outcome, message=None):
        """Assert that ``outcome`` is a malformed-request failure."""
        self.assertIsInstance(outcome, Failure, message)
        self.assertEqual(outcome.condition, "malformed-request", message)

    def test_malformed_client_first(self):
        """Every broken client-first-message gives malformed-request."""
        messages = [
            b"",                                  # empty initial response ("=")
            b"\xff\xfe,,n=user,r=abc",            # not UTF-8
            b"n,,n=user,r=abc\x00",               # NUL
            b"n=user,r=abc",                      # no GS2 header
            b"x,,n=user,r=abc",                   # unknown cbind flag
            b"F,n,,n=user,r=abc",                 # non-standard GS2 flag
            b"p=,,n=user,r=abc",                  # empty cb-name
            b"p=tls exporter,,n=user,r=abc",      # bad cb-name
            b"n,user,n=user,r=abc",               # authzid without a=
            b"n,a=,n=user,r=abc",                 # empty authzid
            b"n,a=bad=2Xquote,n=user,r=abc",      # bad quoting in authzid
            b"n,,",                               # nothing after the header
            b"n,,r=abc",                          # missing username
            b"n,,n=user",                         # missing nonce
            b"n,,r=abc,n=user",                   # wrong order
            b"n,,n=,r=abc",                       # empty username
            b"n,,n=us=er,r=abc",                  # "=" not followed by 2C or 3D
            b"n,,n=user=2c,r=abc",                # lower-case quoting is not quoting
            b"n,,n=user,r=",                      # empty nonce
            b"n,,n=user,r=ab\x7fc",               # non-printable nonce
            b"n,,n=user,r=\xc3\xa9t\xc3\xa9",     # non-ASCII nonce
            b"n,,n=user,r=abc,",                  # trailing comma
            b"n,,n=user,r=abc,extension",         # extension without "="
            b"n,,n=user,r=abc,xy=z",              # two-letter attribute name
            b"n,,m=ext,n=user,r=abc",             # mandatory extension
            b"n,,n=user,r=abc,m=ext",             # "m" anywhere
        ]
        for message in messages:
            store = CredentialStore()
            outcome = self.step(ScramMechanism("sha1", False, make_context(store)), message)
            self.assertMalformed(outcome, message)
            self.assertEqual(store.lookups, [], message)

    def final_for(self, mechanism):
        """Start an exchange; return (client, server-first, server nonce)."""
        client = ScramClient("sha1", "user", "pencil")
        server_first = self.start(mechanism, client.first())
        return client, server_first, attributes(server_first.decode())["r"]

    def test_malformed_client_final(self):
        """Every broken client-final-message gives malformed-request."""
        client = ScramClient("sha1", "user", "pencil")
        mechanism = ScramMechanism("sha1", False, make_context(), nonce_factory=lambda: "S")
        good = client.final(self.start(mechanism, client.first())).decode()
        c, r, p = good.split(",")
        messages = [
            b"",
            None,
            b"\xff" + good.encode(),
            f"{c},{r}".encode(),                   # no proof
            f"{r},{p}".encode(),                   # no channel binding
            f"{c},{p}".encode(),                   # no nonce
            f"{r},{c},{p}".encode(),               # wrong order
            f"{c},{r},{p},x=after-proof".encode(),  # proof not last
            f"c=biws!,{r},{p}".encode(),           # bad base64 in c=
            f"c=biw,{r},{p}".encode(),             # bad padding in c=
            f"{c},{r},p=@@@@".encode(),            # bad base64 in p=
            f"{c},{r},m=ext,{p}".encode(),         # mandatory extension
            f"{c},{r},{p}\x00".encode(),           # NUL
            f"{c},,{r},{p}".encode(),              # empty attribute
        ]
        for message in messages:
            mechanism = ScramMechanism("sha1", False, make_context(), nonce_factory=lambda: "S")
            self.start(mechanism, client.first())
            outcome = self.step(mechanism, message)
            self.assertMalformed(outcome, message)
            self.assertEqual(outcome.username, "user")

    def test_proof_of_wrong_length(self):
        """A proof that is valid base64 but not a digest long fails."""
        mechanism = ScramMechanism("sha1", False, make_context())
        client, server_first, nonce = self.final_for(mechanism)
        outcome = self.step(mechanism, f"c=biws,r={nonce},p=AAAA".encode())
        self.assertEqual(outcome, Failure("not-authorized", None, "user"))

    def test_wrong_nonce(self):
        """A client-final-message with another nonce fails, even with a matching proof."""
        mechanism = ScramMechanism("sha1", False, make_context())
        client, server_first, nonce = self.final_for(mechanism)
        outcome = self.step(mechanism, client.final(server_first, nonce=nonce + "x"))
        self.assertEqual(outcome, Failure("not-authorized", "nonce mismatch", "user"))

    def test_truncated_nonce(self):
        """Sending back only the client's own nonce fails."""
        mechanism = ScramMechanism("sha1", False, make_context())
        client, server_first, nonce = self.final_for(mechanism)
        outcome = self.step(mechanism, client.final(server_first, nonce=client.nonce))
        self.assertEqual(outcome.condition, "not-authorized")

    def test_tampered_server_first(self):
        """A proof over a server-first-message the server did not send fails."""
        mechanism = ScramMechanism("sha1", False, make_context())
        client, server_first, nonce = self.final_for(mechanism)
        self.assertEqual(self.step(mechanism, client.final(server_first + b",x=1")).condition,
                         "not-authorized")

    def test_replayed_final_message(self):
        """After success, any further step fails, including the same final message."""
        mechanism = ScramMechanism("sha1", False, make_context())
        client, server_first, nonce = self.final_for(mechanism)
        final = client.final(server_first)
        self.assertIsInstance(self.step(mechanism, final), Success)
        self.assertMalformed(self.step(mechanism, final))
        self.assertMalformed(self.step(mechanism, None))

    def test_replay_into_new_exchange(self):
        """A final message captured from one exchange fails in another one."""
        first = ScramMechanism("sha1", False, make_context())
        client, server_first, nonce = self.final_for(first)
        final = client.final(server_first)
        second = ScramMechanism("sha1", False, make_context())
        self.start(second, client.first())
        self.assertEqual(self.step(second, final).condition, "not-authorized")

    def test_no_step_after_failure(self):
        """Once failed, the mechanism does not accept a retry."""
        mechanism = ScramMechanism("sha1", False, make_context())
        client, server_first, nonce = self.final_for(mechanism)
        wrong = ScramClient("sha1", "user", "wrong", nonce=client.nonce)
        wrong.first()
        self.assertEqual(self.step(mechanism, wrong.final(server_first)).condition,
                         "not-authorized")
        self.assertMalformed(self.step(mechanism, client.final(server_first)))

    def test_none_after_empty_challenge(self):
        """A second missing response after the empty challenge is malformed."""
        mechanism = ScramMechanism("sha1", False, make_context())
        self.assertEqual(self.step(mechanism, None), Challenge(b""))
        self.assertMalformed(self.step(mechanism, None))
