"""Whole-server tests of client streams (summitd.transports.c2s), RFC 6120 §4-§10.

Every test runs on a fake clock with in-memory transports. A bystander, logged in
before each test from another address, must still be served after every bad input
(``assert_bystander_served``): one misbehaving client must not hurt the others.
"""

import base64
from dataclasses import replace

from twisted.trial import unittest

from summitd.core import events
from summitd.core.errors import NS_STREAMS
from summitd.core.xmlstream import StreamParser
from summitd.testing import FakeClient, ScramClient, add_user, make_server
from summitd.transports.c2s import NS_BIND, NS_SASL, NS_SESSION, NS_TLS

NS_PING = "urn:xmpp:ping"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret",
             "mallory": "mallory-secret"}


class Client(FakeClient):
    """A FakeClient that also keeps every byte the server sent it and can send any header."""

    def __init__(self, server, peer="127.0.0.1", port=40000):
        super().__init__(server, peer, port)
        self.raw = b""

    def _pump(self):
        self.raw += self.transport.value()
        super()._pump()

    def start(self, header):
        """Send a raw stream header (the answer may be a stream error, not features)."""
        self._parser = StreamParser(self, max_stanza_size=10 ** 8, max_header_size=10 ** 6)
        self.send(header)

    def received_text(self):
        """Everything the server sent so far, as text."""
        self._pump()
        return self.raw.decode("utf-8")


def header(to="localhost", **attrs):
    """A stream header; ``attrs`` replace or (value None) drop the defaults."""
    values = {"xmlns": "jabber:client", "xmlns:stream": NS_STREAMS, "to": to, "version": "1.0"}
    values.update({k.replace("_", ":"): v for k, v in attrs.items()})
    text = " ".join(f"{k}='{v}'" for k, v in values.items() if v is not None)
    return f"<?xml version='1.0'?><stream:stream {text}>"


def ping(iq_id, to="localhost"):
    return f"<iq type='get' id='{iq_id}' to='{to}'><ping xmlns='{NS_PING}'/></iq>"


def stanza_error(name, condition, error_type, **attrs):
    """A pattern for an error stanza with one defined condition."""
    extra = "".join(f" {k}='{v}'" for k, v in attrs.items())
    return (f"<{name} type='error'{extra}><error type='{error_type}'>"
            f"<{condition} xmlns='{NS_STANZAS}'/></error></{name}>")


def sasl_failure(condition):
    return f"<failure xmlns='{NS_SASL}'><{condition}/></failure>"


def auth_element(mechanism, payload):
    return f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{payload}</auth>"


def start_scram(client, user, password):
    """Send a SCRAM-SHA-256 <auth/> and take the challenge; returns (ScramClient, challenge)."""
    scram = ScramClient(user, password)
    client.send(auth_element("SCRAM-SHA-256", base64.b64encode(scram.first()).decode()))
    return scram, client.expect(f"<challenge xmlns='{NS_SASL}'/>")


class C2STestCase(unittest.TestCase):
    """A server with ping enabled, accounts alice, bob and carol, and carol logged in as the
    bystander from another address."""

    sections = {}

    def setUp(self):
        # Server-initiated pings off: the timer tests count exactly what an idle client gets.
        self.server = make_server(extensions=["ping"], extension_options={"ping": {"ping_interval": 0}},
                                  **self.sections)
        self.clock = self.server.clock
        self.c2s_config = self.server.config.c2s
        for user in ("alice", "bob", "carol"):
            add_user(self.server, f"{user}@localhost", PASSWORDS[user])
        self.bystander = self.logged_in("carol", "bystander", peer="198.51.100.1")

    def client(self, peer="192.0.2.1"):
        return Client(self.server, peer=peer)

    def logged_in(self, user="alice", resource="phone", peer="192.0.2.1", mechanism="SCRAM-SHA-256"):
        """A new client, authenticated and bound."""
        client = self.client(peer)
        client.login(user, PASSWORDS[user], resource, mechanism=mechanism)
        return client

    def available(self, user="alice", resource="phone", peer="192.0.2.1"):
        """A logged-in client that has sent initial presence."""
        client = self.logged_in(user, resource, peer)
        client.send("<presence/>")
        return client

    def authenticated(self, user="alice"):
        """A client that has authenticated and restarted the stream, but not bound."""
        client = self.client()
        client.open_stream()
        self.assertIs(client.authenticate(user, PASSWORDS[user]), True)
        client.open_stream()
        return client

    def assert_bystander_served(self):
        """The bystander's ping to the server is still answered."""
        self.bystander.send(ping("still-there"))
        self.bystander.expect("<iq type='result' id='still-there' from='localhost'/>")

    def assert_stream_error(self, client, condition):
        """``client`` got the stream error and was disconnected; the bystander is fine."""
        error = client.expect_stream_error(condition)
        self.assertIn("</stream:stream>", client.received_text())
        self.assert_bystander_served()
        return error

    def assert_stanza_error(self, client, name, condition, error_type, **attrs):
        """``client`` got an error stanza and is still connected; the bystander is fine."""
        reply = client.expect(stanza_error(name, condition, error_type, **attrs))
        self.assertFalse(client.disconnected)
        self.assert_bystander_served()
        return reply

    def assert_sasl_failure(self, client, condition):
        """``client`` got a SASL failure and is still connected; the bystander is fine."""
        client.expect(sasl_failure(condition))
        self.assertFalse(client.disconnected)
        self.assert_bystander_served()


