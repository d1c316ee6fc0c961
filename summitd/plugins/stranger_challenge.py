"""Challenge-response for strangers: a message from someone who is not a contact is held
until its sender answers a challenge (CAPTCHA Forms, XEP-0158).

A "stranger" is a sender with a user part that is not in the recipient's roster
(RFC 6121; in ``strict`` mode: not there with a subscription), not the recipient
itself, not trusted by configuration (``trusted_domains``, ``trusted_accounts``) nor by
the recipient (its own trust list), and, in ``new-contacts`` mode, not someone who
answered a challenge before. Domain JIDs (servers, services) are not strangers, and
error and groupchat messages pass (they answer or belong to something already joined).

Modes, per user with a per-domain default (``mode`` for every domain, default ``off`` so
that enabling the extension changes nothing until an operator picks a mode, and
``domains`` = {"<domain>" = "<mode>"}): ``off``;
``new-contacts`` (a sender who once answered is remembered); ``strict`` (the answer
admits the sender for ``approval_seconds`` only). Users set theirs with an IQ to their
own account in the namespace ``urn:summitd:stranger_challenge:0``:
``<settings mode='strict'/>`` (also a get, which lists the trust list),
``<trust jid='…'/>`` and ``<distrust jid='…'/>`` (a bare JID or a domain).

What happens to a stranger's message (hook ``MESSAGE_TO_ACCOUNT`` at
``Priority.SECURITY``: before stamping, archiving, carbons and delivery see it):

1. it is stored (table ``stranger_held``, a durable write stream management waits for);
2. the first one gets the sender a challenge message from the recipient's domain
   (XEP-0158 §3.1.2: FORM_TYPE urn:xmpp:captcha, the hidden from/challenge/sid fields,
   a SHA-256 hashcash of ``pow_bits`` and, when configured, a question); later ones
   wait with it (at most ``max_held_per_sender`` per sender and ``max_held_per_user``
   per recipient; beyond that the sender gets ``policy-violation``);
3. the sender answers with an IQ set to the domain (§3.1.3). A right answer releases
   the held messages in their order (they then go through archiving and delivery as
   if just arrived) and the IQ gets a result; a wrong one ``not-acceptable`` (after
   ``max_attempts`` the held messages are refused); an unknown, answered or expired
   challenge ``service-unavailable`` (§3.1.4);
4. a challenge not answered within ``hold_seconds`` expires: every held message comes
   back to its sender as a ``policy-violation`` error naming the reason. Nothing from
   a stranger is dropped without an error: blocking the sender (XEP-0191) or deleting
   the recipient's account refuses the held messages with ``service-unavailable``.

Hot path: per message a few dict lookups; the roster is read (one query) only for a
sender with no decision in memory, and the messages that arrive meanwhile queue
behind that first one so order is kept. Pending challenges, settings and trust lists
are in memory (loaded at start); approvals are read when needed and cached.
"""

import itertools
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads
from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT, SERVER
from summitd.core.jid import JID, InvalidJID, parse_jid
from summitd.core.xmlstream import parse_element
from summitd.core.xmlwriter import serialize
from summitd.extensions.base import Extension
from summitd.plugins.blocking import matches as blocklist_matches
from summitd.plugins.registration import forms, hashcash
from summitd.plugins.registration.policy import check_options
from summitd.plugins.roster_store import IRoster
from summitd.storage.schema import Migration

