"""Conversation tests for legacy In-Band Registration (XEP-0077) of new accounts: offered
only where the domain's flow fits in it, with the XEP-0445 token, the XEP-0158 CAPTCHA
form and the XEP-0348 signed form, and refused everywhere else."""

from twisted.trial import unittest

from summitd.testing import FakeClient, add_user, result_of
from summitd.test.test_registration import (
    HMAC_SECRET, PASSWORD, STANZAS, error_reason, fields_of, form_xml, labels_of, new_invite, no_work,
    registration_server, signed_values)
from summitd.plugins.registration import hashcash

NS = "jabber:iq:register"
FEATURE = "http://jabber.org/features/iq-register"


class Legacy:
    """An unauthenticated client speaking XEP-0077."""

    def __init__(self, server, peer="127.0.0.1"):
        self.client = FakeClient(server, peer=peer)
        self.features = {f.uri for f in self.client.open_stream().elements()}
        self._ids = iter(range(1, 1000))

    def iq(self, type, payload):
        iq_id = f"r{next(self._ids)}"
        self.client.send(f"<iq type='{type}' id='{iq_id}'>{payload}</iq>")
        return self.client.expect(f"<iq id='{iq_id}'/>")

    def get(self):
        reply = self.iq("get", f"<query xmlns='{NS}'/>")
        assert reply["type"] == "result", reply.toXml()
        return reply.firstChildElement()

    def form(self):
        """The data form of the registration query."""
        return next(c for c in self.get().elements() if c.name == "x")

    def plain(self, username, password=PASSWORD):
        return self.iq("set", f"<query xmlns='{NS}'><username>{username}</username>"
                              f"<password>{password}</password></query>")

    def submit(self, values):
        return self.iq("set", f"<query xmlns='{NS}'>{form_xml(values)}</query>")

    def preauth(self, token):
        return self.iq("set", f"<preauth xmlns='urn:xmpp:pars:0' token='{token}'/>")


def error_of(reply):
    """(condition, text) of an error reply."""
    assert reply["type"] == "error", reply.toXml()
    return error_reason(reply)[1:]


class InviteOnlyTests(unittest.TestCase):
    def setUp(self):
        self.server = registration_server(mode="invite")

    def test_features(self):
        """The XEP-0077 feature and XEP-0445's token feature are offered."""
        features = Legacy(self.server).features
        self.assertIn(FEATURE, features)
        self.assertIn("urn:xmpp:ibr-token:0", features)

    def test_register_with_a_token(self):
        """<preauth/> with a valid token, then username and password: the account exists
        and logs in; the same token on another stream is refused (single use)."""
        token, _ = new_invite(self.server)
        legacy = Legacy(self.server)
        self.assertEqual(legacy.preauth(token)["type"], "result")
        self.assertEqual(legacy.get().firstChildElement().name, "instructions")
        self.assertEqual(legacy.plain("juliet")["type"], "result")
        self.assertIs(legacy.client.authenticate("juliet", PASSWORD), True)
        again = Legacy(self.server)
        self.assertEqual(error_of(again.preauth(token)), ("item-not-found", "this invitation was used already"))

    def test_no_token_no_account(self):
        """Without a token the submission is refused with not-allowed naming the reason."""
        condition, text = error_of(Legacy(self.server).plain("juliet"))
        self.assertEqual(condition, "not-allowed")
        self.assertIn("needs an invitation", text)

    def test_expired_token(self):
        """An expired token is refused at <preauth/>."""
        token, _ = new_invite(self.server, lifetime=10)
        self.server.clock.advance(11)
        self.assertEqual(error_of(Legacy(self.server).preauth(token))[0], "item-not-found")

    def test_token_checked_then_expiring_still_works(self):
        """XEP-0445 §4: expiry is checked at <preauth/> only."""
        token, _ = new_invite(self.server, lifetime=10)
        legacy = Legacy(self.server)
        legacy.preauth(token)
        self.server.clock.advance(11)
        self.assertEqual(legacy.plain("juliet")["type"], "result")

    def test_remove_before_login(self):
        """<remove/> before authentication: registration-required."""
        legacy = Legacy(self.server)
        self.assertEqual(error_of(legacy.iq("set", f"<query xmlns='{NS}'><remove/></query>"))[0],
                         "registration-required")

    def test_rate_limit(self):
        """Token guesses count against the per-address budget."""
        server = registration_server(mode="invite", attempts_per_address=3)
        legacy = Legacy(server)
        for _ in range(3):
            self.assertEqual(error_of(legacy.preauth("guess"))[0], "item-not-found")
        condition, text = error_of(legacy.preauth("guess"))
        self.assertEqual(condition, "policy-violation")
        self.assertIn("too many", text)