class StreamHeaderTests(C2STestCase):
    """Opening the stream (RFC 6120 §4.7) and the errors a header can cause (§4.9.3)."""

    def test_response_header(self):
        """The server's header names the domain, a fresh id, version 1.0 and a language."""
        client = self.client()
        client.open_stream()
        self.assertEqual(client.header["from"], "localhost")
        self.assertEqual(client.header["version"], "1.0")
        self.assertEqual(client.header[("http://www.w3.org/XML/1998/namespace", "lang")], "en")
        self.assertGreaterEqual(len(client.header["id"]), 16)
        self.assertNotIn("to", client.header)
        self.assertIn("xmlns='jabber:client'", client.received_text())

    def test_from_is_echoed_as_to(self):
        """The client's 'from' comes back as 'to' (RFC 6120 §4.7.2), escaped."""
        client = self.client()
        client.start(header(**{"from": "alice@localhost"}))
        client.expect(f"<features xmlns='{NS_STREAMS}'/>")
        self.assertEqual(client.header["to"], "alice@localhost")

    def test_new_id_after_restart(self):
        """Every stream restart gets a new stream id (RFC 6120 §4.7.3)."""
        client = self.client()
        client.open_stream()
        first = client.header["id"]
        client.authenticate("alice", PASSWORDS["alice"])
        client.open_stream()
        self.assertNotEqual(client.header["id"], first)

    def test_missing_to_means_first_domain(self):
        """A header without 'to' opens a stream to the first hosted domain."""
        client = self.client()
        client.start(header(to=None))
        client.expect(f"<features xmlns='{NS_STREAMS}'/>")
        self.assertEqual(client.header["from"], "localhost")

    def test_host_unknown(self):
        """A 'to' the server does not host is host-unknown, after a header of our own."""
        client = self.client()
        client.start(header(to="example.org"))
        self.assert_stream_error(client, "host-unknown")
        self.assertEqual(client.header["from"], "localhost")

    def test_host_unknown_for_a_jid(self):
        """A 'to' that is an account JID rather than a domain is host-unknown."""
        client = self.client()
        client.start(header(to="alice@localhost"))
        self.assert_stream_error(client, "host-unknown")

    def test_host_unknown_for_a_malformed_to(self):
        """A 'to' that is not a valid domain is host-unknown."""
        client = self.client()
        client.start(header(to="exa mple..com"))
        self.assert_stream_error(client, "host-unknown")

    def test_invalid_namespace(self):
        """A content namespace other than jabber:client is invalid-namespace."""
        client = self.client()
        client.start(header(xmlns="jabber:server"))
        self.assert_stream_error(client, "invalid-namespace")

    def test_wrong_stream_namespace(self):
        """A stream element outside the stream namespace is invalid-namespace."""
        client = self.client()
        client.start(header(xmlns_stream="http://wrong.namespace.example.org/"))
        self.assert_stream_error(client, "invalid-namespace")

    def test_unsupported_version(self):
        """A version below 1.0 (or none, which means 0.9) is unsupported-version."""
        for version in ("0.9", None, "x.y"):
            client = self.client()
            client.start(header(version=version))
            self.assert_stream_error(client, "unsupported-version")

    def test_newer_minor_version(self):
        """A newer 1.x version is accepted; the server answers with 1.0."""
        client = self.client()
        client.start(header(version="1.5"))
        client.expect(f"<features xmlns='{NS_STREAMS}'/>")
        self.assertEqual(client.header["version"], "1.0")

    def test_bad_xml_in_header(self):
        """A header in another encoding or with a DOCTYPE is refused with its own condition."""
        for data, condition in (
                ("<?xml version='1.0' encoding='ISO-8859-1'?>" + header()[21:], "unsupported-encoding"),
                ("<!DOCTYPE stream:stream>" + header()[21:], "restricted-xml"),
                ("<stream:stream xmlns='jabber:client'>", "bad-namespace-prefix")):
            client = self.client()
            client.start(data)
            self.assert_stream_error(client, condition)

    def test_client_closes_stream(self):
        """The client's </stream:stream> is answered by ours, then the connection closes."""
        client = self.logged_in()
        client.send("</stream:stream>")
        client.expect_nothing()
        self.assertTrue(client.ended)
        self.assertTrue(client.disconnected)
        self.assert_bystander_served()