NAME = "stranger_challenge"
NS_CAPTCHA = "urn:xmpp:captcha"
NS_SETTINGS = "urn:summitd:stranger_challenge:0"
OFF, NEW_CONTACTS, STRICT = "off", "new-contacts", "strict"
MODES = (OFF, NEW_CONTACTS, STRICT)
APPROVAL_CACHE = 10_000

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE stranger_settings (host TEXT NOT NULL, username TEXT NOT NULL, mode TEXT NOT NULL,"
        " PRIMARY KEY (host, username))",
        "CREATE TABLE stranger_trust (host TEXT NOT NULL, username TEXT NOT NULL, jid TEXT NOT NULL,"
        " PRIMARY KEY (host, username, jid))",
        "CREATE TABLE stranger_challenges (id TEXT PRIMARY KEY, host TEXT NOT NULL, username TEXT NOT NULL,"
        " sender TEXT NOT NULL, prefix TEXT NOT NULL, label TEXT NOT NULL, question INTEGER NOT NULL,"
        " expires BIGINT NOT NULL, failures INTEGER NOT NULL, UNIQUE (host, username, sender))",
        "CREATE TABLE stranger_held (host TEXT NOT NULL, username TEXT NOT NULL, seq BIGINT NOT NULL,"
        " sender TEXT NOT NULL, stanza TEXT NOT NULL, received BIGINT NOT NULL,"
        " PRIMARY KEY (host, username, seq))",
        "CREATE INDEX stranger_held_sender ON stranger_held (host, username, sender)",
        "CREATE TABLE stranger_approved (host TEXT NOT NULL, username TEXT NOT NULL, sender TEXT NOT NULL,"
        " expires BIGINT, PRIMARY KEY (host, username, sender))",
    )),
)


@dataclass(frozen=True)
class StrangerConfig:
    mode: str = OFF
    domains: dict = None                # domain -> default mode there
    trusted_domains: frozenset = frozenset()
    trusted_accounts: frozenset = frozenset()
    pow_bits: int = 16
    questions: tuple = ()               # ((question, frozenset of accepted answers), ...)
    hold_seconds: float = 86400.0
    approval_seconds: float = 3600.0
    max_held_per_sender: int = 20
    max_held_per_user: int = 200
    max_attempts: int = 3
    sweep_interval: float = 60.0


def _positive(v):
    return v > 0


def parse_config(raw, path):
    """[extensions.stranger_challenge] (see the module doc)."""
    spec = {
        "mode": (str, OFF, lambda v: v in MODES, f"must be one of {', '.join(MODES)}"),
        "domains": (dict, {}, lambda v: all(m in MODES for m in v.values()), "must map domains to modes"),
        "trusted_domains": (list, [], None, "must be a list of domains"),
        "trusted_accounts": (list, [], None, "must be a list of bare JIDs"),
        "pow_bits": (int, 16, lambda v: 4 <= v <= 32, "must be an integer from 4 to 32"),
        "questions": (list, [], lambda v: all(isinstance(q, dict) and isinstance(q.get("question"), str)
                                              and isinstance(q.get("answers"), list) for q in v),
                      "must be a list of {question = '...', answers = ['...']}"),
        "hold_seconds": (float, 86400.0, _positive, "must be a number of seconds > 0"),
        "approval_seconds": (float, 3600.0, _positive, "must be a number of seconds > 0"),
        "max_held_per_sender": (int, 20, _positive, "must be a positive integer"),
        "max_held_per_user": (int, 200, _positive, "must be a positive integer"),
        "max_attempts": (int, 3, _positive, "must be a positive integer"),
        "sweep_interval": (float, 60.0, _positive, "must be a number of seconds > 0"),
    }
    values, errors = check_options(raw, path, spec)
    if errors:
        raise ConfigError(errors)
    values["trusted_domains"] = frozenset(values["trusted_domains"])
    values["trusted_accounts"] = frozenset(values["trusted_accounts"])
    values["questions"] = tuple((q["question"], frozenset(str(a).strip().casefold() for a in q["answers"]))
                                for q in values["questions"])
    return StrangerConfig(**values)


class _Challenge:
    """A pending challenge of one (recipient, sender) pair, as kept in memory."""

    __slots__ = ("id", "key", "prefix", "label", "question", "expires", "failures", "held")

    def __init__(self, id, key, prefix, label, question, expires, failures=0, held=0):
        self.id, self.key, self.prefix, self.label = id, key, prefix, label
        self.question, self.expires, self.failures, self.held = question, expires, failures, held


def _ms(clock):
    return int(clock.seconds() * 1000)


