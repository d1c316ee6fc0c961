"""Two-factor authentication with TOTP (XEP-0400, urn:xmpp:mfa:0; RFC 6238).

Enrolment by IQ on the client's own account (XEP-0400 "Voluntary Account Enrollment"):
an empty ``<setup/>`` returns an otpauth URI with a new secret, kept in that session
only; ``<setup>123456</setup>`` with a correct code enables TOTP for the account. The
URI carries the secret in base32 (RFC 4648, no padding) as every authenticator app
reads it; XEP-0400's ABNF says "hex", which no app understands. Codes follow XEP-0400's
parameters: HMAC-SHA-1, 30-second steps, 6 digits (RFC 6238 §4, §5.2: one step of clock
drift either way is accepted, and a code, or an older one, is never accepted twice).

At login the SASL2 task "TOTP" asks for the code once the password is verified::

    S: <continue><tasks><task>TOTP</task></tasks><text/></continue>
    C: <next task='TOTP'><totp xmlns='urn:xmpp:mfa:0'>123456</totp></next>
       (or <next task='TOTP'/>, then S: <task-data><totp xmlns='urn:xmpp:mfa:0'/></task-data>
        and C: <task-data><totp xmlns='urn:xmpp:mfa:0'>123456</totp></task-data>;
        XEP-0400's base64 <initial-response/> inside <next/> is accepted too)
    S: <success/> (or the next task), or <failure><not-authorized/></failure>

Policy: ``app_passwords_skip_mfa`` lets app passwords log in without the code (they are
per-device secrets already); ``fast_skips_mfa`` does the same for FAST tokens, which
XEP-0484 forbids to ask for a code: when it is off, a FAST login of an enrolled account
fails with credentials-expired and the client falls back to its password. Wrong codes
are rate-limited per account (``mfa_max_failures`` per ``mfa_failure_window`` seconds).

The secret is stored encrypted (XEP-0400 §security) with AES-256-GCM under the key of the
``totp_key`` option, the account's JID as associated data (a row copied to another
account does not decrypt). Without a key TOTP is not offered.

RFC 6120 SASL cannot ask for a code, so an enrolled account cannot log in through it:
a session bound after such a login is closed at once with not-authorized (the legacy
SASL code is core; see the report).
"""

import base64
import hmac
import os
import struct
from urllib.parse import quote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StanzaError, StreamError
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.ratelimit import RateLimiter
from summitd.sasl.mechanism import Failure
from summitd.transports.c2s import NONZA
from summitd.plugins.sasl2.adhoc import Command, Field, Reply
from summitd.plugins.sasl2.authenticate import NS_SASL2, AuthFailure, Part, TaskData, TaskDone

NS_MFA = "urn:xmpp:mfa:0"
NS_SM = "urn:xmpp:sm:3"
STEP = 30
DIGITS = 6
SECRET_BYTES = 20
PENDING_KEY = "sasl2-totp-enrolment"     # session.data: the secret being enrolled
NODE_DISABLE = "urn:summitd:totp:disable"