class FeatureTests(C2STestCase):
    """Stream features in each phase (RFC 6120 §4.3, §5.3.1, §6.3.3, §7.2)."""

    def features(self, require_encryption, tls):
        """The first <stream:features/> of a server configured so."""
        server = make_server(c2s={"require_encryption": require_encryption})
        if tls:
            server.tls_context = object()   # only to see what is advertised; TLS never starts
        client = Client(server)
        return client.open_stream()

    def names(self, features):
        return [(child.uri, child.name) for child in features.elements()]

    def mechanisms(self, features):
        for child in features.elements():
            if child.name == "mechanisms":
                return [str(m) for m in child.elements()]
        return []

    def test_plaintext_mechanisms(self):
        """On plain text: SCRAM-SHA-256 then SCRAM-SHA-1; no PLAIN, no -PLUS, no STARTTLS."""
        features = self.features(require_encryption=False, tls=False)
        self.assertEqual(self.mechanisms(features), ["SCRAM-SHA-256", "SCRAM-SHA-1"])
        self.assertEqual(self.names(features), [(NS_SASL, "mechanisms")])

    def test_starttls_required(self):
        """With require_encryption and a TLS context: <starttls><required/></starttls> only."""
        features = self.features(require_encryption=True, tls=True)
        self.assertEqual(self.names(features), [(NS_TLS, "starttls")])
        starttls = next(features.elements())
        self.assertEqual([c.name for c in starttls.elements()], ["required"])

    def test_starttls_optional(self):
        """Without require_encryption, STARTTLS is offered without <required/>, next to SASL."""
        features = self.features(require_encryption=False, tls=True)
        self.assertEqual(self.names(features), [(NS_TLS, "starttls"), (NS_SASL, "mechanisms")])
        self.assertEqual(list(next(features.elements()).elements()), [])
        self.assertNotIn("PLAIN", self.mechanisms(features))

    def test_sasl_before_required_starttls(self):
        """SASL on plain text when encryption is required is a policy-violation. (The
        config changes after the bystander logged in: new streams require TLS.)"""
        self.server.tls_context = object()
        self.server.config = replace(self.server.config,
                                     c2s=replace(self.c2s_config, require_encryption=True))
        client = self.client()
        self.assertEqual(self.names(client.open_stream()), [(NS_TLS, "starttls")])
        first = ScramClient("alice", PASSWORDS["alice"]).first()
        client.send(auth_element("SCRAM-SHA-256", base64.b64encode(first).decode()))
        self.assert_stream_error(client, "policy-violation")
        self.assertIsNone(client.stream.username)

    def test_starttls_without_certificate(self):
        """<starttls/> when the server has no TLS context gets <failure/> and the stream ends."""
        client = self.client()
        client.open_stream()
        client.send(f"<starttls xmlns='{NS_TLS}'/>")
        client.expect(f"<failure xmlns='{NS_TLS}'/>")
        self.assertTrue(client.disconnected)
        self.assert_bystander_served()

    def test_features_after_authentication(self):
        """After SASL: bind and the optional legacy session, no more mechanisms."""
        client = self.client()
        client.open_stream()
        client.authenticate("alice", PASSWORDS["alice"])
        features = client.open_stream()
        self.assertEqual(self.names(features), [(NS_BIND, "bind"), (NS_SESSION, "session")])
        session = list(features.elements())[1]
        self.assertEqual([c.name for c in session.elements()], ["optional"])

    def test_extension_features(self):
        """Extensions add features through the STREAM_FEATURES event, per phase."""
        from twisted.words.xish import domish
        seen = []

        def feature(stream):
            seen.append(stream.state)
            return [domish.Element(("urn:example:feature", "f"))]

        self.server.hooks.add(events.STREAM_FEATURES, feature)
        features = self.client().open_stream()
        self.assertIn(("urn:example:feature", "f"), self.names(features))
        self.assertEqual(seen, ["connected"])


