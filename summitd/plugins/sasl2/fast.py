"""FAST: Fast Authentication Streamlining Tokens (XEP-0484, urn:xmpp:fast:0) with the
Hashed Token mechanisms (draft-schmaus-kitten-sasl-ht; not in the specs folder, see below).

After a full login a client asks for a token (<request-token mechanism/> in
<authenticate/>) and gets it in <success/> (<token token expiry/>). Later it logs in
with that token in one round trip: mechanism HT-SHA-256-NONE, or, bound to the TLS
channel, HT-SHA-256-ENDP (tls-server-end-point) or HT-SHA-256-EXPR (tls-exporter), with
<fast/> in <authenticate/>. The Hashed Token exchange (draft §4, as implemented by every
FAST client)::

    client:  authcid NUL HMAC-SHA-256(token, "Initiator" || cb-data)
    server:  HMAC-SHA-256(token, "Responder" || cb-data)      (the <additional-data/>)

where the token is the UTF-8 of the token string and cb-data the channel-binding data
(empty for -NONE). A token is bound to the mechanism it was requested for (XEP-0484
§fast-auth), to the account and to the client's user-agent id.

Storage: two slots per (account, user-agent id), 'new' and 'current' (XEP-0484
§impl-tokens): a token is issued into 'new' (replacing an unused one there); using the
'new' token moves it to 'current', ending the older one, so a client that missed the
<success/> carrying a rotated token can still log in with the previous one. A token is
rotated when less than half its lifetime is left. The token itself is never stored: it
is HMAC(server secret, seed) and the row keeps the seed, so a copy of the database
alone logs nobody in. Replays: a 'count' attribute on <fast/> must grow with every use
(XEP-0484 §fast-auth; the server offers no TLS 0-RTT, where it would be mandatory).
<fast invalidate='true'/> ends the client's tokens (log out). A token keeps the origin of
the login it was issued to (password or app password): revoking an app password revokes
its tokens. A FAST login never gets a second-factor task (XEP-0484 §rules-servers): the
mfa part either lets it through or fails it with credentials-expired, by policy.
"""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from summitd.sasl.mechanism import ISASLMechanism, Malformed, StepwiseMechanism, Success
from summitd.sasl.prep import prepare_username
from summitd.plugins.sasl2.authenticate import Part, format_time

NS_FAST = "urn:xmpp:fast:0"

#: mechanism -> channel-binding type (None: none), in the order offered
MECHANISMS = {
    "HT-SHA-256-EXPR": "tls-exporter",
    "HT-SHA-256-ENDP": "tls-server-end-point",
    "HT-SHA-256-NONE": None,
}