def totp(secret, step, digits=DIGITS, digest="sha1"):
    """The RFC 6238 code of a time step (HOTP of RFC 4226 §5.3 with T as the counter)."""
    mac = hmac.new(secret, struct.pack(">Q", step), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def otpauth_uri(secret, jid, issuer):
    label = quote(f"{issuer}:{jid}", safe="@:")
    encoded = base64.b32encode(secret).decode("ascii").rstrip("=")
    return f"otpauth://totp/{label}?secret={encoded}&issuer={quote(issuer)}"


def _code_of(text):
    code = (text or "").strip()
    return code if len(code) == DIGITS and code.isdigit() else None


def code_in(element):
    """The code a client sent in <next/> or <task-data/>, or None."""
    for child in element.elements():
        if child.uri == NS_MFA and child.name == "totp":
            return _code_of(str(child))
        if child.uri == NS_SASL2 and child.name in ("initial-response", "response"):
            try:
                return _code_of(base64.b64decode("".join(str(child).split()), validate=True).decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return None
    return None


class SecretBox:
    """AES-256-GCM for TOTP secrets, bound to the account by associated data."""

    def __init__(self, key):
        self._aead = AESGCM(key)

    def seal(self, host, user, secret):
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, secret, f"{user}@{host}".encode("utf-8"))

    def open(self, host, user, blob):
        blob = bytes(blob)
        return self._aead.decrypt(blob[:12], blob[12:], f"{user}@{host}".encode("utf-8"))


class Totp(Part):
    """Enrolment, the TOTP task, and the legacy-SASL guard."""

    def __init__(self, context, config, core):
        self.context = context
        self.config = config
        self.core = core
        self.box = SecretBox(config.totp_key)
        self.enrolled = set()       # (host, user): loaded at start, kept current here
        self.limiter = RateLimiter(config.mfa_max_failures / config.mfa_failure_window,
                                   config.mfa_max_failures, context.clock)
        context.iq("set", ACCOUNT, NS_MFA, "setup", self.setup)
        context.add_feature(NS_MFA)
        context.hook(events.SESSION_BOUND, self.guard_binding, Priority.DELIVER - 100)
        context.hook(NONZA, self.guard_resumption, Priority.SECURITY + 20)

    def start(self):
        d = self.context.database.runInteraction(
            "sasl2: enrolled accounts",
            lambda txn: txn.execute("SELECT host, username FROM sasl2_totp").fetchall())
        d.addCallback(lambda rows: self.enrolled.update((host, user) for host, user in rows))
        return d

    # -- storage --

    def _row(self, host, user):
        return self.context.database.runInteraction("sasl2: totp secret", lambda txn: txn.execute(
            "SELECT secret, last_step FROM sasl2_totp WHERE host = ? AND username = ?",
            (host, user)).fetchone())

    def _enable(self, host, user, secret, step):
        sealed = self.box.seal(host, user, secret)
        created = int(self.context.clock.seconds())

        def enable(txn):
            txn.execute("DELETE FROM sasl2_totp WHERE host = ? AND username = ?", (host, user))
            txn.execute("INSERT INTO sasl2_totp (host, username, secret, last_step, created)"
                        " VALUES (?, ?, ?, ?, ?)", (host, user, sealed, step, created))

        d = self.context.database.runInteraction("sasl2: enable totp", enable)
        d.addCallback(lambda _: self.enrolled.add((host, user)))
        return d

    def disable(self, host, user):
        d = self.context.database.runInteraction("sasl2: disable totp", lambda txn: txn.execute(
            "DELETE FROM sasl2_totp WHERE host = ? AND username = ?", (host, user)))
        d.addCallback(lambda _: self.enrolled.discard((host, user)))
        return d

    # -- codes --

    def _matching_step(self, secret, code, last_step):
        """The time step whose code ``code`` is (one step of drift either way), newer than
        ``last_step``; None when there is none."""
        now = int(self.context.clock.seconds() // STEP)
        for step in (now - 1, now, now + 1):
            if step > last_step and hmac.compare_digest(totp(secret, step), code):
                return step
        return None

    def _limited(self, host, user):
        return self.limiter.retry_after((host, user)) > 0

    def _wrong(self, host, user):
        self.limiter.allow((host, user))
        self.context.log.info("{user}@{host}: wrong TOTP code", user=user, host=host)

    @defer.inlineCallbacks
    def verify(self, host, user, code):
        """Fire with True (accepted, now used up), False (wrong), or None (rate-limited)."""
        if self._limited(host, user):
            return None
        row = yield self._row(host, user)
        step = None
        if row is not None and code is not None:
            try:
                secret = self.box.open(host, user, row[0])
            except InvalidTag:
                self.context.log.error("{user}@{host}: the TOTP secret does not decrypt (wrong totp_key?)",
                                       user=user, host=host)
                return False
            step = self._matching_step(secret, code, row[1])
        if step is None:
            self._wrong(host, user)
            return False
        yield self.context.database.runInteraction("sasl2: totp used", lambda txn: txn.execute(
            "UPDATE sasl2_totp SET last_step = ? WHERE host = ? AND username = ?", (step, host, user)))
        return True

    # -- enrolment IQ --

    def setup(self, iq, to_jid):
        session = self._own_session(iq, to_jid)
        code = str(iq.firstChildElement()).strip()
        if not code:
            return self._begin(session, to_jid)
        return self._confirm(session, to_jid, code)

    def _own_session(self, iq, to_jid):
        try:
            sender = parse_jid(iq.getAttribute("from", ""))
        except InvalidJID:
            sender = None
        session = None if sender is None else self.context.session(sender)
        if session is None or sender.userhostJID() != to_jid.userhostJID():
            raise StanzaError("forbidden", "only the account's own clients enrol it")
        return session

    def _begin(self, session, account):
        if (account.host, account.user) in self.enrolled:
            raise StanzaError("conflict", "TOTP is enabled already")
        secret = os.urandom(SECRET_BYTES)
        session.data[PENDING_KEY] = secret
        issuer = self.config.totp_issuer or account.host
        return _setup(otpauth_uri(secret, account.userhost(), issuer))

    def _confirm(self, session, account, text):
        secret = session.data.get(PENDING_KEY)
        if secret is None:
            raise StanzaError("unexpected-request", "no enrolment in progress: send an empty <setup/> first")
        if self._limited(account.host, account.user):
            raise StanzaError("policy-violation", "too many wrong codes; try again later")
        code = _code_of(text)
        step = None if code is None else self._matching_step(secret, code, -1)
        if step is None:
            self._wrong(account.host, account.user)
            raise StanzaError("not-acceptable", "wrong code")
        del session.data[PENDING_KEY]
        self.context.log.info("{jid} enabled TOTP", jid=account.userhost())
        return self._enable(account.host, account.user, secret, step).addCallback(lambda _: None)

    # -- the SASL2 task --

    def tasks(self, exchange):
        key = (exchange.stream.host, exchange.username)
        if key not in self.enrolled:
            return ()
        if exchange.via_fast:
            if self.config.fast_skips_mfa:
                return ()
            raise AuthFailure("credentials-expired", "this account needs its second factor: use the password")
        if exchange.origin.startswith("app:") and self.config.app_passwords_skip_mfa:
            return ()
        return [TotpTask(self, *key)]

    # -- RFC 6120 SASL cannot ask for the code --

    def _legacy(self, stream):
        return (stream.host, stream.username) in self.enrolled and stream not in self.core.authenticated

    def guard_binding(self, session):
        """Last SESSION_BOUND handler: a legacy login of an enrolled account ends at once."""
        if self._legacy(session.stream):
            self.context.log.info("{jid}: TOTP is enabled; RFC 6120 SASL refused", jid=session.jid.full())
            session.stream.close(StreamError("not-authorized",
                                             "this account uses two-factor authentication: log in with SASL2"))

    def guard_resumption(self, stream, element):
        if element.uri == NS_SM and element.name == "resume" and stream.state == "authenticated" \
                and self._legacy(stream):
            stream.close(StreamError("not-authorized",
                                     "this account uses two-factor authentication: log in with SASL2"))
            return True
        return None

    # -- ad-hoc command: disable with a current code --

    def commands(self):
        return [Command(NODE_DISABLE, "Disable two-factor authentication", self._ask_code, self._disable)]

    def _ask_code(self, account):
        if (account.host, account.user) not in self.enrolled:
            return Reply(note="Two-factor authentication is not enabled.")
        return Reply(form=[Field("code", label="A current code", required=True)],
                     title="Disable two-factor authentication")

    @defer.inlineCallbacks
    def _disable(self, account, values):
        accepted = yield self.verify(account.host, account.user, _code_of((values.get("code") or [""])[0]))
        if accepted is None:
            raise StanzaError("policy-violation", "too many wrong codes; try again later")
        if not accepted:
            raise StanzaError("not-acceptable", "wrong code")
        yield self.disable(account.host, account.user)
        return Reply(note="Two-factor authentication is disabled.")


class TotpTask:
    """The SASL2 "TOTP" task of one login."""

    name = "TOTP"
    text = "This account requires a TOTP code"

    def __init__(self, totp_part, host, user):
        self.part = totp_part
        self.host = host
        self.user = user

    def start(self, exchange, element):
        code = code_in(element)
        if code is None:
            return TaskData(domish.Element((NS_MFA, "totp")))
        return self.check(code)

    def step(self, exchange, element):
        code = code_in(element)
        if code is None:
            return Failure("malformed-request", "expected <totp xmlns='urn:xmpp:mfa:0'>123456</totp>",
                           self.user)
        return self.check(code)

    def check(self, code):
        d = self.part.verify(self.host, self.user, code)
        d.addCallback(self._verdict)
        return d

    def _verdict(self, accepted):
        if accepted is None:
            return Failure("temporary-auth-failure", "too many wrong codes; try again later", self.user)
        if not accepted:
            return Failure("not-authorized", "wrong code", self.user)
        return TaskDone()


def _setup(uri):
    element = domish.Element((NS_MFA, "setup"))
    element.addContent(uri)
    return element


def parse_key(value):
    """The 32-byte AES key of the totp_key option (base64, standard or URL-safe)."""
    text = value.strip()
    decoded = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
    if len(decoded) != 32:
        raise ValueError("must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`)")
    return decoded