def _sender(stanza):
    try:
        return parse_jid(stanza.getAttribute("from", ""))
    except InvalidJID:
        return None


# -- storage (each runs in a transaction) ---------------------------------------------------

def _load(txn, now):
    settings = {(u, h): m for h, u, m in txn.execute("SELECT host, username, mode FROM stranger_settings").fetchall()}
    trust = {}
    for h, u, jid in txn.execute("SELECT host, username, jid FROM stranger_trust").fetchall():
        trust.setdefault((u, h), set()).add(jid)
    counts = {(h, u, s): n for h, u, s, n in txn.execute(
        "SELECT host, username, sender, COUNT(*) FROM stranger_held GROUP BY host, username, sender").fetchall()}
    challenges = [(*row, counts.pop((row[1], row[2], row[3]), 0)) for row in txn.execute(
        "SELECT id, host, username, sender, prefix, label, question, expires, failures FROM stranger_challenges"
    ).fetchall()]
    return settings, trust, challenges, list(counts)


def _insert_challenge(txn, c):
    host, username, sender = c.key
    txn.execute("INSERT INTO stranger_challenges (id, host, username, sender, prefix, label, question, expires,"
                " failures) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (c.id, host, username, sender, c.prefix, c.label, c.question, c.expires))


def _hold(txn, key, stanza_xml, received):
    host, username, sender = key
    last = txn.execute("SELECT COALESCE(MAX(seq), 0) FROM stranger_held WHERE host = ? AND username = ?",
                       (host, username)).fetchone()[0]
    txn.execute("INSERT INTO stranger_held (host, username, seq, sender, stanza, received) VALUES (?, ?, ?, ?, ?, ?)",
                (host, username, last + 1, sender, stanza_xml, received))


def _take(txn, key, approve_until=None, approve=False):
    """Close the pair's challenge (approving the sender when asked) and fire with its held
    messages in order, which are deleted."""
    host, username, sender = key
    txn.execute("DELETE FROM stranger_challenges WHERE host = ? AND username = ? AND sender = ?", key)
    if approve:
        txn.execute("DELETE FROM stranger_approved WHERE host = ? AND username = ? AND sender = ?", key)
        txn.execute("INSERT INTO stranger_approved (host, username, sender, expires) VALUES (?, ?, ?, ?)",
                    (host, username, sender, approve_until))
    rows = txn.execute("SELECT stanza FROM stranger_held WHERE host = ? AND username = ? AND sender = ?"
                       " ORDER BY seq", key).fetchall()
    txn.execute("DELETE FROM stranger_held WHERE host = ? AND username = ? AND sender = ?", key)
    return [row[0] for row in rows]


def _approved(txn, key, now):
    row = txn.execute("SELECT expires FROM stranger_approved WHERE host = ? AND username = ? AND sender = ?",
                      key).fetchone()
    return row is not None and (row[0] is None or row[0] > now)


def _count_failure(txn, challenge_id):
    txn.execute("UPDATE stranger_challenges SET failures = failures + 1 WHERE id = ?", (challenge_id,))


def _delete_user(txn, host, username):
    """The account's rows as recipient (its held messages are returned, to be refused) and
    as sender or trusted contact of others (what it sent and was held goes with it)."""
    rows = txn.execute("SELECT stanza FROM stranger_held WHERE host = ? AND username = ? ORDER BY seq",
                       (host, username)).fetchall()
    for table in ("stranger_settings", "stranger_trust", "stranger_challenges", "stranger_held", "stranger_approved"):
        txn.execute(f"DELETE FROM {table} WHERE host = ? AND username = ?", (host, username))
    bare = f"{username}@{host}"
    for table in ("stranger_challenges", "stranger_held", "stranger_approved"):
        txn.execute(f"DELETE FROM {table} WHERE sender = ?", (bare,))
    txn.execute("DELETE FROM stranger_trust WHERE jid = ?", (bare,))
    return [row[0] for row in rows]


class StrangerChallenge(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self._settings = {}         # (user, host) -> mode
        self._trust = {}            # (user, host) -> set of JID texts
        self._challenges = {}       # (host, user, sender bare) -> _Challenge
        self._by_id = {}            # challenge id -> _Challenge
        self._held_per_user = {}    # (host, user) -> messages held
        self._queues = {}           # key -> [(stanza, to_jid)] waiting behind a decision
        self._approvals = OrderedDict()     # key -> expiry ms (None: forever), a cache
        self._releasing = None
        self._ids = itertools.count(1)
        context.hook(events.MESSAGE_TO_ACCOUNT, self._message, Priority.SECURITY)
        context.hook(events.BLOCKLIST_CHANGED, self._blocklist_changed)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)
        context.iq("set", SERVER, NS_CAPTCHA, "captcha", self._answer)
        context.iq("get", ACCOUNT, NS_SETTINGS, "settings", self._get_settings)
        for name in ("settings", "trust", "distrust"):
            context.iq("set", ACCOUNT, NS_SETTINGS, name, self._set_settings)
        context.add_feature(NS_CAPTCHA)

    @defer.inlineCallbacks
    def start(self):
        yield self.context.migrate("stranger_challenge", MIGRATIONS)
        now = _ms(self.context.clock)
        settings, trust, challenges, orphans = yield self.context.database.runInteraction(
            "stranger: load", _load, now)
        self._settings, self._trust = settings, trust
        for id, host, username, sender, prefix, label, question, expires, failures, held in challenges:
            self._remember(_Challenge(id, (host, username, sender), prefix, label, question, expires, failures, held))
        for key in orphans:     # held messages whose challenge was answered just before a crash
            self._settle(key, release=True)
        self.context.looping_call(self.config.sweep_interval, self._sweep)

    def _remember(self, challenge):
        self._challenges[challenge.key] = challenge
        self._by_id[challenge.id] = challenge
        user = challenge.key[:2]
        self._held_per_user[user] = self._held_per_user.get(user, 0) + challenge.held

    def _forget(self, key):
        challenge = self._challenges.pop(key, None)
        if challenge is not None:
            self._by_id.pop(challenge.id, None)
            user = key[:2]
            left = self._held_per_user.get(user, 0) - challenge.held
            if left > 0:
                self._held_per_user[user] = left
            else:
                self._held_per_user.pop(user, None)
        return challenge

    # -- the hot path ------------------------------------------------------------------------

    def mode(self, jid):
        default = (self.config.domains or {}).get(jid.host, self.config.mode)
        return self._settings.get((jid.user, jid.host), default)

    def _trusted(self, to_jid, sender):
        bare = sender.userhost()
        config = self.config
        if sender.host in config.trusted_domains or bare in config.trusted_accounts:
            return True
        own = self._trust.get((to_jid.user, to_jid.host))
        return own is not None and (bare in own or sender.host in own)

    def _message(self, stanza, to_jid):
        if stanza is self._releasing or stanza.getAttribute("type") in ("error", "groupchat"):
            return None
        sender = _sender(stanza)
        if sender is None or sender.user is None or (sender.user, sender.host) == (to_jid.user, to_jid.host):
            return None
        mode = self.mode(to_jid)
        if mode == OFF or self._trusted(to_jid, sender):
            return None
        key = (to_jid.host, to_jid.user, sender.userhost())
        queue = self._queues.get(key)
        if queue is not None:
            queue.append((stanza, to_jid))
            return True
        challenge = self._challenges.get(key)
        if challenge is not None:
            self._hold(challenge, stanza, to_jid)
            return True
        if key in self._approvals:
            until = self._approvals[key]
            if until is None or until > _ms(self.context.clock):
                return None
            del self._approvals[key]
        self._queues[key] = [(stanza, to_jid)]
        d = self._judge(key, mode, to_jid.bare, sender.bare)
        d.addCallback(self._judged, key, stanza, sender)
        d.addErrback(self._judge_failed, key)
        return True

    def _judge(self, key, mode, owner, sender):
        """Fires True when ``sender`` may write to ``owner`` without a challenge."""
        def by_roster(item):
            if item is not None and item.listed and (mode != STRICT or item.subscription != "none"):
                return True
            return self.context.database.runInteraction("stranger: approved?", _approved, key,
                                                        _ms(self.context.clock)).addCallback(by_approval)

        def by_approval(approved):
            if approved:
                self._cache_approval(key, None if mode == NEW_CONTACTS else
                                     _ms(self.context.clock) + int(self.config.approval_seconds * 1000))
            return approved

        return self.context.need(IRoster).item(owner, sender).addCallback(by_roster)

    def _judged(self, passes, key, first, sender):
        queue = self._queues.pop(key)
        if passes:
            for stanza, to_jid in queue:
                self._deliver(stanza, to_jid)
            return
        challenge = self._new_challenge(key, first, sender)
        for stanza, to_jid in queue:
            self._hold(challenge, stanza, to_jid)

    def _judge_failed(self, failure, key):
        self.context.log.failure("stranger: deciding on a message failed", failure)
        for stanza, _ in self._queues.pop(key, ()):
            self._bounce(stanza, StanzaError("internal-server-error"))

    def _cache_approval(self, key, until):
        self._approvals[key] = until
        self._approvals.move_to_end(key)
        while len(self._approvals) > APPROVAL_CACHE:
            self._approvals.popitem(last=False)

    # -- holding and challenging ------------------------------------------------------------

    def _hold(self, challenge, stanza, to_jid):
        user = challenge.key[:2]
        if challenge.held >= self.config.max_held_per_sender or \
                self._held_per_user.get(user, 0) >= self.config.max_held_per_user:
            self._bounce(stanza, StanzaError(
                "policy-violation", "too many of your messages are waiting for your answer to the challenge",
                type="wait"))
            return
        challenge.held += 1
        self._held_per_user[user] = self._held_per_user.get(user, 0) + 1
        if stanza.getAttribute("to") is None:
            stanza["to"] = to_jid.full()
        d = self.context.database.runInteraction("stranger: hold", _hold, challenge.key, serialize(stanza),
                                                 _ms(self.context.clock))
        d.addErrback(self._hold_failed, stanza)
        self.context.track_write(d)

    def _hold_failed(self, failure, stanza):
        self.context.log.failure("stranger: holding a message failed", failure)
        self._bounce(stanza, StanzaError("internal-server-error"))

    def _new_challenge(self, key, trigger, sender):
        questions = self.config.questions
        question = secrets.randbelow(len(questions)) if questions else -1
        expires = _ms(self.context.clock) + int(self.config.hold_seconds * 1000)
        challenge_id = f"sc{next(self._ids)}-{secrets.token_hex(6)}"
        prefix = trigger.getAttribute("to") or f"{key[1]}@{key[0]}"
        challenge = _Challenge(challenge_id, key, prefix, hashcash.new_label(self.config.pow_bits), question, expires)
        self._remember(challenge)
        d = self.context.database.runInteraction("stranger: challenge", _insert_challenge, challenge)
        d.addErrback(lambda f: self.context.log.failure("stranger: storing a challenge failed", f))
        self.context.track_write(d)
        self.context.route(self._challenge_message(challenge, trigger, sender))
        return challenge

    def _challenge_message(self, challenge, trigger, sender):
        host, user, _ = challenge.key
        hours = self.config.hold_seconds / 3600
        message = domish.Element((None, "message"))
        message["from"] = host
        message["to"] = sender.full()
        message["id"] = challenge.id
        message.addElement("body", content=(
            f"Your messages to {user}@{host} are held: they accept messages from people outside their "
            f"contacts once the sender answers this challenge (XEP-0158). Unanswered, they come back "
            f"to you in {hours:g} hour(s)."))
        x = forms.form(NS_CAPTCHA)
        forms.add_field(x, "from", challenge.prefix, type="hidden")
        forms.add_field(x, "challenge", challenge.id, type="hidden")
        if trigger.getAttribute("id"):
            forms.add_field(x, "sid", trigger["id"], type="hidden")
        forms.add_field(x, "answers", "1", type="hidden")
        forms.add_field(x, "SHA-256", type="text-single", label=challenge.label)
        if challenge.question >= 0:
            forms.add_field(x, "qa", type="text-single", label=self.config.questions[challenge.question][0])
        message.addElement((NS_CAPTCHA, "captcha")).addChild(x)
        return message

    # -- the answer (XEP-0158 §3.1.3) -------------------------------------------------------------

    def _answer(self, iq, to_jid):
        fields = forms.read(forms.find_form(next(iq.elements()).elements()), NS_CAPTCHA)
        challenge = self._by_id.get(forms.value(fields, "challenge"))
        sender = _sender(iq)
        if (challenge is None or sender is None or sender.userhost() != challenge.key[2]
                or challenge.key[0] != to_jid.host or challenge.key in self._queues):
            raise StanzaError("service-unavailable", "no such challenge is waiting for an answer")
        if challenge.expires <= _ms(self.context.clock):
            self._expire(challenge)
            raise StanzaError("service-unavailable", "the challenge has expired")
        if self._correct(challenge, fields):
            self._settle(challenge.key, release=True)
            return None
        challenge.failures += 1
        if challenge.failures >= self.config.max_attempts:
            self._settle(challenge.key, release=False, error=StanzaError(
                "policy-violation", "the challenge was failed too many times; your held messages were refused"))
        else:
            d = self.context.database.runInteraction("stranger: failure", _count_failure, challenge.id)
            d.addErrback(lambda f: self.context.log.failure("stranger: counting a failure failed", f))
        raise StanzaError("not-acceptable", "wrong answer to the challenge", type="cancel")

    def _correct(self, challenge, fields):
        answer = forms.value(fields, "SHA-256")
        if answer and hashcash.check(answer, challenge.prefix, challenge.label):
            return True
        if challenge.question >= 0:
            return forms.value(fields, "qa").strip().casefold() in self.config.questions[challenge.question][1]
        return False

    def _settle(self, key, release, error=None):
        """Close the pair's challenge: deliver its held messages (release) or refuse them
        with ``error``. Messages arriving meanwhile queue behind them."""
        self._forget(key)
        self._queues.setdefault(key, [])
        mode = self.mode(_account(key))
        approve = release and mode != OFF
        until = None
        if approve and mode == STRICT:
            until = _ms(self.context.clock) + int(self.config.approval_seconds * 1000)
        d = self.context.database.runInteraction("stranger: settle", _take, key, until, approve)
        d.addCallback(self._settled, key, release, error, until)
        d.addErrback(self._settle_failed, key)
        self.context.track_write(d)

    def _settled(self, held, key, release, error, until):
        if release:
            self._cache_approval(key, until)
        for text in held:
            stanza = parse_element(text, "jabber:client")
            if release:
                self._deliver(stanza, parse_jid(stanza["to"]))
            else:
                self._bounce(stanza, error)
        for stanza, to_jid in self._queues.pop(key, ()):
            if release or self._message(stanza, to_jid) is None:
                self._deliver(stanza, to_jid)

    def _settle_failed(self, failure, key):
        self.context.log.failure("stranger: releasing held messages failed", failure)
        for stanza, _ in self._queues.pop(key, ()):
            self._bounce(stanza, StanzaError("internal-server-error"))

    def _deliver(self, stanza, to_jid):
        """Hand a message on to the rest of MESSAGE_TO_ACCOUNT (archive, carbons, delivery)."""
        previous, self._releasing = self._releasing, stanza
        try:
            taken = self.context.run(events.MESSAGE_TO_ACCOUNT, stanza, to_jid)
        finally:
            self._releasing = previous
        if taken is None:
            self._bounce(stanza, StanzaError("service-unavailable"))

    def _bounce(self, stanza, error):
        if stanza.getAttribute("type") != "error" and stanza.getAttribute("from") is not None:
            self.context.route(error.reply_to(stanza))

    # -- expiry -------------------------------------------------------------------------------

    def _sweep(self):
        now = _ms(self.context.clock)
        for challenge in [c for c in self._challenges.values() if c.expires <= now and c.key not in self._queues]:
            self._expire(challenge)

    def _expire(self, challenge):
        host, user, _ = challenge.key
        self._settle(challenge.key, release=False, error=StanzaError(
            "policy-violation", f"challenge timeout: your message to {user}@{host} was held because you are "
                                f"not in their contacts, and the challenge sent to you was not answered in time"))

    # -- settings -----------------------------------------------------------------------------

    @staticmethod
    def _owner(iq, to_jid):
        sender = _sender(iq)
        if sender is None or sender.userhost() != to_jid.userhost():
            raise StanzaError("forbidden", "only the account itself changes these settings")
        return (to_jid.user, to_jid.host)

    def _get_settings(self, iq, to_jid):
        key = self._owner(iq, to_jid)
        settings = domish.Element((NS_SETTINGS, "settings"))
        settings["mode"] = self.mode(to_jid)
        for jid in sorted(self._trust.get(key, ())):
            settings.addElement("trust")["jid"] = jid
        return settings

    def _set_settings(self, iq, to_jid):
        key = self._owner(iq, to_jid)
        element = next(iq.elements())
        user, host = key
        if element.name == "settings":
            mode = element.getAttribute("mode")
            if mode not in MODES:
                raise StanzaError("bad-request", f"mode must be one of {', '.join(MODES)}")

            def write(txn):
                txn.execute("DELETE FROM stranger_settings WHERE host = ? AND username = ?", (host, user))
                txn.execute("INSERT INTO stranger_settings (host, username, mode) VALUES (?, ?, ?)",
                            (host, user, mode))

            def done(_):
                self._settings[key] = mode
        else:
            try:
                jid = parse_jid(element.getAttribute("jid", "")).userhost()
            except InvalidJID:
                raise StanzaError("jid-malformed", "trust needs a bare JID or a domain") from None
            add = element.name == "trust"

            def write(txn):
                txn.execute("DELETE FROM stranger_trust WHERE host = ? AND username = ? AND jid = ?", (host, user, jid))
                if add:
                    txn.execute("INSERT INTO stranger_trust (host, username, jid) VALUES (?, ?, ?)", (host, user, jid))

            def done(_):
                entries = self._trust.setdefault(key, set())
                (entries.add if add else entries.discard)(jid)
        return self.context.database.runInteraction("stranger: settings", write).addCallback(done)

    # -- blocking and accounts -------------------------------------------------------------------

    def _blocklist_changed(self, jid, blocked, unblocked):
        if not blocked:
            return
        items = frozenset(blocked)
        for key in [k for k in self._challenges if k[:2] == (jid.host, jid.user)]:
            if blocklist_matches(items, parse_jid(key[2])):
                self._settle(key, release=False, error=StanzaError("service-unavailable"))

    def _account_deleting(self, jid, txn):
        held = _delete_user(txn, jid.host, jid.user)
        clock = self.context.clock
        if IReactorFromThreads.providedBy(clock):
            clock.callFromThread(self._account_deleted, jid, held)
        else:
            self.context.call_later(0, self._account_deleted, jid, held)

    def _account_deleted(self, jid, held):
        bare = jid.userhost()
        for key in [k for k in self._challenges if k[:2] == (jid.host, jid.user) or k[2] == bare]:
            self._forget(key)
        for key in [k for k in self._approvals if k[:2] == (jid.host, jid.user) or k[2] == bare]:
            del self._approvals[key]
        self._settings.pop((jid.user, jid.host), None)
        self._trust.pop((jid.user, jid.host), None)
        for entries in self._trust.values():
            entries.discard(bare)
        for text in held:
            self._bounce(parse_element(text, "jabber:client"), StanzaError("service-unavailable"))


def _account(key):
    host, user, _ = key
    return JID.from_prepared(user, host)


def build(context, config):
    return StrangerChallenge(context, config or StrangerConfig())