class SASLTests(C2STestCase):
    """Authentication (RFC 6120 §6, RFC 5802)."""

    def opened(self, peer="192.0.2.1"):
        client = self.client(peer)
        client.open_stream()
        return client

    def test_scram_sha_256(self):
        """SCRAM-SHA-256 logs in; the server proves it knows the password too."""
        client = self.logged_in(mechanism="SCRAM-SHA-256")
        self.assertEqual(client.jid, "alice@localhost/phone")

    def test_scram_sha_1(self):
        """SCRAM-SHA-1 (mandatory to implement, RFC 5802 §4) logs in."""
        client = self.logged_in(mechanism="SCRAM-SHA-1")
        self.assertEqual(client.jid, "alice@localhost/phone")

    def test_plain_refused_on_plaintext(self):
        """PLAIN is not offered on plain text and is refused when tried; SCRAM still works."""
        client = self.opened()
        result = client.authenticate("alice", PASSWORDS["alice"], mechanism="PLAIN")
        self.assertEqual((result.name, [c.name for c in result.elements()]),
                         ("failure", ["invalid-mechanism"]))
        self.assertIsNone(client.stream.username)
        self.assert_bystander_served()
        self.assertIs(client.authenticate("alice", PASSWORDS["alice"]), True)

    def test_wrong_password(self):
        """A wrong password is <failure><not-authorized/></failure>; the stream stays open."""
        client = self.opened()
        result = client.authenticate("alice", "wrong")
        self.assertEqual([c.name for c in result.elements()], ["not-authorized"])
        self.assertFalse(client.disconnected)
        self.assert_bystander_served()

    def test_unknown_user_looks_like_wrong_password(self):
        """An unknown user gets the same challenge shape and the same failure as a wrong
        password, so accounts cannot be enumerated."""
        answers = {}
        for user in ("alice", "nobody"):
            client = self.opened()
            scram, challenge = start_scram(client, user, "wrong")
            final = scram.final(base64.b64decode(str(challenge)))
            attrs = scram.server_attributes
            client.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final).decode()}</response>")
            answers[user] = (sorted(attrs), attrs["i"], len(base64.b64decode(attrs["s"])),
                             client.next().toXml())
        self.assertEqual(answers["alice"], answers["nobody"])
        self.assertIn("not-authorized", answers["nobody"][3])
        self.assert_bystander_served()

    def test_retries_allowed(self):
        """Two wrong passwords, then the right one, on the same stream (RFC 6120 §6.4.5)."""
        client = self.opened()
        for _ in range(2):
            self.assertIsNot(client.authenticate("alice", "wrong"), True)
        self.assertIs(client.authenticate("alice", PASSWORDS["alice"]), True)

    def test_too_many_failures_close_the_stream(self):
        """The fifth failure on one stream is followed by a policy-violation stream error."""
        client = self.opened()
        for _ in range(4):
            self.assertIsNot(client.authenticate("alice", "wrong"), True)
            self.assertFalse(client.disconnected)
        result = client.authenticate("alice", "wrong")
        self.assertEqual(result.name, "failure")
        self.assert_stream_error(client, "policy-violation")

    def test_invalid_mechanism(self):
        """An unknown mechanism, or none, is invalid-mechanism."""
        for element in (auth_element("DIGEST-MD5", "="), f"<auth xmlns='{NS_SASL}'/>",
                        auth_element("SCRAM-SHA-256-PLUS", "=")):
            client = self.opened()
            client.send(element)
            self.assert_sasl_failure(client, "invalid-mechanism")

    def test_incorrect_encoding_in_auth(self):
        """An initial response that is not strict base64 is incorrect-encoding."""
        client = self.opened()
        client.send(auth_element("SCRAM-SHA-256", "not base64!"))
        self.assert_sasl_failure(client, "incorrect-encoding")
        self.assertIs(client.authenticate("alice", PASSWORDS["alice"]), True)

    def test_incorrect_encoding_in_response(self):
        """A response that is not base64 is incorrect-encoding and ends the exchange."""
        client = self.opened()
        start_scram(client, "alice", PASSWORDS["alice"])
        client.send(f"<response xmlns='{NS_SASL}'>%%%</response>")
        self.assert_sasl_failure(client, "incorrect-encoding")
        self.assertIsNone(client.stream.username)

    def test_abort(self):
        """<abort/> mid-exchange is answered with <aborted/>; a new exchange then works."""
        client = self.opened()
        start_scram(client, "alice", PASSWORDS["alice"])
        client.send(f"<abort xmlns='{NS_SASL}'/>")
        self.assert_sasl_failure(client, "aborted")
        self.assertIs(client.authenticate("alice", PASSWORDS["alice"]), True)

    def test_response_without_auth(self):
        """A <response/> with no exchange in progress is a policy-violation."""
        client = self.opened()
        client.send(f"<response xmlns='{NS_SASL}'>=</response>")
        self.assert_stream_error(client, "policy-violation")

    def test_stanza_before_authentication(self):
        """A stanza before SASL is not-authorized (RFC 6120 §4.9.3.12) and is not routed."""
        bob = self.logged_in("bob", "desk", peer="192.0.2.2")
        client = self.opened()
        client.send("<message to='bob@localhost/desk'><body>spam</body></message>")
        self.assert_stream_error(client, "not-authorized")
        bob.expect_nothing()

    def test_unknown_element_before_authentication(self):
        """A top-level element in an unknown namespace is unsupported-stanza-type."""
        client = self.opened()
        client.send("<enable xmlns='urn:example:unknown'/>")
        self.assert_stream_error(client, "unsupported-stanza-type")


class RateLimitTests(C2STestCase):
    """Failed logins are limited per address and per account (RFC 6120 §13.12)."""

    sections = {"auth": {"failures_per_account": 2, "failures_per_address": 3,
                         "failure_refill_seconds": 60}}

    def attempt(self, user, password, peer):
        """One authentication on a new stream from ``peer``: True or the failure element."""
        client = self.client(peer)
        client.open_stream()
        return client.authenticate(user, password)

    def assert_temporary_failure(self, result):
        self.assertIsNot(result, True)
        self.assertEqual([c.name for c in result.elements()][0], "temporary-auth-failure")

    def test_per_address(self):
        """After the burst of failures from one address, even a right password from there
        is temporary-auth-failure; other addresses are unaffected; the refill restores it."""
        for user in ("nobody1", "nobody2", "nobody3"):
            self.assertIsNot(self.attempt(user, "x", "203.0.113.5"), True)
        self.assert_temporary_failure(self.attempt("bob", PASSWORDS["bob"], "203.0.113.5"))
        self.assertIs(self.attempt("bob", PASSWORDS["bob"], "203.0.113.6"), True)
        self.clock.advance(60)
        self.assertIs(self.attempt("bob", PASSWORDS["bob"], "203.0.113.5"), True)
        self.assert_bystander_served()

    def test_per_account(self):
        """After the burst of failures for one account (from anywhere), even the right
        password is temporary-auth-failure for it; other accounts are unaffected; the refill
        restores it."""
        for peer in ("203.0.113.1", "203.0.113.2"):
            self.assertIsNot(self.attempt("alice", "wrong", peer), True)
        self.assert_temporary_failure(self.attempt("alice", PASSWORDS["alice"], "203.0.113.3"))
        self.assertIs(self.attempt("bob", PASSWORDS["bob"], "203.0.113.3"), True)
        self.clock.advance(59)
        self.assert_temporary_failure(self.attempt("alice", PASSWORDS["alice"], "203.0.113.4"))
        self.clock.advance(1)
        self.assertIs(self.attempt("alice", PASSWORDS["alice"], "203.0.113.4"), True)
        self.assert_bystander_served()

    def test_limited_stream_stays_open(self):
        """A temporary-auth-failure does not close the stream by itself."""
        for user in ("nobody1", "nobody2", "nobody3"):
            self.attempt(user, "x", "203.0.113.5")
        client = self.client("203.0.113.5")
        client.open_stream()
        self.assert_temporary_failure(client.authenticate("bob", PASSWORDS["bob"]))
        self.assertFalse(client.disconnected)
        self.assert_bystander_served()