class OpenWithWorkTests(unittest.TestCase):
    def setUp(self):
        self.server = registration_server()

    def test_captcha_form_registers(self):
        """The query holds the XEP-0158 CAPTCHA form with username and password fields
        (XEP-0158 §4); answering it with the work makes the account."""
        legacy = Legacy(self.server)
        x = legacy.form()
        self.assertEqual(fields_of(x)["FORM_TYPE"], "urn:xmpp:captcha")
        self.assertIn("username", fields_of(x))
        answer = hashcash.solve("localhost", labels_of(x)["SHA-256"])
        reply = legacy.submit({"FORM_TYPE": "urn:xmpp:captcha", "challenge": fields_of(x)["challenge"],
                               "SHA-256": answer, "username": "juliet", "password": PASSWORD})
        self.assertEqual(reply["type"], "result")
        self.assertEqual(result_of(self.server.account_manager.list()), [("localhost", "juliet")])

    def test_insufficient_work(self):
        """Without the work: not-acceptable naming it; plain fields are not enough either."""
        legacy = Legacy(self.server)
        x = legacy.form()
        reply = legacy.submit({"FORM_TYPE": "urn:xmpp:captcha", "challenge": fields_of(x)["challenge"],
                               "SHA-256": no_work("localhost", labels_of(x)["SHA-256"]), "username": "juliet",
                               "password": PASSWORD})
        self.assertIn("insufficient proof-of-work", error_of(reply)[1])
        self.assertEqual(error_of(legacy.plain("juliet"))[0], "not-acceptable")

    def test_taken_username(self):
        """XEP-0077 §3.1: a taken username is a conflict."""
        add_user(self.server, "juliet@localhost", PASSWORD)
        legacy = Legacy(self.server)
        x = legacy.form()
        reply = legacy.submit({"FORM_TYPE": "urn:xmpp:captcha", "challenge": fields_of(x)["challenge"],
                               "SHA-256": hashcash.solve("localhost", labels_of(x)["SHA-256"]),
                               "username": "juliet", "password": PASSWORD})
        self.assertEqual(error_of(reply)[0], "conflict")


class FitTests(unittest.TestCase):
    def test_signed_form_over_xep_0077(self):
        """XEP-0348 §3.1: the signed form in the query creates the device's account."""
        server = registration_server(challenges=["signed-form"],
                                     signing_keys={"fleet-a": {"method": "HMAC-SHA1", "secret": HMAC_SECRET}})
        legacy = Legacy(server)
        x = legacy.form()
        self.assertEqual(legacy.submit(signed_values(x, server.clock.seconds()))["type"], "result")
        self.assertEqual(result_of(server.account_manager.list()), [("localhost", "sensor1")])

    def test_flows_that_do_not_fit_are_not_offered(self):
        """An open flow with two form steps (work and a signature) or a step without a form
        does not run over XEP-0077: only invitations do there, so legacy registration
        cannot bypass a check."""
        for options in ({"challenges": ["proof-of-work", "signed-form"]},
                        {"challenges": ["email"], "extensions": ("registration", "example_email_challenge")}):
            extensions = options.pop("extensions", ("registration",))
            legacy = Legacy(registration_server(extensions=extensions, **options))
            self.assertEqual(fields_of(legacy.form())["FORM_TYPE"], NS, options)
            condition, text = error_of(legacy.plain("juliet"))
            self.assertEqual(condition, "not-allowed")
            self.assertIn("needs an invitation", text)

    def test_legacy_switched_off(self):
        """legacy = false: no feature, and requests get service-unavailable."""
        legacy = Legacy(registration_server(legacy=False))
        self.assertNotIn(FEATURE, legacy.features)
        self.assertEqual(error_of(legacy.iq("get", f"<query xmlns='{NS}'/>"))[0], "service-unavailable")

    def test_closed_domain(self):
        """Closed: nothing offered, requests get service-unavailable (XEP-0077 §3.1)."""
        legacy = Legacy(registration_server(mode="closed"))
        self.assertNotIn(FEATURE, legacy.features)
        self.assertEqual(error_of(legacy.plain("juliet"))[0], "service-unavailable")

    def test_logged_in_users_keep_their_register_namespace(self):
        """After login, jabber:iq:register belongs to the "register" extension (password
        change): the two coexist."""
        server = registration_server(extensions=("register", "registration"))
        add_user(server, "alice@localhost", PASSWORD)
        alice = FakeClient(server)
        alice.login("alice", PASSWORD, "phone")
        alice.send(f"<iq type='get' id='g'><query xmlns='{NS}'/></iq>")
        alice.expect(f"<iq type='result' id='g'><query xmlns='{NS}'><registered/><username>alice</username>"
                     "</query></iq>")
        alice.send(f"<iq type='set' id='s'><query xmlns='{NS}'><remove/><x/></query></iq>")
        alice.expect(f"<iq type='error' id='s'><error><bad-request xmlns='{STANZAS}'/></error></iq>")
