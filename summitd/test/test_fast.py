"""FAST (XEP-0484) with HT-SHA-256-*: tokens issued on request, one-round-trip logins, bad,
expired, replayed and foreign tokens, rotation with the two slots, invalidation; and over
real TLS the channel-bound HT-SHA-256-EXPR and -ENDP with SCRAM-SHA-256-PLUS in SASL2."""

import base64
import hashlib
import re
import socket

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet import defer, threads
from twisted.trial import unittest

from summitd.synchronous import result_of
from summitd.testing.loopback import start_loopback_service
from summitd.testing.scram_client import ScramClient
from summitd.test.test_sasl2_support import (
    AGENT, NS_BIND2, NS_FAST, NS_SASL2, OTHER_AGENT, PASSWORD, Sasl2TestCase, b64, child, ht, text_of)

LIFETIME = 1000
REQUEST = f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>"


class FastTests(Sasl2TestCase):
    options = {"sasl2": {"fast_token_lifetime": LIFETIME}}

    def token(self, agent=AGENT, request=REQUEST):
        """Log in with the password asking for a token; returns the <token/> element."""
        client = self.client()
        success = client.logged_in("alice", inline=request, agent=agent)
        return child(success, NS_FAST, "token")

    def fast(self, token, **kwargs):
        client = self.client()
        client.open()
        return client, client.fast_login("alice", token, **kwargs)

    def test_token_issued_on_request(self):
        """<request-token/> gets <token token expiry/> in <success/>: 256 bits, XEP-0082 time."""
        token = self.token()
        self.assertEqual(token["expiry"], "1970-01-01T00:16:40Z")
        self.assertEqual(len(base64.urlsafe_b64decode(token["token"] + "=")), 32)

    def test_no_token_unasked(self):
        """A login without <request-token/> gets none."""
        self.assertIsNone(self.token(request=""))

    def test_no_token_for_an_unknown_mechanism(self):
        """A token is only issued for a FAST mechanism the server offers."""
        self.assertIsNone(self.token(request=f"<request-token xmlns='{NS_FAST}' mechanism='HT-MD5-NONE'/>"))

    def test_login_with_token_in_one_round_trip(self):
        """<authenticate/> with the token (and Bind 2) is answered by <success/> directly, with
        the Responder HMAC as additional data; the session is bound."""
        token = self.token()["token"]
        client, success = self.fast(token, inline=f"<bind xmlns='{NS_BIND2}'><tag>fast</tag></bind>")
        self.assertEqual(success.name, "success")
        self.assertTrue(text_of(success, NS_SASL2, "authorization-identifier").startswith("alice@localhost/fast/"))
        client.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        self.assertEqual(client.stream.state, "bound")

    def test_bad_token(self):
        """A token the server never issued: not-authorized."""
        self.token()
        _, outcome = self.fast("not-the-token")
        self.assertFailure(outcome, "not-authorized")

    def test_expired_token(self):
        """After its expiry the token fails with credentials-expired (XEP-0484 §rules-servers)."""
        token = self.token()["token"]
        self.clock.advance(LIFETIME + 1)
        _, outcome = self.fast(token)
        self.assertFailure(outcome, "credentials-expired")

    def test_replayed_token(self):
        """With 'count', a count not above the last accepted one is a replay: refused."""
        token = self.token()["token"]
        self.assertEqual(self.fast(token, count=1)[1].name, "success")
        self.assertFailure(self.fast(token, count=1)[1], "not-authorized")
        self.assertEqual(self.fast(token, count=2)[1].name, "success")

    def test_invalid_count(self):
        """A count that is not a number is a malformed request."""
        token = self.token()["token"]
        self.assertFailure(self.fast(token, count="x")[1], "malformed-request")

    def test_token_of_another_installation(self):
        """Tokens belong to one user-agent id: another installation cannot use it."""
        token = self.token(agent=AGENT)["token"]
        _, outcome = self.fast(token, agent=OTHER_AGENT)
        self.assertFailure(outcome, "not-authorized")

    def test_token_mechanism_without_fast_element(self):
        """An HT mechanism without <fast/> is not a FAST login: invalid-mechanism."""
        token = self.token()["token"]
        client = self.client()
        client.open()
        client.authenticate("HT-SHA-256-NONE", b"alice\0" + ht(token, b"Initiator"))
        self.assertFailure(client.next(), "invalid-mechanism")

    def test_unused_token_replaced_by_newer(self):
        """A new token replaces one that was never used (XEP-0484 §token-rotation)."""
        first = self.token()["token"]
        second = self.token()["token"]
        self.assertFailure(self.fast(first)[1], "not-authorized")
        self.assertEqual(self.fast(second)[1].name, "success")

    def test_rotation(self):
        """Past half its lifetime a FAST login brings a new token. A client that missed it
        logs in with the old one and gets another (the unused one is replaced); once the
        newest is used, the old one is over."""
        old = self.token()["token"]
        self.assertIsNone(child(self.fast(old)[1], NS_FAST, "token"))
        self.clock.advance(LIFETIME * 0.6)
        missed = child(self.fast(old)[1], NS_FAST, "token")
        self.assertIsNotNone(missed)
        newest = child(self.fast(old)[1], NS_FAST, "token")
        self.assertNotEqual(newest["token"], missed["token"])
        self.assertFailure(self.fast(missed["token"])[1], "not-authorized")
        self.assertEqual(self.fast(newest["token"])[1].name, "success")
        self.assertFailure(self.fast(old)[1], "not-authorized")

    def test_invalidate(self):
        """<fast invalidate='true'/> logs in and ends the token; no new one is sent."""
        token = self.token()["token"]
        self.clock.advance(LIFETIME * 0.6)
        _, success = self.fast(token, invalidate=True)
        self.assertEqual(success.name, "success")
        self.assertIsNone(child(success, NS_FAST, "token"))
        self.assertFailure(self.fast(token)[1], "not-authorized")

    def test_token_not_stored(self):
        """The database holds a seed, never the token."""
        token = self.token()["token"]
        rows = result_of(self.server.database.runInteraction(
            "t", lambda txn: txn.execute("SELECT * FROM sasl2_fast_tokens").fetchall()))
        self.assertEqual(len(rows), 1)
        self.assertNotIn(token, repr(rows))

    def test_account_deletion_removes_tokens(self):
        """Deleting the account deletes its tokens."""
        self.token()
        result_of(self.server.account_manager.delete("alice@localhost"))
        rows = result_of(self.server.database.runInteraction(
            "t", lambda txn: txn.execute("SELECT COUNT(*) FROM sasl2_fast_tokens").fetchone()[0]))
        self.assertEqual(rows, 0)