class BindingTests(C2STestCase):
    """Resource binding (RFC 6120 §7) and the legacy session (RFC 3921 §3)."""

    def bind_iq(self, resource_xml):
        return f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'>{resource_xml}</bind></iq>"

    def test_requested_resource(self):
        """The requested resource is granted and the full JID returned."""
        client = self.authenticated()
        self.assertEqual(client.bind("laptop"), "alice@localhost/laptop")
        self.assertIsNotNone(self.server.router.session(client.stream.session.jid))

    def test_generated_resource(self):
        """Without a resource the server makes up a unique one."""
        first = self.authenticated().bind()
        second = self.authenticated().bind()
        self.assertTrue(first.startswith("alice@localhost/"))
        self.assertGreater(len(first), len("alice@localhost/"))
        self.assertNotEqual(first, second)

    def test_empty_resource_element(self):
        """An empty <resource/> is treated as no resource."""
        client = self.authenticated()
        client.send(self.bind_iq("<resource/>"))
        reply = client.expect(f"<iq type='result' id='b'><bind xmlns='{NS_BIND}'><jid/></bind></iq>")
        self.assertTrue(str(next(next(reply.elements()).elements())).startswith("alice@localhost/"))

    def test_invalid_resource(self):
        """A resource PRECIS refuses (a control character, too long) is bad-request and the
        client may try again."""
        for resource in ("a\u0085b", "r" * 1024):
            client = self.authenticated()
            client.send(self.bind_iq(f"<resource>{resource}</resource>"))
            self.assert_stanza_error(client, "iq", "bad-request", "modify", id="b")
            self.assertEqual(client.bind("ok"), "alice@localhost/ok")

    def test_session_before_bind(self):
        """The legacy session IQ before binding gets an empty result."""
        client = self.authenticated()
        client.send(f"<iq type='set' id='s'><session xmlns='{NS_SESSION}'/></iq>")
        client.expect("<iq type='result' id='s'/>")

    def test_session_after_bind(self):
        """The legacy session IQ after binding (the usual order) gets an empty result too,
        addressed to the server or not."""
        client = self.logged_in()
        client.send(f"<iq type='set' id='s1'><session xmlns='{NS_SESSION}'/></iq>")
        client.expect("<iq type='result' id='s1'/>")
        client.send(f"<iq type='set' id='s2' to='localhost'><session xmlns='{NS_SESSION}'/></iq>")
        client.expect("<iq type='result' id='s2'/>")
        self.assertFalse(client.disconnected)

    def test_other_iq_before_bind(self):
        """Any other IQ before binding is not-authorized."""
        client = self.authenticated()
        client.send(ping("p"))
        self.assert_stream_error(client, "not-authorized")

    def test_message_before_bind(self):
        """A message before binding is not-authorized."""
        client = self.authenticated()
        client.send("<message to='bob@localhost'><body>x</body></message>")
        self.assert_stream_error(client, "not-authorized")

    def test_same_full_jid_replaces(self):
        """A second login with the same full JID replaces the first: the old stream gets the
        conflict stream error, the new one gets the messages."""
        old = self.logged_in(resource="phone")
        new = self.logged_in(resource="phone", peer="192.0.2.9")
        self.assert_stream_error(old, "conflict")
        bob = self.logged_in("bob", "desk", peer="192.0.2.2")
        bob.send("<message to='alice@localhost/phone' id='m'><body>hi</body></message>")
        new.expect("<message from='bob@localhost/desk' to='alice@localhost/phone' id='m'><body>hi</body></message>")
        old.expect_nothing()
        old.lose_connection()
        bob.send("<message to='alice@localhost/phone' id='m2'><body>still</body></message>")
        new.expect("<message id='m2'/>")

    def test_bound_session_has_no_handshake_deadline(self):
        """Once bound, the handshake timeout no longer applies."""
        client = self.logged_in()
        self.clock.advance(self.c2s_config.handshake_timeout + 1)
        client.send(ping("p"))
        client.expect("<iq type='result' id='p'/>")
        self.assertFalse(client.disconnected)


