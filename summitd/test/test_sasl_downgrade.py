"""Tests for downgrade protection: XEP-0474's "h" attribute, RFC 5802 §6's "y" flag,
and what the registry offers."""

import base64
import hashlib

from twisted.trial import unittest

from summitd.sasl.mechanism import Challenge, Failure, Success
from summitd.sasl.registry import MECHANISM_NAMES, available_mechanisms, create_mechanism
from summitd.sasl.scram import ScramMechanism, compute_downgrade_hash
from summitd.test.test_sasl_scram import CredentialStore, ScramClient, attributes, make_context


def b64hash(hash_name, data):
    """base64 of the ``hash_name`` digest of ``data``."""
    return base64.b64encode(hashlib.new(hash_name, data).digest()).decode()


class DowngradeHashTests(unittest.TestCase):
    """compute_downgrade_hash (XEP-0474 §hash)."""

    def test_xep_example(self):
        """The XEP-0474 example hash, whatever order the lists come in."""
        self.assertEqual(
            compute_downgrade_hash("sha1", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"],
                                   ["tls-server-end-point", "tls-exporter"]),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08=")
        self.assertEqual(
            b64hash("sha1", b"SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS"
                            b"\x1ftls-exporter\x1etls-server-end-point"),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08=")

    def test_sha256(self):
        """The hash function is the SCRAM mechanism's."""
        self.assertEqual(
            compute_downgrade_hash("sha256", ["SCRAM-SHA-256"], ["tls-exporter"]),
            b64hash("sha256", b"SCRAM-SHA-256\x1ftls-exporter"))

    def test_cb_types_not_advertised(self):
        """Without XEP-0440 advertisement there is no %x1F part; an empty list still adds it."""
        self.assertEqual(compute_downgrade_hash("sha1", ["PLAIN", "SCRAM-SHA-1"], None),
                         b64hash("sha1", b"PLAIN\x1eSCRAM-SHA-1"))
        self.assertEqual(compute_downgrade_hash("sha1", ["PLAIN", "SCRAM-SHA-1"], []),
                         b64hash("sha1", b"PLAIN\x1eSCRAM-SHA-1\x1f"))

    def test_octet_order(self):
        """Sorting is "i;octet": upper case before lower case, shorter prefix first."""
        self.assertEqual(compute_downgrade_hash("sha1", ["b", "a", "B", "ab"], None),
                         b64hash("sha1", b"B\x1ea\x1eab\x1eb"))


class XEP0474ExampleTests(unittest.TestCase):
    """The full SCRAM-SHA-1-PLUS example of XEP-0474 §example, on the wire."""

    INITIAL = ("cD10bHMtZXhwb3J0ZXIsLG49dXNlcixyPTEyQzRDRDVDLUUzOEUtNEE5OC04RjZELTE1QzM4RjUx"
               "Q0NDNg==")
    CHALLENGE = ("cj0xMkM0Q0Q1Qy1FMzhFLTRBOTgtOEY2RC0xNUMzOEY1MUNDQzZhMDkxMTdhNi1hYzUwLTRmMmYt"
                 "OTNmMS05Mzc5OWMyYmRkZjYscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5NixoPUc2ay9yQkxEcWdP"
                 "aFJSYUN1dWF0U0RGa0owOD0=")
    RESPONSE = ("Yz1jRDEwYkhNdFpYaHdiM0owWlhJc0xGUklTVk1nU1ZNZ1JrRkxSU0JEUWlCRVFWUkIscj0xMkM0"
                "Q0Q1Qy1FMzhFLTRBOTgtOEY2RC0xNUMzOEY1MUNDQzZhMDkxMTdhNi1hYzUwLTRmMmYtOTNmMS05"
                "Mzc5OWMyYmRkZjYseD0xOUM2NTMyRi0xQ0Y0LTRBMjctQTE4RC1EQzlDRUE0MUJCQjMscD1NL1NJ"
                "RGpUK2RmY3hVaDg5alpFeXBSdkZ4QjQ9")
    SUCCESS = "dj1NUXJNUHZ2N3l2NHg0Q3E0VzRJaDI1RXFTMmM9"

    def mechanism(self, mechanisms=("SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"),
                  cb_types=("tls-server-end-point", "tls-exporter")):
        """The server of the example: user/pencil, fixed nonce, fake tls-exporter data."""
        store = CredentialStore()
        store.add("user", "pencil", ["sha1"], base64.b64decode("QSXCR+Q6sek8bf92"))
        context = make_context(
            store, channel_bindings={"tls-exporter": lambda: b"THIS IS FAKE CB DATA"},
            advertised_mechanisms=list(mechanisms), advertised_cb_types=list(cb_types))
        return ScramMechanism("sha1", True, context,
                              nonce_factory=lambda: "a09117a6-ac50-4f2f-93f1-93799c2bddf6")

    def test_example(self):
        """The server sends exactly the example's challenge and success data."""
        mechanism = self.mechanism()
        challenge = self.successResultOf(mechanism.step(base64.b64decode(self.INITIAL)))
        self.assertEqual(challenge, Challenge(base64.b64decode(self.CHALLENGE)))
        outcome = self.successResultOf(mechanism.step(base64.b64decode(self.RESPONSE)))
        self.assertEqual(outcome, Success(base64.b64decode(self.SUCCESS), "user", None))

    def test_other_advertisement_changes_hash(self):
        """Had the server advertised something else, "h" and so the proof would differ."""
        mechanism = self.mechanism(cb_types=["tls-server-end-point"])
        challenge = self.successResultOf(mechanism.step(base64.b64decode(self.INITIAL)))
        self.assertNotEqual(challenge.data, base64.b64decode(self.CHALLENGE))
        outcome = self.successResultOf(mechanism.step(base64.b64decode(self.RESPONSE)))
        self.assertEqual(outcome, Failure("not-authorized", None, "user"))


class StrippedHashTests(unittest.TestCase):
    """The "h" attribute is covered by the client proof."""

    def test_stripped_h_attribute(self):
        """A client that saw server-first without "h" (a MITM removed it) fails."""
        context = make_context(advertised_mechanisms=["SCRAM-SHA-256"])
        mechanism = ScramMechanism("sha256", False, context)
        client = ScramClient("sha256", "user", "pencil")
        server_first = self.successResultOf(mechanism.step(client.first())).data
        self.assertIn("h", attributes(server_first.decode()))
        stripped = server_first.rsplit(b",h=", 1)[0]
        outcome = self.successResultOf(mechanism.step(client.final(stripped)))
        self.assertEqual(outcome.condition, "not-authorized")

    def test_with_h_attribute(self):
        """The same client verifying over the full server-first succeeds."""
        context = make_context(advertised_mechanisms=["SCRAM-SHA-256"])
        mechanism = ScramMechanism("sha256", False, context)
        client = ScramClient("sha256", "user", "pencil")
        server_first = self.successResultOf(mechanism.step(client.first())).data
        self.assertIsInstance(self.successResultOf(mechanism.step(client.final(server_first))),
                              Success)


class YFlagTests(unittest.TestCase):
    """RFC 5802 §6: "y" means the client saw no -PLUS offer."""

    def first_step(self, advertised, gs2_header=b"y,,"):
        """Send a client-first-message to SCRAM-SHA-256 after ``advertised``."""
        mechanism = ScramMechanism("sha256", False, make_context(advertised_mechanisms=advertised))
        return self.successResultOf(mechanism.step(gs2_header + b"n=user,r=abc"))

    def test_y_while_plus_offered(self):
        """"y" while a -PLUS mechanism was advertised is a downgrade: fail at once."""
        outcome = self.first_step(["SCRAM-SHA-256", "SCRAM-SHA-1-PLUS"])
        self.assertEqual(outcome, Failure("not-authorized", "server does support channel binding",
                                          "user"))

    def test_y_without_plus_offer(self):
        """"y" when no -PLUS mechanism was advertised goes on."""
        self.assertIsInstance(self.first_step(["SCRAM-SHA-256", "SCRAM-SHA-1"]), Challenge)

    def test_n_while_plus_offered(self):
        """"n" (no channel-binding support) is fine even when -PLUS was offered."""
        self.assertIsInstance(self.first_step(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], b"n,,"),
                              Challenge)


class RegistryTests(unittest.TestCase):
    """What the server advertises and accepts (summitd.sasl.registry)."""

    def test_order(self):
        """MECHANISM_NAMES lists the mechanisms strongest first."""
        self.assertEqual(list(MECHANISM_NAMES), [
            "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])

    def test_available_mechanisms(self):
        """-PLUS only with channel bindings, PLAIN only over TLS."""
        self.assertEqual(available_mechanisms(False, []), ["SCRAM-SHA-256", "SCRAM-SHA-1"])
        self.assertEqual(available_mechanisms(False, None), ["SCRAM-SHA-256", "SCRAM-SHA-1"])
        self.assertEqual(available_mechanisms(True, []),
                         ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
        self.assertEqual(available_mechanisms(True, ["tls-exporter"]), list(MECHANISM_NAMES))

    def test_create_mechanism(self):
        """create_mechanism builds the named mechanism when it is available."""
        context = make_context(channel_bindings={"tls-exporter": lambda: b"x"})
        for name in MECHANISM_NAMES:
            self.assertEqual(create_mechanism(name, context).name, name)

    def test_create_unavailable(self):
        """Unknown names, -PLUS without bindings and PLAIN without TLS give None."""
        context = make_context(secure=False)
        for name in ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "PLAIN", "DIGEST-MD5",
                     "scram-sha-1", ""):
            self.assertIsNone(create_mechanism(name, context), name)
        self.assertIsNotNone(create_mechanism("SCRAM-SHA-1", context))

    def test_create_not_advertised(self):
        """When the advertised list is known, only its mechanisms are created."""
        context = make_context(advertised_mechanisms=["SCRAM-SHA-256"])
        self.assertIsNone(create_mechanism("SCRAM-SHA-1", context))
        self.assertIsNotNone(create_mechanism("SCRAM-SHA-256", context))
