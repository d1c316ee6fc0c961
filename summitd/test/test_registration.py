"""Conversation tests for the "registration" extension over XEP-0389 (IBR 2.0): the stream
feature, the open flow with its proof-of-work (XEP-0158 hashcash), the account form and
its username rules, invitations, signed forms (XEP-0348), a third-party challenge, and
every refusal: invalid flow, insufficient work, timeout, rate limits.

The helpers at the top are shared by the other test_registration_* modules."""

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core.errors import NS_STREAMS
from summitd.plugins.registration import hashcash, signing
from summitd.plugins.registration.invites import create_invite
from summitd.plugins.registration.policy import parse_config, skeleton
from summitd.testing import FakeClient, add_user, make_server, result_of

NS = "urn:xmpp:register:0"
NS_DATA = "jabber:x:data"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
PASSWORD = "correct horse"
HMAC_SECRET = "fleet-a-shared-secret-0123456789"


# -- shared helpers ---------------------------------------------------------------------------------

def registration_server(extensions=("registration",), **options):
    """A server whose 'localhost' registers openly with a cheap proof-of-work by default."""
    table = {"mode": "open", "pow_bits": 6, **options}
    return make_server(extensions=list(extensions), extension_options={"registration": table})


def fields_of(x):
    """{var: value} of a form (first values; '' when none)."""
    result = {}
    for field in x.elements():
        if field.name == "field":
            values = [str(v) for v in field.elements() if v.name == "value"]
            result[field["var"]] = values[0] if values else ""
    return result


def labels_of(x):
    return {f["var"]: f.getAttribute("label") for f in x.elements() if f.name == "field"}


def form_xml(values, type="submit"):
    """A data form with the given {var: value or [values]}."""
    body = ""
    for var, value in values.items():
        vals = value if isinstance(value, list) else [value]
        body += f"<field var='{var}'>" + "".join(f"<value>{_escape(v)}</value>" for v in vals) + "</field>"
    return f"<x xmlns='{NS_DATA}' type='{type}'>{body}</x>"


def _escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


def pow_answer(x, prefix):
    """The submitted values answering a CAPTCHA form's SHA-256 hashcash."""
    fields = fields_of(x)
    return {"FORM_TYPE": "urn:xmpp:captcha", "challenge": fields.get("challenge", ""),
            "SHA-256": hashcash.solve(prefix, labels_of(x)["SHA-256"])}


def error_reason(stanza):
    """(type, condition, text) of a stanza error reply."""
    error = next(c for c in stanza.elements() if c.name == "error")
    condition = next(c.name for c in error.elements() if c.name != "text")
    return error.getAttribute("type"), condition, next((str(c) for c in error.elements() if c.name == "text"), "")


def no_work(prefix, label):
    """An answer starting with ``prefix`` that does not prove the work (a random one would,
    once in 2^bits)."""
    return next(f"{prefix}-nope-{n}" for n in range(1000) if not hashcash.check(f"{prefix}-nope-{n}", prefix, label))


def cancel_reason(element):
    """(condition, text) of a <cancel/> carrying a reason."""
    assert element.name == "cancel" and element.uri == NS, element.toXml()
    condition = next(c.name for c in element.elements() if c.name != "text")
    text = next((str(c) for c in element.elements() if c.name == "text"), "")
    return condition, text


class Registrant:
    """An unauthenticated client going through an XEP-0389 flow."""

    def __init__(self, server, peer="127.0.0.1"):
        self.client = FakeClient(server, peer=peer)
        self.features = self.client.open_stream()

    def select(self, flow):
        self.client.send(f"<register xmlns='{NS}'><flow id='{flow}'/></register>")
        return self.client.next()

    def respond(self, inner):
        self.client.send(f"<response xmlns='{NS}'>{inner}</response>")
        return self.client.next()

    def form(self, values):
        return self.respond(form_xml(values))

    def account(self, username, password=PASSWORD):
        return self.form({"FORM_TYPE": "jabber:iq:register", "username": username, "password": password})

    def open_flow(self, username, password=PASSWORD, host="localhost"):
        """Select 'open', do the work, fill in the account: the final element."""
        challenge = self.select("open")
        form = self.respond(form_xml(pow_answer(challenge.firstChildElement(), host)))
        assert form.getAttribute("type") == NS_DATA, form.toXml()
        return self.account(username, password)

    def token(self, token):
        return self.respond(f"<preauth xmlns='urn:xmpp:pars:0' token='{token}'/>")