def token_text(secret, seed):
    """The token a seed stands for: 256 bits, URL-safe base64 without padding."""
    digest = hmac.new(secret, b"summitd FAST token\x00" + seed.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def hashed_token(token, label, cb_data):
    """HMAC(token, label || cb-data) of the HT draft, with SHA-256."""
    return hmac.new(token.encode("utf-8"), label + cb_data, hashlib.sha256).digest()


@dataclass(frozen=True)
class TokenRow:
    slot: str
    mechanism: str
    seed: str
    expiry: int
    counter: int
    origin: str


class TokenStore:
    """The sasl2_fast_tokens table."""

    def __init__(self, database):
        self._db = database

    def candidates(self, host, user, agent):
        """Fire with the client's tokens, the 'new' slot first."""
        def find(txn):
            rows = txn.execute(
                "SELECT slot, mechanism, seed, expiry, counter, origin FROM sasl2_fast_tokens"
                " WHERE host = ? AND username = ? AND agent = ?", (host, user, agent)).fetchall()
            return sorted((TokenRow(*row) for row in rows), key=lambda r: r.slot != "new")

        return self._db.runInteraction("sasl2: fast tokens", find)

    def issue(self, host, user, agent, mechanism, seed, expiry, origin):
        def issue(txn):
            txn.execute("DELETE FROM sasl2_fast_tokens WHERE host = ? AND username = ? AND agent = ?"
                        " AND slot = 'new'", (host, user, agent))
            txn.execute("INSERT INTO sasl2_fast_tokens (host, username, agent, slot, mechanism, seed,"
                        " expiry, counter, origin) VALUES (?, ?, ?, 'new', ?, ?, ?, -1, ?)",
                        (host, user, agent, mechanism, seed, expiry, origin))

        return self._db.runInteraction("sasl2: issue fast token", issue)

    def used(self, host, user, agent, slot, counter):
        """A token was used: 'new' becomes 'current' (ending the older token); the counter
        remembers the count accepted."""
        def used(txn):
            key = (host, user, agent)
            if slot == "new":
                txn.execute("DELETE FROM sasl2_fast_tokens WHERE host = ? AND username = ? AND agent = ?"
                            " AND slot = 'current'", key)
                txn.execute("UPDATE sasl2_fast_tokens SET slot = 'current' WHERE host = ? AND username = ?"
                            " AND agent = ? AND slot = 'new'", key)
            txn.execute("UPDATE sasl2_fast_tokens SET counter = ? WHERE host = ? AND username = ?"
                        " AND agent = ? AND slot = 'current'", (counter, *key))

        return self._db.runInteraction("sasl2: fast token used", used)

    def invalidate(self, host, user, agent):
        return self._db.runInteraction("sasl2: invalidate fast tokens", lambda txn: txn.execute(
            "DELETE FROM sasl2_fast_tokens WHERE host = ? AND username = ? AND agent = ?",
            (host, user, agent)))


@implementer(ISASLMechanism)
class HashedToken(StepwiseMechanism):
    """The server side of one HT-SHA-256-* exchange for one client installation."""

    def __init__(self, name, exchange, store, clock, count):
        super().__init__()
        self.name = name
        self._exchange = exchange
        self._store = store
        self._clock = clock
        self._count = count         # the <fast count/> (an int), None, or False when invalid
        self.row = None
        self.origin = None

    def _cb_data(self):
        cb_type = MECHANISMS[self.name]
        return b"" if cb_type is None else self._exchange.channel_bindings[cb_type]()

    def _initial(self, response):
        if not response:
            raise Malformed("HT needs an initial response")
        if self._count is False:
            raise Malformed("count must be a non-negative integer")
        authcid, separator, hashed = response.partition(b"\x00")
        if not separator or not hashed:
            raise Malformed("expected authcid NUL hashed token")
        try:
            self._username = prepare_username(authcid.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._fail("not-authorized")
        agent = self._exchange.agent.id
        if agent is None:
            return self._fail("not-authorized", "FAST needs a <user-agent id/>")
        d = self._store.candidates(self._exchange.stream.host, self._username, agent)
        d.addCallback(self._verify, hashed, agent)
        return d

    def _verify(self, rows, hashed, agent):
        cb_data = self._cb_data()
        secret = self._exchange.stream.server.secret
        for row in rows:
            token = token_text(secret, row.seed)
            if not hmac.compare_digest(hashed_token(token, b"Initiator", cb_data), hashed):
                continue
            if row.mechanism != self.name:
                return self._fail("not-authorized", "the token was issued for another mechanism")
            if row.expiry <= self._clock.seconds():
                return self._fail("credentials-expired", "the token has expired")
            if self._count is not None and self._count <= row.counter:
                return self._fail("not-authorized", "a replayed token (count)")
            self.row, self.origin = row, row.origin
            counter = row.counter if self._count is None else self._count
            d = self._store.used(self._exchange.stream.host, self._username, agent, row.slot, counter)
            d.addCallback(lambda _: Success(hashed_token(token, b"Responder", cb_data), self._username, None))
            return d
        return self._fail("not-authorized")


class Fast(Part):
    """Offers FAST, accepts tokens, issues and rotates them."""

    def __init__(self, context, store, lifetime):
        self.context = context
        self.store = store
        self.lifetime = lifetime

    @staticmethod
    def available(cb):
        return [name for name, cb_type in MECHANISMS.items() if cb_type is None or cb_type in cb]

    def inline(self, stream, cb):
        fast = domish.Element((NS_FAST, "fast"))
        for name in self.available(cb):
            fast.addElement("mechanism", content=name)
        return [fast]

    def mechanism(self, name, exchange):
        fast = exchange.child(NS_FAST, "fast")
        if name not in MECHANISMS or fast is None or name not in self.available(exchange.channel_bindings):
            return None
        exchange.via_fast = True
        return HashedToken(name, exchange, self.store, self.context.clock, _count(fast))

    def finish(self, exchange):
        stream = exchange.stream
        agent = exchange.agent.id
        if agent is None:
            return ()
        key = (stream.host, exchange.username, agent)
        fast = exchange.child(NS_FAST, "fast") if exchange.via_fast else None
        invalidate = fast is not None and fast.getAttribute("invalidate") in ("1", "true")
        d = self.store.invalidate(*key) if invalidate else defer.succeed(None)
        mechanism = self._to_issue(exchange, invalidate)
        if mechanism is None:
            return d.addCallback(lambda _: ())
        seed = secrets.token_hex(16)
        expiry = int(self.context.clock.seconds() + self.lifetime)
        d.addCallback(lambda _: self.store.issue(*key, mechanism, seed, expiry, exchange.origin))
        d.addCallback(lambda _: [_token_element(token_text(stream.server.secret, seed), expiry)])
        return d

    def _to_issue(self, exchange, invalidated):
        """The mechanism of a token to hand out now, or None."""
        request = exchange.child(NS_FAST, "request-token")
        if request is not None:
            wanted = request.getAttribute("mechanism")
            return wanted if wanted in self.available(exchange.channel_bindings) else None
        row = getattr(exchange.mechanism, "row", None) if exchange.via_fast else None
        if row is None or invalidated:
            return None
        if row.expiry - self.context.clock.seconds() < self.lifetime / 2:
            return exchange.mechanism_name      # XEP-0484 §token-rotation
        return None


def _count(fast):
    count = fast.getAttribute("count")
    if count is None:
        return None
    return int(count) if count.isdigit() else False


def _token_element(token, expiry):
    element = domish.Element((NS_FAST, "token"))
    element["token"] = token
    element["expiry"] = format_time(expiry)
    return element
