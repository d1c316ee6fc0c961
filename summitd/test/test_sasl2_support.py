"""What the sasl2 tests share: a SASL2 client over FakeClient (SCRAM, PLAIN, FAST's HT
mechanisms, tasks), a test case with the sasl2 extension, and small XML helpers."""

import base64
import hashlib
import hmac

from summitd.sasl.scram import compute_downgrade_hash
from summitd.testing import FakeClient, ScramClient
from summitd.test.service_helpers import PASSWORD, ServiceTestCase

NS_SASL2 = "urn:xmpp:sasl:2"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND2 = "urn:xmpp:bind:0"
NS_FAST = "urn:xmpp:fast:0"
NS_SM = "urn:xmpp:sm:3"
NS_MFA = "urn:xmpp:mfa:0"
NS_COMMANDS = "http://jabber.org/protocol/commands"
AGENT = "d4565fa7-4d72-4749-b3d3-740edbf87770"
OTHER_AGENT = "5b0e7c0e-47d9-4f7b-9a31-2a2f3a1f1b10"
TOTP_KEY = base64.b64encode(bytes(range(32))).decode("ascii")
SECURE_MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]



def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode("utf-8")).decode("ascii")


def child(element, uri, name):
    """The first child {uri}name of ``element``, or None."""
    for found in element.elements():
        if found.uri == uri and found.name == name:
            return found
    return None


def text_of(element, uri, name):
    found = child(element, uri, name)
    return None if found is None else str(found).strip()


def ht(token, label, cb_data=b""):
    return hmac.new(token.encode("utf-8"), label + cb_data, hashlib.sha256).digest()


class Sasl2Client:
    """One client connection speaking SASL2. ``secure`` pretends the stream is on TLS (the
    in-memory transport has none): PLAIN and FAST are offered, channel binding is not."""

    def __init__(self, server, secure=True, peer="127.0.0.1"):
        self.fake = FakeClient(server, peer=peer)
        self.fake.stream.secure = secure
        self.features = None
        self.scram = None

    def __getattr__(self, name):     # send, next, expect, expect_nothing, stream, ...
        return getattr(self.fake, name)

    def open(self):
        self.features = self.fake.open_stream()
        return self.features

    def authenticate(self, mechanism, initial=None, inline="", agent=AGENT):
        """Send <authenticate/>; ``initial`` bytes (None: no initial response)."""
        parts = [] if initial is None else [f"<initial-response>{b64(initial)}</initial-response>"]
        if agent is not None:
            parts.append(f"<user-agent id='{agent}'><software>tests</software><device>lab</device></user-agent>")
        self.fake.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>{''.join(parts)}{inline}"
                       "</authenticate>")

    def scram_send(self, user, password=PASSWORD, hash_name="sha256", inline="", agent=AGENT):
        """Both client messages of SCRAM; None, or what ended the exchange early."""
        self.scram = ScramClient(user, password, hash_name)
        self.authenticate(f"SCRAM-{'SHA-256' if hash_name == 'sha256' else 'SHA-1'}",
                          self.scram.first(), inline, agent)
        challenge = self.fake.next()
        if challenge.name != "challenge":
            return challenge
        final = self.scram.final(base64.b64decode(str(challenge)))
        self.fake.send(f"<response xmlns='{NS_SASL2}'>{b64(final)}</response>")
        return None

    def scram_login(self, user, password=PASSWORD, hash_name="sha256", inline="", agent=AGENT):
        """A SCRAM exchange; returns what ends it (success, continue or failure)."""
        early = self.scram_send(user, password, hash_name, inline, agent)
        if early is not None:
            return early
        outcome = self.fake.next()
        data = text_of(outcome, NS_SASL2, "additional-data")
        if data is not None and not self.scram.verify(base64.b64decode(data)):
            raise AssertionError("the server's SCRAM signature is wrong")
        return outcome

    def plain_login(self, user, password=PASSWORD, inline="", agent=AGENT):
        self.authenticate("PLAIN", f"\0{user}\0{password}".encode("utf-8"), inline, agent)
        return self.fake.next()

    def fast_login(self, user, token, mechanism="HT-SHA-256-NONE", count=None, invalidate=False,
                   inline="", agent=AGENT):
        """An HT exchange with <fast/>; checks the server's Responder HMAC on success."""
        attributes = "" if count is None else f" count='{count}'"
        attributes += " invalidate='true'" if invalidate else ""
        initial = user.encode("utf-8") + b"\0" + ht(token, b"Initiator")
        self.authenticate(mechanism, initial, f"<fast xmlns='{NS_FAST}'{attributes}/>{inline}", agent)
        outcome = self.fake.next()
        if outcome.name == "success":
            data = base64.b64decode(text_of(outcome, NS_SASL2, "additional-data"))
            if not hmac.compare_digest(data, ht(token, b"Responder")):
                raise AssertionError("the server's Responder message is wrong")
        return outcome

    def logged_in(self, user="alice", inline="", agent=AGENT, **kwargs):
        """Open, log in with SCRAM-SHA-256 and take the features after <success/>."""
        self.open()
        success = self.scram_login(user, inline=inline, agent=agent, **kwargs)
        if success.name != "success":
            raise AssertionError(f"login failed: {success.toXml()}")
        self.fake.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        return success

    def downgrade_hash_ok(self, mechanisms):
        """XEP-0474: the server-first-message's h covers exactly ``mechanisms``."""
        expected = compute_downgrade_hash(self.scram.hash_name, mechanisms, None)
        return self.scram.server_attributes.get("h") == expected


class Sasl2TestCase(ServiceTestCase):
    """A server with the sasl2 extension (and ``extensions``), alice and bob."""

    extensions = ("sasl2",)

    def client(self, secure=True, peer="127.0.0.1"):
        return Sasl2Client(self.server, secure, peer)

    def bound(self, user="alice", tag="phone", agent=AGENT, features=""):
        """A client logged in with Bind 2; returns (client, <success/>, full JID)."""
        client = self.client()
        success = client.logged_in(user, agent=agent,
                                   inline=f"<bind xmlns='{NS_BIND2}'><tag>{tag}</tag>{features}</bind>")
        return client, success, text_of(success, NS_SASL2, "authorization-identifier")

    def sasl2(self):
        return self.extension("sasl2")

    def assertFailure(self, element, condition):
        self.assertEqual(element.name, "failure", element.toXml())
        self.assertEqual(element.uri, NS_SASL2)
        self.assertIsNotNone(child(element, NS_SASL, condition), element.toXml())

    def run_command(self, client, node, values=None, iq_id="c"):
        """Run an ad-hoc command; with ``values`` ({var: [values]}), complete its form.
        Returns the last <command/> (or the IQ error)."""
        client.send(f"<iq type='set' id='{iq_id}' to='localhost'>"
                    f"<command xmlns='{NS_COMMANDS}' node='{node}' action='execute'/></iq>")
        reply = client.next()
        command = reply.firstChildElement()
        if values is None or reply.getAttribute("type") != "result" or command["status"] != "executing":
            return reply
        fields = "".join(f"<field var='{var}'>{''.join(f'<value>{v}</value>' for v in vals)}</field>"
                         for var, vals in values.items())
        client.send(f"<iq type='set' id='{iq_id}2' to='localhost'><command xmlns='{NS_COMMANDS}' "
                    f"node='{node}' sessionid='{command['sessionid']}' action='complete'>"
                    f"<x xmlns='jabber:x:data' type='submit'>{fields}</x></command></iq>")
        return client.next()