def new_invite(server, username=None, uses=1, lifetime=None, inviter=None, host="localhost"):
    """Create an invitation the way summitctl does; returns (token, invite)."""
    return result_of(create_invite(server.database, server.clock.seconds(), host, username=username,
                                   inviter=inviter, uses=uses, lifetime=lifetime))


def signed_values(x, timestamp, key="fleet-a", secret=HMAC_SECRET, username="sensor1", password=PASSWORD,
                  nonce="n-1", to="localhost", method="HMAC-SHA1", private_key=None):
    """A signed submission of an XEP-0348 form challenge, dated ``timestamp``."""
    fields = {var: [value] for var, value in fields_of(x).items()}
    fields.update({"username": [username], "password": [password], "oauth_nonce": [nonce],
                   "oauth_timestamp": [str(int(timestamp))]})
    signed = signing.sign(fields, to, key, fields["oauth_token_secret"][0], method=method, secret=secret,
                          private_key=private_key)
    return {var: values for var, values in signed.items()}


# -- the tests ---------------------------------------------------------------------------------------

class FeatureTests(unittest.TestCase):
    def test_open_domain_lists_its_flows(self):
        """The <register/> feature lists the open flow (captcha then data form) and the
        invitation flow, beside SASL; legacy registration is offered too."""
        features = Registrant(registration_server()).features
        register = next(f for f in features.elements() if f.uri == NS)
        flows = {f["id"]: [c["type"] for c in f.elements() if c.name == "challenge"] for f in register.elements()}
        self.assertEqual(flows, {"open": ["urn:xmpp:captcha", NS_DATA],
                                 "invite": ["urn:xmpp:ibr-token:0", NS_DATA]})
        namespaces = {f.uri for f in features.elements()}
        self.assertIn("http://jabber.org/features/iq-register", namespaces)
        self.assertIn("urn:ietf:params:xml:ns:xmpp-sasl", namespaces)

    def test_closed_domain_offers_nothing(self):
        """A closed domain has no registration feature and refuses a flow selection."""
        registrant = Registrant(registration_server(mode="closed"))
        self.assertNotIn(NS, {f.uri for f in registrant.features.elements()})
        registrant.client.send(f"<register xmlns='{NS}'><flow id='open'/></register>")
        registrant.client.expect_stream_error("unsupported-stanza-type")

    def test_not_offered_before_encryption(self):
        """With require_encryption, nothing is offered on a stream without TLS (§4.1)."""
        server = make_server(extensions=["registration"], extension_options={"registration": {"mode": "open"}},
                             c2s={"require_encryption": True})
        features = FakeClient(server).open_stream()
        self.assertNotIn(NS, {f.uri for f in features.elements()})

    def test_flow_list_by_iq(self):
        """Before authentication an IQ get lists the flows; after binding, the empty list,
        and selecting a flow by IQ is item-not-found (§4.2, §4.3)."""
        server = registration_server(mode="invite")
        registrant = Registrant(server)
        registrant.client.send(f"<iq type='get' id='f1'><register xmlns='{NS}'/></iq>")
        registrant.client.expect(f"<iq type='result' id='f1'><register xmlns='{NS}'><flow id='invite'/>"
                                 "</register></iq>")
        add_user(server, "alice@localhost", PASSWORD)
        alice = FakeClient(server)
        alice.login("alice", PASSWORD, "phone")
        alice.send(f"<iq type='get' id='f2' to='localhost'><register xmlns='{NS}'/></iq>")
        reply = alice.expect(f"<iq type='result' id='f2'><register xmlns='{NS}'/></iq>")
        self.assertEqual(list(reply.firstChildElement().elements()), [])
        alice.send(f"<iq type='set' id='f3' to='localhost'><register xmlns='{NS}'><flow id='invite'/></register></iq>")
        alice.expect(f"<iq type='error' id='f3'><error><item-not-found xmlns='{STANZAS}'/></error></iq>")