class StanzaTests(C2STestCase):
    """Stanzas from bound clients (RFC 6120 §8, §10; RFC 6121 §8)."""

    def setUp(self):
        super().setUp()
        self.alice = self.logged_in("alice", "phone")
        self.bob = self.available("bob", "desk", peer="192.0.2.2")

    def test_from_is_stamped(self):
        """The server sets 'from' to the sender's full JID."""
        self.alice.send("<message to='bob@localhost' id='m1'><body>hi</body></message>")
        self.bob.expect("<message from='alice@localhost/phone' id='m1'/>")

    def test_bare_from_is_accepted(self):
        """A 'from' with the sender's bare JID is accepted and replaced by the full JID."""
        self.alice.send("<message from='alice@localhost' to='bob@localhost' id='m1'><body>hi</body></message>")
        self.bob.expect("<message from='alice@localhost/phone' id='m1'/>")

    def test_invalid_from(self):
        """A 'from' naming anyone else, another resource or no valid JID is invalid-from,
        and the stanza is not delivered."""
        for claimed in ("bob@localhost", "alice@localhost/other", "alice@@localhost", "localhost"):
            client = self.logged_in("alice", "tablet")
            client.send(f"<message from='{claimed}' to='bob@localhost'><body>x</body></message>")
            self.assert_stream_error(client, "invalid-from")
        self.bob.expect_nothing()

    def test_iq_without_id(self):
        """An IQ without id is bad-request."""
        self.alice.send(f"<iq type='get' to='localhost'><ping xmlns='{NS_PING}'/></iq>")
        self.assert_stanza_error(self.alice, "iq", "bad-request", "modify")

    def test_iq_with_bad_type(self):
        """An IQ whose type is not get/set/result/error is bad-request."""
        self.alice.send(f"<iq type='poke' id='t' to='localhost'><ping xmlns='{NS_PING}'/></iq>")
        self.assert_stanza_error(self.alice, "iq", "bad-request", "modify", id="t")

    def test_iq_unhandled_namespace(self):
        """An IQ nobody handles is service-unavailable, to the server or to the account."""
        for to in (" to='localhost'", "", " to='alice@localhost'"):
            self.alice.send(f"<iq type='get' id='u'{to}><query xmlns='urn:example:nothing'/></iq>")
            self.assert_stanza_error(self.alice, "iq", "service-unavailable", "cancel", id="u")

    def test_iq_with_two_children(self):
        """An IQ get with two payloads is bad-request (RFC 6120 §8.2.3)."""
        self.alice.send(f"<iq type='get' id='two' to='localhost'><ping xmlns='{NS_PING}'/>"
                        f"<ping xmlns='{NS_PING}'/></iq>")
        self.assert_stanza_error(self.alice, "iq", "bad-request", "modify", id="two")

    def test_iq_with_no_child(self):
        """An IQ get without a payload is bad-request."""
        self.alice.send("<iq type='get' id='none' to='localhost'/>")
        self.assert_stanza_error(self.alice, "iq", "bad-request", "modify", id="none")

    def test_iq_to_full_jid(self):
        """An IQ to a full JID reaches that session and its answer comes back."""
        self.alice.send(f"<iq type='get' id='q' to='bob@localhost/desk'><ping xmlns='{NS_PING}'/></iq>")
        self.bob.expect("<iq type='get' id='q' from='alice@localhost/phone'/>")
        self.bob.send("<iq type='result' id='q' to='alice@localhost/phone'/>")
        self.alice.expect("<iq type='result' id='q' from='bob@localhost/desk'/>")

    def test_ping_to_own_account(self):
        """An IQ without 'to' is for the sender's own account (RFC 6120 §10.3.3)."""
        self.alice.send(f"<iq type='get' id='self'><ping xmlns='{NS_PING}'/></iq>")
        reply = self.alice.expect("<iq type='result' id='self' to='alice@localhost/phone'/>")
        self.assertIn(reply.getAttribute("from"), (None, "alice@localhost"))   # RFC 6120 §8.1.2.1

    def test_message_to_bare_jid(self):
        """A message to a bare JID goes to every available resource of top priority, not to
        a bound resource that sent no presence."""
        other = self.available("bob", "laptop", peer="192.0.2.3")
        silent = self.logged_in("bob", "silent", peer="192.0.2.4")
        self.alice.send("<message to='bob@localhost' type='chat' id='c'><body>hello</body></message>")
        for session in (self.bob, other):
            session.expect("<message to='bob@localhost' type='chat' id='c'><body>hello</body></message>")
        silent.expect_nothing()

    def test_unavailable_presence_stops_delivery(self):
        """After unavailable presence, a bare-JID message is no longer delivered there."""
        self.bob.send("<presence type='unavailable'/>")
        self.alice.send("<message to='bob@localhost' id='u'><body>x</body></message>")
        self.assert_stanza_error(self.alice, "message", "service-unavailable", "cancel",
                                 id="u", **{"from": "bob@localhost"})
        self.bob.expect_nothing()

    def test_message_to_offline_user(self):
        """A message to a user with no session is bounced with service-unavailable."""
        self.alice.send("<message to='carol2@localhost' id='o'><body>x</body></message>")
        self.assert_stanza_error(self.alice, "message", "service-unavailable", "cancel",
                                 id="o", **{"from": "carol2@localhost"})

    def test_message_to_remote_domain(self):
        """Without s2s, a message to another domain is remote-server-not-found."""
        self.alice.send("<message to='juliet@capulet.example' id='r'><body>x</body></message>")
        self.assert_stanza_error(self.alice, "message", "remote-server-not-found", "cancel",
                                 id="r", **{"from": "juliet@capulet.example"})

    def test_message_to_malformed_jid(self):
        """A message to a malformed JID is jid-malformed."""
        self.alice.send("<message to='a@@b' id='j'><body>x</body></message>")
        self.assert_stanza_error(self.alice, "message", "jid-malformed", "modify", id="j")

    def test_error_is_not_answered_with_error(self):
        """An error message to an offline user is dropped, not bounced (no error loops)."""
        self.alice.send("<message to='nobody@localhost' type='error' id='e'/>")
        self.alice.expect_nothing()
        self.assert_bystander_served()

    def test_unsupported_top_level_element(self):
        """A top-level element that is no stanza is unsupported-stanza-type."""
        self.alice.send("<foo xmlns='urn:example:unknown'/>")
        self.assert_stream_error(self.alice, "unsupported-stanza-type")

    def test_stanza_in_wrong_namespace(self):
        """A <message/> outside jabber:client is not a stanza: unsupported-stanza-type."""
        self.alice.send("<message xmlns='jabber:server' to='bob@localhost'><body>x</body></message>")
        self.assert_stream_error(self.alice, "unsupported-stanza-type")
        self.bob.expect_nothing()

    def test_bad_xml_after_binding(self):
        """Restricted or broken XML from a bound client ends only that stream, and the
        stanza in which it was found is not delivered."""
        for body, condition in (
                ("<message to='bob@localhost'><!-- c --></message>", "restricted-xml"),
                ("<message to='bob@localhost'></iq>", "not-well-formed"),
                ("<message to='bob@localhost'><x:y/></message>", "bad-namespace-prefix"),
                ("some text", "not-well-formed"),
                ("<message to='bob@localhost'>" + "<a>" * 40, "policy-violation"),
                ("<message to='bob@localhost'><body>" + "x" * 300000 + "</body></message>",
                 "policy-violation")):
            client = self.logged_in("alice", "tablet")
            client.send(body)
            self.assert_stream_error(client, condition)
        self.bob.expect_nothing()


