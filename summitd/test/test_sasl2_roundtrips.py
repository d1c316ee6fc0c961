"""How many round trips a full login takes once TLS is up (direct TLS, XEP-0368): the client
ends up authenticated, bound, with carbons and stream management enabled and the archive's
metadata in hand. A round trip (a "flight") is what the client sends before it must wait
for the server's answer; every flight here sends all it can without guessing.

- RFC 6120 SASL + legacy binding: 6 (stream header, SCRAM first, SCRAM final, header after
  the restart, bind, then carbons + SM + MAM metadata together);
- SASL2 + Bind 2 with SCRAM: 3 (header, SCRAM first with the inline requests, SCRAM final);
- SASL2 + Bind 2 with a FAST token: 2 (header, <authenticate/>), and 1 when the client
  sends <authenticate/> right behind its header (features cached, XEP-0388 §discovery).

STARTTLS instead of direct TLS adds two more to each (header, <starttls/>).
"""

import base64

from summitd.core.jid import parse_jid
from summitd.testing import ProtocolMismatch, ScramClient
from summitd.testing.client import STREAM_HEADER
from summitd.test.test_sasl2_support import (
    AGENT, NS_BIND2, NS_FAST, NS_SASL, NS_SASL2, NS_SM, PASSWORD, Sasl2TestCase, b64, child, ht, text_of)

NS_MAM = "urn:xmpp:mam:2"
SESSION_FEATURES = (f"<enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='{NS_SM}' resume='true'/>")


class Flights:
    """Counts flights: send(data) then take everything the server answered."""

    def __init__(self, client):
        self.client = client
        self.count = 0

    def open(self, header=None):
        self.count += 1
        features = self.client.open_stream(header=header)
        return [features] + self.drain()

    def fly(self, data):
        self.count += 1
        self.client.send(data)
        return self.drain()

    def drain(self):
        answers = []
        while True:
            try:
                answers.append(self.client.next())
            except ProtocolMismatch:
                return answers


class RoundTripTests(Sasl2TestCase):
    extensions = ("sasl2", "stream_management", "carbons", "delivery", "mam", "csi")

    def assertEverything(self, jid):
        """Bound, with carbons and stream management on."""
        session = self.server.router.session(parse_jid(jid))
        self.assertIn("carbons", session.data)
        self.assertIsNotNone(session.stream.sm)

    def test_legacy_login(self):
        """RFC 6120 SASL, legacy binding, then carbons, SM and MAM metadata: 6 round trips."""
        flights = Flights(self.client(secure=True).fake)
        flights.open()
        scram = ScramClient("alice", PASSWORD, "sha256")
        challenge, = flights.fly(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{b64(scram.first())}</auth>")
        final = scram.final(base64.b64decode(str(challenge)))
        success, = flights.fly(f"<response xmlns='{NS_SASL}'>{b64(final)}</response>")
        self.assertTrue(scram.verify(base64.b64decode(str(success))))
        flights.open()
        bound, = flights.fly("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        jid = str(child(child(bound, "urn:ietf:params:xml:ns:xmpp-bind", "bind"),
                        "urn:ietf:params:xml:ns:xmpp-bind", "jid"))
        answers = flights.fly("<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
                              f"<enable xmlns='{NS_SM}' resume='true'/>"
                              f"<iq type='get' id='m'><metadata xmlns='{NS_MAM}'/></iq>")
        self.assertEqual([a.name for a in answers][:3], ["iq", "enabled", "iq"])     # then SM's <r/>
        self.assertEverything(jid)
        self.assertEqual(flights.count, 6)

    def test_sasl2_bind2_scram(self):
        """SASL2 + Bind 2 with SCRAM-SHA-256, everything inline: 3 round trips."""
        flights = Flights(self.client(secure=True).fake)
        flights.open()
        scram = ScramClient("alice", PASSWORD, "sha256")
        challenge, = flights.fly(
            f"<authenticate xmlns='{NS_SASL2}' mechanism='SCRAM-SHA-256'>"
            f"<initial-response>{b64(scram.first())}</initial-response><user-agent id='{AGENT}'/>"
            f"<bind xmlns='{NS_BIND2}'><tag>rt</tag>{SESSION_FEATURES}</bind>"
            f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/></authenticate>")
        final = scram.final(base64.b64decode(str(challenge)))
        success, features = flights.fly(f"<response xmlns='{NS_SASL2}'>{b64(final)}</response>")
        self.assertTrue(scram.verify(base64.b64decode(text_of(success, NS_SASL2, "additional-data"))))
        bound = child(success, NS_BIND2, "bound")
        self.assertIsNotNone(child(bound, NS_MAM, "metadata"))
        self.assertIsNotNone(child(bound, NS_SM, "enabled"))
        self.assertEverything(text_of(success, NS_SASL2, "authorization-identifier"))
        self.assertEqual(flights.count, 3)
        self.token = child(success, NS_FAST, "token")["token"]

    def fast_authenticate(self):
        initial = b"alice\0" + ht(self.token, b"Initiator")
        return (f"<authenticate xmlns='{NS_SASL2}' mechanism='HT-SHA-256-NONE'>"
                f"<initial-response>{b64(initial)}</initial-response><user-agent id='{AGENT}'/>"
                f"<fast xmlns='{NS_FAST}'/><bind xmlns='{NS_BIND2}'><tag>rt</tag>{SESSION_FEATURES}</bind>"
                "</authenticate>")

    def test_fast_bind2(self):
        """With a FAST token: 2 round trips, 1 with the <authenticate/> behind the header."""
        self.test_sasl2_bind2_scram()
        flights = Flights(self.client(secure=True).fake)
        flights.open()
        success, _ = flights.fly(self.fast_authenticate())
        self.assertIsNotNone(child(child(success, NS_BIND2, "bound"), NS_MAM, "metadata"))
        self.assertEverything(text_of(success, NS_SASL2, "authorization-identifier"))
        self.assertEqual(flights.count, 2)
        flights = Flights(self.client(secure=True).fake)
        _, success, _ = flights.open(header=STREAM_HEADER.format(to="localhost") + self.fast_authenticate())
        self.assertEqual(success.name, "success")
        self.assertEverything(text_of(success, NS_SASL2, "authorization-identifier"))
        self.assertEqual(flights.count, 1)