class OpenFlowTests(unittest.TestCase):
    def setUp(self):
        self.server = registration_server()

    def test_register_then_log_in(self):
        """Proof-of-work, then the account form: <success/> with the JID and username,
        and SASL on the same stream logs the new account in."""
        registrant = Registrant(self.server)
        success = registrant.open_flow("juliet")
        self.assertEqual(fields_of_success(success), ("juliet@localhost", "juliet"))
        self.assertIs(registrant.client.authenticate("juliet", PASSWORD), True)

    def test_insufficient_proof_of_work(self):
        """An answer whose hash does not end in the label is refused with not-acceptable
        naming the missing work; no account is made."""
        registrant = Registrant(self.server)
        challenge = registrant.select("open")
        values = pow_answer(challenge.firstChildElement(), "localhost")
        values["SHA-256"] = no_work("localhost", labels_of(challenge.firstChildElement())["SHA-256"])
        condition, text = cancel_reason(registrant.form(values))
        self.assertEqual(condition, "not-acceptable")
        self.assertIn("insufficient proof-of-work", text)
        self.assertEqual(result_of(self.server.account_manager.list()), [])

    def test_work_must_start_with_the_domain(self):
        """Work done for another domain does not count."""
        registrant = Registrant(self.server)
        challenge = registrant.select("open")
        condition, _ = cancel_reason(registrant.form(pow_answer(challenge.firstChildElement(), "example.org")))
        self.assertEqual(condition, "not-acceptable")

    def test_invalid_flow_is_a_stream_error(self):
        """§4.3: an unknown flow id ends the stream with undefined-condition and <invalid-flow/>."""
        registrant = Registrant(self.server)
        registrant.client.send(f"<register xmlns='{NS}'><flow id='nope'/></register>")
        error = registrant.client.expect(f"<error xmlns='{NS_STREAMS}'><invalid-flow xmlns='{NS}'/></error>")
        self.assertIn("undefined-condition", [c.name for c in error.elements()])
        self.assertTrue(registrant.client.disconnected)

    def test_challenge_timeout(self):
        """A flow not finished within challenge_timeout is cancelled with policy-violation;
        a late response then finds nothing to answer."""
        registrant = Registrant(self.server)
        registrant.select("open")
        self.server.clock.advance(46)
        condition, text = cancel_reason(registrant.client.next())
        self.assertEqual(condition, "policy-violation")
        self.assertIn("timed out", text)
        condition, _ = cancel_reason(registrant.form({"FORM_TYPE": "urn:xmpp:captcha"}))
        self.assertEqual(condition, "unexpected-request")

    def test_client_cancel(self):
        """The client's <cancel/> ends the flow (§4.5)."""
        registrant = Registrant(self.server)
        registrant.select("open")
        registrant.client.send(f"<cancel xmlns='{NS}'/>")
        registrant.client.expect_nothing()
        condition, _ = cancel_reason(registrant.form({"FORM_TYPE": "urn:xmpp:captcha"}))
        self.assertEqual(condition, "unexpected-request")

    def test_one_account_per_connection(self):
        """A second registration on the same stream is refused with not-acceptable."""
        registrant = Registrant(self.server)
        registrant.open_flow("juliet")
        condition, text = cancel_reason(registrant.select("open"))
        self.assertEqual((condition, "already" in text), ("not-acceptable", True))

    def test_attempts_per_address_limit(self):
        """The per-address budget counts flow selections: over it, policy-violation (type
        wait semantics) naming the limit; another address is not affected."""
        server = registration_server(attempts_per_address=2)
        for _ in range(2):
            self.assertEqual(Registrant(server).select("open").name, "challenge")
        condition, text = cancel_reason(Registrant(server).select("open"))
        self.assertEqual(condition, "policy-violation")
        self.assertIn("too many registration attempts", text)
        self.assertEqual(Registrant(server, peer="192.0.2.7").select("open").name, "challenge")

    def test_accounts_per_domain_limit(self):
        """The per-domain budget counts accounts made: the second one is refused."""
        server = registration_server(accounts_per_domain=1)
        Registrant(server).open_flow("juliet")
        condition, text = cancel_reason(Registrant(server, peer="192.0.2.8").open_flow("romeo"))
        self.assertEqual(condition, "policy-violation")
        self.assertIn("no more registrations", text)


def fields_of_success(success):
    children = {c.name: str(c) for c in success.elements()}
    assert success.name == "success", success.toXml()
    return children["jid"], children["username"]


class UsernameTests(unittest.TestCase):
    def setUp(self):
        self.server = registration_server(challenges=[], reserved=["shakespeare"])
        add_user(self.server, "alice@localhost", PASSWORD)

    def refused(self, username, password=PASSWORD):
        registrant = Registrant(self.server)
        registrant.select("open")
        return cancel_reason(registrant.account(username, password))

    def test_reserved_names(self):
        """Built-in role names and configured ones are refused with not-acceptable."""
        for name in ("admin", "Postmaster", "abuse", "shakespeare"):
            condition, text = self.refused(name)
            self.assertEqual(condition, "not-acceptable", name)
            self.assertIn("reserved", text)

    def test_confusable_names(self):
        """Names that look like a reserved name or an existing account are refused."""
        for name in ("\u0430dmin", "adm1n", "ad.min", "\u00e4dmin", "a1ice", "al-ice"):
            condition, text = self.refused(name)
            self.assertEqual(condition, "not-acceptable", name)
            self.assertTrue("looks like" in text or "too similar" in text, text)

    def test_taken_and_malformed(self):
        """An existing name is a conflict; an invalid localpart jid-malformed; a short
        password not-acceptable."""
        self.assertEqual(self.refused("alice")[0], "conflict")
        self.assertEqual(self.refused("a b")[0], "jid-malformed")
        condition, text = self.refused("bob", "short")
        self.assertEqual(condition, "not-acceptable")
        self.assertIn("at least 8", text)

    def test_skeletons(self):
        """The skeleton folds case, accents, homoglyphs, look-alike digits and separators."""
        self.assertEqual(skeleton("\u0410DM\u0406N"), skeleton("admin"))
        self.assertEqual(skeleton("r.n-o"), skeleton("mo"))
        self.assertNotEqual(skeleton("alice"), skeleton("bob"))