# -- over real TLS: channel binding ---------------------------------------------------------------

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")


class _Wire:
    """A blocking direct-TLS client connection reading up to markers."""

    def __init__(self, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.settimeout(None)
        self.conn = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), sock)
        self.conn.set_tlsext_host_name(b"localhost")
        self.conn.set_connect_state()
        self.conn.do_handshake()
        self.buffer = b""

    def cb_data(self, cb_type):
        if cb_type == "tls-exporter":
            return self.conn.export_keying_material(b"EXPORTER-Channel-Binding", 32)
        der = self.conn.get_peer_certificate().to_cryptography().public_bytes(Encoding.DER)
        return hashlib.sha256(der).digest()

    def send(self, text):
        self.conn.sendall(text if isinstance(text, bytes) else text.encode())

    def read_until(self, marker):
        while marker not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}; got {self.buffer!r}")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    def close(self):
        self.conn.sock_shutdown(socket.SHUT_RDWR)


def _content(xml, name):
    return base64.b64decode(re.search(rb"<%s>([^<]*)</%s>" % (name, name), xml).group(1))


def scram_plus_then_fast(port, mechanism, cb_type):
    """SCRAM-SHA-256-PLUS over SASL2 asking for a ``mechanism`` token, then a second
    connection logging in with it; returns (features, verified, fast success XML)."""
    wire = _Wire(port)
    try:
        wire.send(HEADER)
        features = wire.read_until(b"</stream:features>")
        scram = ScramClient("alice", PASSWORD, "sha256", cb_type=cb_type, cb_data=wire.cb_data(cb_type))
        wire.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='SCRAM-SHA-256-PLUS'>"
                  f"<initial-response>{b64(scram.first())}</initial-response>"
                  f"<user-agent id='{AGENT}'/><request-token xmlns='{NS_FAST}' mechanism='{mechanism}'/>"
                  "</authenticate>")
        challenge = wire.read_until(b"</challenge>")
        final = scram.final(base64.b64decode(re.search(rb">([^<]*)</challenge>", challenge).group(1)))
        wire.send(f"<response xmlns='{NS_SASL2}'>{b64(final)}</response>")
        success = wire.read_until(b"</success>")
        verified = scram.verify(_content(success, b"additional-data"))
        token = re.search(rb"token='([^']+)'", success).group(1).decode()
    finally:
        wire.close()
    wire = _Wire(port)
    try:
        wire.send(HEADER)
        wire.read_until(b"</stream:features>")
        cb = wire.cb_data(cb_type)
        initial = b"alice\0" + ht(token, b"Initiator", cb)
        wire.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'><initial-response>"
                  f"{b64(initial)}</initial-response><user-agent id='{AGENT}'/><fast xmlns='{NS_FAST}'/>"
                  "</authenticate>")
        answer = wire.read_until(b"</success>")
        responder_ok = _content(answer, b"additional-data") == ht(token, b"Responder", cb)
        return features, verified, responder_ok
    finally:
        wire.close()


class ChannelBindingTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.service, ports = yield start_loopback_service(
            self, {"alice@localhost": PASSWORD}, extensions=["sasl2"], starttls=False)
        self.port = ports["direct_tls"]

    @defer.inlineCallbacks
    def test_expr_after_scram_plus(self):
        """TLS 1.3: SASL2 offers SCRAM-SHA-256-PLUS and all three HT mechanisms; a
        tls-exporter SCRAM login gets an HT-SHA-256-EXPR token that logs in, both sides
        proving themselves over the channel binding."""
        features, verified, responder_ok = yield threads.deferToThread(
            scram_plus_then_fast, self.port, "HT-SHA-256-EXPR", "tls-exporter")
        self.assertIn(b"<mechanism>SCRAM-SHA-256-PLUS</mechanism>", features)
        for name in (b"HT-SHA-256-EXPR", b"HT-SHA-256-ENDP", b"HT-SHA-256-NONE"):
            self.assertIn(b"<mechanism>" + name + b"</mechanism>", features)
        self.assertTrue(verified)
        self.assertTrue(responder_ok)

    @defer.inlineCallbacks
    def test_endp(self):
        """HT-SHA-256-ENDP binds the token to the server certificate (tls-server-end-point)."""
        _, verified, responder_ok = yield threads.deferToThread(
            scram_plus_then_fast, self.port, "HT-SHA-256-ENDP", "tls-server-end-point")
        self.assertTrue(verified)
        self.assertTrue(responder_ok)
