"""TOTP second factor (XEP-0400, RFC 6238): enrolment by IQ, the SASL2 "TOTP" task, wrong,
reused and rate-limited codes, TOTP without enrolment, the policies for app passwords and
FAST tokens, RFC 6120 SASL refused for enrolled accounts, encryption at rest."""

import base64
import re

from cryptography.exceptions import InvalidTag

from summitd.config import ConfigError
from summitd.core.jid import parse_jid
from summitd.plugins.sasl2 import parse_config
from summitd.plugins.sasl2.mfa import SecretBox, parse_key, totp
from summitd.synchronous import result_of
from summitd.testing import FakeClient
from summitd.test.test_sasl2_support import (
    NS_BIND2, NS_FAST, NS_MFA, NS_SASL2, PASSWORD, TOTP_KEY, Sasl2TestCase, b64, child, text_of)

NODE_DISABLE = "urn:summitd:totp:disable"


class TotpAlgorithmTests(Sasl2TestCase):
    extensions = ()

    def test_rfc6238_vectors(self):
        """RFC 6238 Appendix B, SHA-1, eight digits (the six-digit code is their tail)."""
        secret = b"12345678901234567890"
        for seconds, code in ((59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"),
                              (20000000000, "65353130")):
            self.assertEqual(totp(secret, seconds // 30, digits=8), code)
            self.assertEqual(totp(secret, seconds // 30), code[2:])

    def test_key_option(self):
        """totp_key must be 32 bytes of base64; both alphabets are accepted."""
        self.assertEqual(len(parse_key(TOTP_KEY)), 32)
        self.assertEqual(parse_config({"totp_key": TOTP_KEY}, "x").totp_key, bytes(range(32)))
        with self.assertRaises(ConfigError):
            parse_config({"totp_key": "c2hvcnQ="}, "x")
        with self.assertRaises(ConfigError):
            parse_config({"totp_key": 42, "no_such_option": 1}, "x")

    def test_sealed_secret_belongs_to_its_account(self):
        """The sealed secret does not contain the secret, and opens only for its account."""
        box = SecretBox(bytes(range(32)))
        sealed = box.seal("localhost", "alice", b"s" * 20)
        self.assertNotIn(b"s" * 20, sealed)
        self.assertEqual(box.open("localhost", "alice", sealed), b"s" * 20)
        with self.assertRaises(InvalidTag):
            box.open("localhost", "bob", sealed)


class MfaTestCase(Sasl2TestCase):
    options = {"sasl2": {"totp_key": TOTP_KEY, "fast_token_lifetime": 1000}}

    def code(self, offset=0):
        return totp(self.secret, int(self.clock.seconds() // 30) + offset)

    def enrol(self, user="alice"):
        """Enrol through the IQ protocol from a legacy session; keeps the secret."""
        client = self.login(user, "enrol")
        reply = self.ask(client, f"<setup xmlns='{NS_MFA}'/>", type="set")
        uri = str(self.assertResult(reply))
        encoded = re.search(r"secret=([A-Z2-7]+)", uri).group(1)
        self.secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
        reply = self.ask(client, f"<setup xmlns='{NS_MFA}'>{self.code()}</setup>", type="set", iq_id="q2")
        self.assertResult(reply, "q2")
        client.lose_connection()
        self.clock.advance(30)      # the enrolment code is used up; the next login needs a new one
        return uri

    def second_factor_session(self):
        """A client logged in with password and code, bound with legacy binding."""
        client = self.client()
        self.continued(client)
        self.assertEqual(self.send_code(client, self.code()).name, "success")
        client.next()
        client.fake.bind("desk")
        return client.fake

    def continued(self, client, inline=""):
        """A password login that must stop at <continue/> with the TOTP task."""
        client.open()
        outcome = client.scram_login("alice", inline=inline)
        self.assertEqual(outcome.name, "continue", outcome.toXml())
        self.assertEqual(str(child(child(outcome, NS_SASL2, "tasks"), NS_SASL2, "task")), "TOTP")
        self.assertIsNotNone(child(outcome, NS_SASL2, "additional-data"))
        return outcome

    def send_code(self, client, code):
        client.send(f"<next xmlns='{NS_SASL2}' task='TOTP'><totp xmlns='{NS_MFA}'>{code}</totp></next>")
        return client.next()


class EnrolmentTests(MfaTestCase):
    def test_enrolment(self):
        """<setup/> gives an otpauth URI (issuer, account, 160-bit base32 secret); a correct
        code enables TOTP; the feature is announced."""
        uri = self.enrol()
        self.assertTrue(uri.startswith("otpauth://totp/localhost:alice@localhost?secret="), uri)
        self.assertTrue(uri.endswith("&issuer=localhost"))
        self.assertEqual(len(self.secret), 20)
        self.assertIn(("localhost", "alice"), self.sasl2().totp.enrolled)

    def test_wrong_enrolment_code(self):
        """A wrong code during enrolment is not-acceptable, and TOTP stays off."""
        client = self.login("alice", "enrol")
        self.assertResult(self.ask(client, f"<setup xmlns='{NS_MFA}'/>", type="set"))
        reply = self.ask(client, f"<setup xmlns='{NS_MFA}'>000000</setup>", type="set", iq_id="q2")
        self.assertStanzaError(reply, "not-acceptable", "q2")
        self.assertNotIn(("localhost", "alice"), self.sasl2().totp.enrolled)

    def test_code_without_enrolment(self):
        """A code without a started enrolment (TOTP without enrolment) is unexpected-request."""
        client = self.login("alice", "enrol")
        reply = self.ask(client, f"<setup xmlns='{NS_MFA}'>123456</setup>", type="set")
        self.assertStanzaError(reply, "unexpected-request")

    def test_enrolling_twice(self):
        """An enrolled account cannot start another enrolment (conflict)."""
        self.enrol()
        reply = self.ask(self.second_factor_session(), f"<setup xmlns='{NS_MFA}'/>", type="set")
        self.assertStanzaError(reply, "conflict")

    def test_only_for_ones_own_account(self):
        """bob cannot enrol alice."""
        bob = self.login("bob", "desk")
        reply = self.ask(bob, f"<setup xmlns='{NS_MFA}'/>", to="alice@localhost", type="set")
        self.assertStanzaError(reply, "forbidden")

    def test_secret_encrypted_at_rest(self):
        """The stored secret is not the secret."""
        self.enrol()
        stored = result_of(self.server.database.runInteraction(
            "t", lambda txn: txn.execute("SELECT secret FROM sasl2_totp").fetchone()[0]))
        self.assertNotIn(self.secret, bytes(stored))


class LoginTests(MfaTestCase):
    def test_code_in_next(self):
        """The password alone gets <continue/> with the TOTP task; the code in <next/> ends in
        <success/>, and the inline bind happens only then."""
        self.enrol()
        client = self.client()
        self.continued(client, inline=f"<bind xmlns='{NS_BIND2}'><tag>t</tag></bind>")
        self.assertEqual(self.server.router.sessions(parse_jid("alice@localhost")), [])
        success = self.send_code(client, self.code())
        self.assertEqual(success.name, "success")
        self.assertIsNone(child(success, NS_SASL2, "additional-data"))     # it was in <continue/>
        self.assertTrue(text_of(success, NS_SASL2, "authorization-identifier").startswith("alice@localhost/t/"))

    def test_code_in_task_data(self):
        """<next task='TOTP'/> without a code: the server asks in <task-data/>, the client
        answers in <task-data/>."""
        self.enrol()
        client = self.client()
        self.continued(client)
        client.send(f"<next xmlns='{NS_SASL2}' task='TOTP'/>")
        client.expect(f"<task-data xmlns='{NS_SASL2}'><totp xmlns='{NS_MFA}'/></task-data>")
        client.send(f"<task-data xmlns='{NS_SASL2}'><totp xmlns='{NS_MFA}'>{self.code()}</totp></task-data>")
        client.expect(f"<success xmlns='{NS_SASL2}'/>")

    def test_code_as_initial_response(self):
        """XEP-0400's form: the code as base64 <initial-response/> inside <next/>."""
        self.enrol()
        client = self.client()
        self.continued(client)
        client.send(f"<next xmlns='{NS_SASL2}' task='TOTP'><initial-response>{b64(self.code())}"
                    "</initial-response></next>")
        client.expect(f"<success xmlns='{NS_SASL2}'/>")

    def test_wrong_code(self):
        """A wrong code fails the login; the stream is not authenticated."""
        self.enrol()
        client = self.client()
        self.continued(client)
        self.assertFailure(self.send_code(client, "000000" if self.code() != "000000" else "111111"),
                           "not-authorized")
        self.assertEqual(client.stream.state, "connected")

    def test_code_used_twice(self):
        """A code that logged in once is refused the second time (RFC 6238 §5.2)."""
        self.enrol()
        code = self.code()
        first = self.client()
        self.continued(first)
        self.assertEqual(self.send_code(first, code).name, "success")
        second = self.client()
        self.continued(second)
        self.assertFailure(self.send_code(second, code), "not-authorized")

    def test_drift_of_one_step(self):
        """The previous step's code is still accepted (network delay)."""
        self.enrol()
        self.clock.advance(30)
        client = self.client()
        self.continued(client)
        self.assertEqual(self.send_code(client, self.code(-1)).name, "success")

    def test_task_not_offered_without_enrolment(self):
        """An account without TOTP logs in without a task; naming the task anyway fails."""
        client = self.client()
        client.open()
        client.authenticate("PLAIN")
        client.next()
        client.send(f"<next xmlns='{NS_SASL2}' task='TOTP'><totp xmlns='{NS_MFA}'>123456</totp></next>")
        self.assertFailure(client.next(), "malformed-request")
        self.assertEqual(self.client().logged_in("alice").name, "success")

    def test_legacy_sasl_refused(self):
        """RFC 6120 SASL cannot ask for the code: the enrolled account's session is closed."""
        self.enrol()
        legacy = FakeClient(self.server)
        legacy.open_stream()
        self.assertTrue(legacy.authenticate("alice", PASSWORD))
        legacy.open_stream()
        legacy.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        legacy.next()
        legacy.expect_stream_error("not-authorized")
        self.assertEqual(self.server.router.sessions(parse_jid("alice@localhost")), [])

    def test_fast_token_only_after_the_code(self):
        """A token asked for with the password comes in the <success/> after the code, and a
        FAST login then needs no code (fast_skips_mfa, the default)."""
        self.enrol()
        client = self.client()
        self.continued(client, inline=f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>")
        token = child(self.send_code(client, self.code()), NS_FAST, "token")["token"]
        fast = self.client()
        fast.open()
        self.assertEqual(fast.fast_login("alice", token).name, "success")

    def test_disable_with_a_code(self):
        """The ad-hoc command disables TOTP given a current code; logins need none after."""
        self.enrol()
        client = self.second_factor_session()
        self.clock.advance(30)
        reply = self.run_command(client, NODE_DISABLE, {"code": ["000000" if self.code() != "000000" else "1"]})
        self.assertStanzaError(reply, "not-acceptable", "c2")
        reply = self.run_command(client, NODE_DISABLE, {"code": [self.code()]})
        self.assertEqual(reply.firstChildElement()["status"], "completed")
        self.assertEqual(self.client().logged_in("alice").name, "success")


class RateLimitTests(MfaTestCase):
    options = {"sasl2": {"totp_key": TOTP_KEY, "mfa_max_failures": 3}}

    def test_wrong_codes_rate_limited(self):
        """After mfa_max_failures wrong codes even the right one is refused for a while
        (before the server's own failed-login limit of five per account is reached)."""
        self.enrol()
        for _ in range(3):
            client = self.client()
            self.continued(client)
            self.assertFailure(self.send_code(client, "000000" if self.code() != "000000" else "111111"),
                               "not-authorized")
        client = self.client()
        self.continued(client)
        refusal = self.send_code(client, self.code())
        self.assertFailure(refusal, "temporary-auth-failure")
        self.assertEqual(text_of(refusal, NS_SASL2, "text"), "too many wrong codes; try again later")
        self.clock.advance(300)
        client = self.client()
        self.continued(client)
        self.assertEqual(self.send_code(client, self.code()).name, "success")


class StrictPolicyTests(MfaTestCase):
    options = {"sasl2": {"totp_key": TOTP_KEY, "app_passwords_skip_mfa": False, "fast_skips_mfa": False}}

    def test_app_password_needs_the_code(self):
        """With app_passwords_skip_mfa off an app password login gets the TOTP task too."""
        self.enrol()
        password = result_of(self.sasl2().app_passwords.create(parse_jid("alice@localhost"), "phone"))
        client = self.client()
        client.open()
        self.assertEqual(client.scram_login("alice", password).name, "continue")

    def test_fast_fails_credentials_expired(self):
        """With fast_skips_mfa off a FAST login of an enrolled account fails with
        credentials-expired (XEP-0484 forbids asking for the code)."""
        client = self.client()
        success = client.logged_in("alice", inline=f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>")
        token = child(success, NS_FAST, "token")["token"]
        self.enrol()
        fast = self.client()
        fast.open()
        self.assertFailure(fast.fast_login("alice", token), "credentials-expired")


class LenientPolicyTests(MfaTestCase):
    def test_app_password_skips_the_code(self):
        """By default an app password logs in without the code."""
        self.enrol()
        password = result_of(self.sasl2().app_passwords.create(parse_jid("alice@localhost"), "phone"))
        client = self.client()
        client.open()
        self.assertEqual(client.scram_login("alice", password).name, "success")


class WithoutKeyTests(Sasl2TestCase):
    def test_not_offered(self):
        """Without totp_key there is no TOTP: the IQ finds no handler."""
        client = self.login("alice", "desk")
        reply = self.ask(client, f"<setup xmlns='{NS_MFA}'/>", type="set")
        self.assertStanzaError(reply, "service-unavailable")