class InvitationFlowTests(unittest.TestCase):
    def setUp(self):
        self.server = registration_server(mode="invite")

    def register(self, token, username="juliet"):
        registrant = Registrant(self.server)
        self.assertEqual(registrant.select("invite").getAttribute("type"), "urn:xmpp:ibr-token:0")
        answer = registrant.token(token)
        if answer.name != "challenge":
            return answer
        return registrant.account(username)

    def test_invitation_registers(self):
        """A valid token opens the account form; the account is made."""
        token, _ = new_invite(self.server)
        self.assertEqual(fields_of_success(self.register(token))[0], "juliet@localhost")

    def test_replayed_invitation(self):
        """A single-use token cannot be used twice."""
        token, _ = new_invite(self.server)
        self.register(token)
        condition, text = cancel_reason(self.register(token, "romeo"))
        self.assertEqual(condition, "item-not-found")
        self.assertIn("used already", text)

    def test_expired_invitation(self):
        """After its lifetime the token is refused with item-not-found naming the expiry."""
        token, _ = new_invite(self.server, lifetime=60)
        self.server.clock.advance(61)
        condition, text = cancel_reason(self.register(token))
        self.assertEqual((condition, "expired" in text), ("item-not-found", True))

    def test_unknown_and_revoked_invitation(self):
        """A made-up token and a revoked one are refused."""
        from summitd.plugins.registration import store
        self.assertIn("unknown", cancel_reason(self.register("made-up"))[1])
        token, invite = new_invite(self.server)
        result_of(self.server.database.runInteraction("revoke", store.revoke, invite.id))
        self.assertIn("revoked", cancel_reason(self.register(token))[1])

    def test_multi_use_invitation(self):
        """A token of two uses makes two accounts, not three."""
        token, _ = new_invite(self.server, uses=2)
        self.register(token, "juliet")
        self.register(token, "romeo")
        self.assertEqual(cancel_reason(self.register(token, "tybalt"))[0], "item-not-found")
        self.assertEqual(len(result_of(self.server.account_manager.list())), 2)

    def test_invitation_for_a_username(self):
        """An invitation naming a username registers only that name, and keeps it from
        others while it is usable (XEP-0401 §6.2)."""
        token, _ = new_invite(self.server, username="juliet")
        other, _ = new_invite(self.server)
        self.assertEqual(cancel_reason(self.register(other, "juliet"))[0], "conflict")
        self.assertEqual(cancel_reason(self.register(token, "romeo"))[0], "not-acceptable")
        self.assertEqual(fields_of_success(self.register(token, "juliet"))[1], "juliet")

    def test_inviter_gets_a_mutual_subscription(self):
        """With the roster extension, the invitee and the inviter have each other with
        subscription 'both'; the inviter gets a roster push."""
        server = registration_server(extensions=("roster", "registration"), mode="invite")
        add_user(server, "romeo@localhost", PASSWORD)
        romeo = FakeClient(server)
        romeo.login("romeo", PASSWORD, "phone")
        romeo.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        romeo.next()
        token, _ = new_invite(server, inviter="romeo@localhost")
        self.server = server
        self.register(token)
        romeo.expect("<iq type='set'><query xmlns='jabber:iq:roster'>"
                     "<item jid='juliet@localhost' subscription='both'/></query></iq>")