class TimerTests(C2STestCase):
    """Handshake deadline, idle timeout and whitespace keepalives, on the fake clock."""

    def test_handshake_timeout(self):
        """A client that has not bound within handshake_timeout gets connection-timeout."""
        client = self.client()
        client.open_stream()
        self.clock.advance(self.c2s_config.handshake_timeout - 1)
        client.expect_nothing()
        self.assertFalse(client.disconnected)
        self.clock.advance(1)
        self.assert_stream_error(client, "connection-timeout")

    def test_handshake_timeout_when_authenticated(self):
        """Authenticating is not enough: the deadline is for binding."""
        client = self.authenticated()
        self.clock.advance(self.c2s_config.handshake_timeout)
        self.assert_stream_error(client, "connection-timeout")

    def test_handshake_timeout_without_header(self):
        """A connection that never sends a header gets a header and connection-timeout."""
        client = self.client()
        client.start("")
        self.clock.advance(self.c2s_config.handshake_timeout)
        self.assert_stream_error(client, "connection-timeout")
        self.assertEqual(client.header["from"], "localhost")

    def test_idle_timeout(self):
        """A bound client that sends nothing for idle_timeout gets connection-timeout; one
        that keeps talking does not."""
        client = self.logged_in()
        half = self.c2s_config.idle_timeout / 2
        self.clock.advance(half)
        self.assert_bystander_served()
        self.clock.advance(half - 1)
        self.assertFalse(client.disconnected)
        self.clock.advance(1)
        self.assert_stream_error(client, "connection-timeout")

    def test_whitespace_keeps_alive(self):
        """Whitespace from the client counts as activity."""
        client = self.logged_in()
        for _ in range(3):
            self.clock.advance(self.c2s_config.idle_timeout - 1)
            client.send(" ")
        self.assertFalse(client.disconnected)
        client.send(ping("p"))
        client.expect("<iq type='result' id='p'/>")

    def test_keepalive(self):
        """After keepalive_interval without output, the server sends one space."""
        client = self.logged_in()
        client.expect_nothing()
        interval = self.c2s_config.keepalive_interval
        self.clock.advance(interval - 1)
        self.assertEqual(client.transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(client.transport.value(), b" ")
        client.transport.clear()
        self.clock.advance(interval)
        self.assertEqual(client.transport.value(), b" ")

    def test_no_keepalive_while_busy(self):
        """A client that is sent stanzas gets no whitespace in between."""
        client = self.logged_in()
        step = self.c2s_config.keepalive_interval / 2
        for n in range(4):
            self.clock.advance(step)
            client.send(ping(f"p{n}"))
            client.expect(f"<iq type='result' id='p{n}'/>")
            self.assertEqual(client.transport.value(), b"")

    def test_timers_stop_on_disconnect(self):
        """After the connection is lost nothing more is written and no error is sent."""
        client = self.logged_in()
        client.lose_connection()
        self.clock.advance(self.c2s_config.idle_timeout * 2)
        self.assertEqual(client.transport.value(), b"")


class DisconnectTests(C2STestCase):
    """What happens to a session when its connection goes away."""

    def test_unclean_disconnect_unbinds(self):
        """A vanished client is unbound: a message to its full JID bounces."""
        alice = self.available("alice", "phone")
        closed = []
        self.server.hooks.add(events.SESSION_CLOSED, closed.append)
        alice.lose_connection()
        self.assertEqual([str(s.jid) for s in closed], ["alice@localhost/phone"])
        self.assertEqual(self.server.router.session_count(), 1)
        bob = self.logged_in("bob", "desk", peer="192.0.2.2")
        bob.send("<message to='alice@localhost/phone' id='gone'><body>x</body></message>")
        self.assert_stanza_error(bob, "message", "service-unavailable", "cancel", id="gone",
                                 **{"from": "alice@localhost/phone"})

    def test_stream_error_unbinds(self):
        """A session closed by a stream error stops receiving at once: messages to it bounce
        instead of vanishing into the closed stream."""
        alice = self.logged_in("alice", "phone")
        alice.send("<foo xmlns='urn:example:bad'/>")
        self.assert_stream_error(alice, "unsupported-stanza-type")
        bob = self.logged_in("bob", "desk", peer="192.0.2.2")
        bob.send("<message to='alice@localhost/phone' id='after'><body>x</body></message>")
        self.assert_stanza_error(bob, "message", "service-unavailable", "cancel", id="after")

    def test_disconnect_during_authentication(self):
        """A connection lost in the middle of SASL leaves nothing behind."""
        client = self.client()
        client.open_stream()
        start_scram(client, "alice", PASSWORDS["alice"])
        client.lose_connection()
        self.assertEqual(self.server.router.session_count(), 1)
        self.clock.advance(self.c2s_config.handshake_timeout)
        self.assertEqual(client.transport.value(), b"")
        self.assert_bystander_served()


class IsolationTests(C2STestCase):
    """No stream error, in any phase, shows a client anything of another user's."""

    # (phase the offender reaches first, what it sends, the stream error it must get)
    CASES = [
        ("connected", header(to="example.org"), "host-unknown"),
        ("connected", header(xmlns="jabber:server"), "invalid-namespace"),
        ("connected", header(version="0.9"), "unsupported-version"),
        ("connected", "<!DOCTYPE x>" + header()[21:], "restricted-xml"),
        ("connected", "<?xml version='1.0' encoding='UTF-16'?>", "unsupported-encoding"),
        ("connected", "<foo/>", "invalid-namespace"),
        ("open", "<message to='alice@localhost'><body>x</body></message>", "not-authorized"),
        ("open", "<!-- x -->", "restricted-xml"),
        ("open", "<a></b>", "not-well-formed"),
        ("open", "<x:y/>", "bad-namespace-prefix"),
        ("open", f"<response xmlns='{NS_SASL}'/>", "policy-violation"),
        ("open", "<foo xmlns='urn:x'/>", "unsupported-stanza-type"),
        ("open", "text", "not-well-formed"),
        ("authenticated", "<message to='alice@localhost'/>", "not-authorized"),
        ("authenticated", ping("p"), "not-authorized"),
        ("bound", "<message from='alice@localhost/guess' to='bob@localhost'/>", "invalid-from"),
        ("bound", "<message from='alice@localhost' to='bob@localhost'/>", "invalid-from"),
        ("bound", "<message><body>" + "x" * 300000, "policy-violation"),
        ("bound", "<message>" + "<a>" * 100, "policy-violation"),
        ("bound", "<presence><?pi?></presence>", "restricted-xml"),
        ("bound", "<iq xmlns='urn:x'/>", "unsupported-stanza-type"),
        ("bound", "</stream:stream><message/>", None),
    ]

    def offender(self, phase):
        """A client of mallory's in ``phase``, from an address of its own."""
        client = self.client(peer="203.0.113.66")
        if phase == "open":
            client.open_stream()
        elif phase == "authenticated":
            client.open_stream()
            self.assertIs(client.authenticate("mallory", PASSWORDS["mallory"]), True)
            client.open_stream()
        elif phase == "bound":
            client.login("mallory", PASSWORDS["mallory"], "evil")
        else:
            client.start("")
        return client

    def test_no_stream_error_leaks_other_users_data(self):
        """Alice has a half-sent secret message in flight and Bob is logged in; for every kind
        of stream error, the offender's whole output holds nothing of theirs; afterwards
        Alice's message reaches Bob intact."""
        add_user(self.server, "mallory@localhost", PASSWORDS["mallory"])
        alice = self.available("alice", "secret-resource-4711")
        bob = self.available("bob", "hidden-desk-0815", peer="192.0.2.2")
        alice.send("<message to='bob@localhost/hidden-desk-0815' id='s'><body>TOP-SECRET-")
        secrets = ["secret-resource-4711", "hidden-desk-0815", "TOP-SECRET", "bystander",
                   PASSWORDS["alice"], PASSWORDS["bob"], alice.header["id"], bob.header["id"],
                   self.bystander.header["id"]]
        for phase, data, condition in self.CASES:
            client = self.offender(phase)
            client.send(data)
            if condition is None:
                client.expect_nothing()
                self.assertTrue(client.disconnected)
            else:
                client.expect_stream_error(condition)
            output = client.received_text()
            for secret in secrets:
                self.assertNotIn(secret, output, f"{phase} {data[:40]!r} leaked {secret!r}")
            self.assert_bystander_served()
        alice.send("9f2c</body></message>")
        bob.expect("<message from='alice@localhost/secret-resource-4711' id='s'>"
                   "<body>TOP-SECRET-9f2c</body></message>")
        self.assertFalse(alice.disconnected or bob.disconnected)