class SignedFormTests(unittest.TestCase):
    def setUp(self):
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.rsa_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        self.server = registration_server(challenges=["signed-form"], signing_keys={
            "fleet-a": {"method": "HMAC-SHA1", "secret": HMAC_SECRET},
            "fleet-b": {"method": "RSA-SHA1", "public_key": pem}})

    def attempt(self, **overrides):
        registrant = Registrant(self.server)
        challenge = registrant.select("open")
        self.assertEqual(challenge["type"], "urn:xmpp:xdata:signature:oauth1")
        overrides.setdefault("timestamp", self.server.clock.seconds())
        return registrant, registrant.form(signed_values(challenge.firstChildElement(), **overrides))

    def test_hmac_signed_form_registers(self):
        """A form signed with the fleet's HMAC-SHA1 key creates the device's account."""
        _, success = self.attempt()
        self.assertEqual(fields_of_success(success)[0], "sensor1@localhost")

    def test_rsa_signed_form_registers(self):
        """RSA-SHA1 with the fleet's private key, checked with its public key."""
        _, success = self.attempt(key="fleet-b", method="RSA-SHA1", private_key=self.rsa_key, secret=None)
        self.assertEqual(fields_of_success(success)[0], "sensor1@localhost")

    def test_wrong_signature(self):
        """A signature made with another secret: bad-request (XEP-0348 §4.1)."""
        condition, text = cancel_reason(self.attempt(secret="not-the-fleet-secret-0000")[1])
        self.assertEqual(condition, "bad-request")
        self.assertIn("signature is wrong", text)

    def test_signature_covers_the_account(self):
        """Changing the username after signing breaks the signature."""
        registrant = Registrant(self.server)
        values = signed_values(registrant.select("open").firstChildElement(), self.server.clock.seconds())
        values["username"] = ["intruder"]
        self.assertIn("signature is wrong", cancel_reason(registrant.form(values))[1])

    def test_unknown_key(self):
        """A consumer key outside the configured set is refused."""
        self.assertIn("unknown signing key", cancel_reason(self.attempt(key="fleet-z")[1])[1])

    def test_old_timestamp(self):
        """A timestamp outside the window is refused."""
        self.server.clock.advance(7200)
        _, answer = self.attempt(timestamp=self.server.clock.seconds() - 3600)
        self.assertIn("oauth_timestamp", cancel_reason(answer)[1])

    def test_replayed_nonce(self):
        """A nonce already used with the key is refused, even with a fresh token."""
        self.attempt(username="sensor1", nonce="same")
        _, answer = self.attempt(username="sensor2", nonce="same")
        self.assertIn("replayed", cancel_reason(answer)[1])

    def test_config_errors(self):
        """Bad key tables are reported with their key paths."""
        with self.assertRaises(ConfigError) as caught:
            parse_config({"signing_keys": {"k": {"method": "PLAINTEXT"}, "h": {"method": "HMAC-SHA1"}},
                          "mode": "sometimes"}, "extensions.registration")
        paths = {path for path, _ in caught.exception.errors}
        self.assertEqual(paths, {"extensions.registration.signing_keys.k.method",
                                 "extensions.registration.signing_keys.h.secret", "extensions.registration.mode"})


class ThirdPartyChallengeTests(unittest.TestCase):
    def setUp(self):
        self.server = registration_server(extensions=("registration", "example_email_challenge"),
                                          challenges=["email"])
        self.example = self.server.extensions.loaded["example_email_challenge"][0]

    def test_email_challenge_in_two_rounds(self):
        """The example extension's step asks for an address, then for the code it sent
        there; then the account form; the account is made."""
        registrant = Registrant(self.server)
        challenge = registrant.select("open")
        self.assertEqual(challenge["type"], "urn:summitd:example:email:0")
        form_type = "urn:summitd:example:email:0"
        again = registrant.form({"FORM_TYPE": form_type, "email": "juliet@example.org"})
        self.assertEqual(again["type"], form_type)
        address, code = self.example.outbox[-1]
        self.assertEqual(address, "juliet@example.org")
        self.assertEqual(registrant.form({"FORM_TYPE": form_type, "code": code})["type"], NS_DATA)
        self.assertEqual(fields_of_success(registrant.account("juliet"))[0], "juliet@localhost")

    def test_wrong_code(self):
        """A wrong code is refused with not-acceptable naming it."""
        registrant = Registrant(self.server)
        registrant.select("open")
        form_type = "urn:summitd:example:email:0"
        registrant.form({"FORM_TYPE": form_type, "email": "juliet@example.org"})
        condition, text = cancel_reason(registrant.form({"FORM_TYPE": form_type, "code": "000000x"}))
        self.assertEqual((condition, "wrong email" in text), ("not-acceptable", True))

    def test_unknown_challenge_name_offers_no_flow(self):
        """A domain naming a challenge nobody provides offers no open flow (fail closed)."""
        server = registration_server(challenges=["captcha-images"])
        flows = [f["id"] for f in next(f for f in Registrant(server).features.elements() if f.uri == NS).elements()]
        self.assertEqual(flows, ["invite"])
