"""Several credentials per account: the password and named app passwords, each app
password with its own SCRAM keys (RFC 5802 §3), so that one device's password can be
revoked without changing the others.

How SCRAM tells them apart: the server must send a salt before it can know which
password the client has, so every app password of an account is derived with the salt
and iteration count of the account's own keys for that hash. The SCRAM exchange is then
the usual one, and the client's proof is checked against the account's keys first and
then against each app password's (``MultiKeyScram``): any SCRAM client works, the user
just types the app password. PLAIN checks the same keys (``MultiKeyPlain``). Changing
the account password gives its keys a new salt, which ends its app passwords (they no
longer share the salt), as most providers do.

App passwords are made by the server (20 random base32 characters, 100 bits), shown once,
and work through SASL2 (XEP-0388): RFC 6120 SASL in c2s sees only the account password.
Every login remembers its origin (``SessionInfo.origin``, "app:<id>"); revoking an app
password deletes its keys and the FAST tokens issued to its sessions and closes those
sessions, at once in this process and within ``revocation_check_interval`` seconds when
summitctl revoked it from outside.

Users list, create and revoke them with ad-hoc commands (XEP-0050) on their domain;
administrators with ``summitctl app-password`` (``summitd.ctl_credentials``).
"""

import base64
import hmac
import secrets

from twisted.internet import defer

from summitd.core.errors import StanzaError, StreamError
from summitd.sasl.credentials import SCRAM_HASHES, ScramCredentials
from summitd.sasl.mechanism import Success
from summitd.sasl.plain import PlainMechanism
from summitd.sasl.registry import available_mechanisms
from summitd.sasl.scram import ScramMechanism, derive_credentials
from summitd.plugins.sasl2.adhoc import Command, Field, Reply
from summitd.plugins.sasl2.authenticate import PASSWORD, SESSION_KEY, Part, format_time

APP_PREFIX = "app:"
MAX_NAME = 64
NODE_LIST = "urn:summitd:app-passwords:list"
NODE_ADD = "urn:summitd:app-passwords:add"
NODE_REVOKE = "urn:summitd:app-passwords:revoke"

_HASH_BY_LABEL = {label: hash_name for hash_name, label in SCRAM_HASHES.items()}


class AppPasswordError(ValueError):
    """A name or request the app password store refuses (shown to the user)."""


def origin_of(app_id):
    return APP_PREFIX + app_id


def generate_password():
    """20 base32 characters in groups of four: easy to type, 100 random bits."""
    text = base64.b32encode(secrets.token_bytes(13)).decode("ascii").lower()[:20]
    return "-".join(text[i:i + 4] for i in range(0, 20, 4))


def check_name(name):
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise AppPasswordError(f"an app password name is 1 to {MAX_NAME} printable characters")
    return name


def _keys(row):
    salt, iterations, stored_key, server_key, hash_name = row
    return ScramCredentials(hash_name, bytes(salt), int(iterations), bytes(stored_key), bytes(server_key))


class AppPasswordStore:
    """The sasl2_app_passwords and sasl2_app_keys tables."""

    def __init__(self, database, clock, limit):
        self._db = database
        self._clock = clock
        self.limit = limit

    def add(self, host, user, name, keys):
        """Store a new app password's keys; fires with its id."""
        app_id = secrets.token_hex(8)
        now = int(self._clock.seconds())

        def add(txn):
            count = txn.execute("SELECT COUNT(*) FROM sasl2_app_passwords WHERE host = ? AND username = ?",
                                (host, user)).fetchone()[0]
            if count >= self.limit:
                raise AppPasswordError(f"at most {self.limit} app passwords per account")
            if txn.execute("SELECT 1 FROM sasl2_app_passwords WHERE host = ? AND username = ? AND name = ?",
                           (host, user, name)).fetchone() is not None:
                raise AppPasswordError(f"an app password called {name!r} exists already")
            txn.execute("INSERT INTO sasl2_app_passwords (host, username, id, name, created)"
                        " VALUES (?, ?, ?, ?, ?)", (host, user, app_id, name, now))
            txn.executemany(
                "INSERT INTO sasl2_app_keys (host, username, id, hash_name, salt, iterations,"
                " stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(host, user, app_id, k.hash_name, k.salt, k.iterations, k.stored_key, k.server_key)
                 for k in keys.values()])
            return app_id

        return self._db.runInteraction("sasl2: add app password", add)

    def list(self, host, user):
        """Fire with [(name, created, last_used or None)], by name."""
        return self._db.runInteraction("sasl2: list app passwords", lambda txn: sorted(txn.execute(
            "SELECT name, created, last_used FROM sasl2_app_passwords WHERE host = ? AND username = ?",
            (host, user)).fetchall()))

    def revoke(self, host, user, name):
        """Delete an app password, its keys and the FAST tokens descending from it; fires
        with its id, or None when there is none of that name."""

        def revoke(txn):
            row = txn.execute("SELECT id FROM sasl2_app_passwords WHERE host = ? AND username = ?"
                              " AND name = ?", (host, user, name)).fetchone()
            if row is None:
                return None
            app_id = row[0]
            for table in ("sasl2_app_passwords", "sasl2_app_keys"):
                txn.execute(f"DELETE FROM {table} WHERE host = ? AND username = ? AND id = ?",
                            (host, user, app_id))
            txn.execute("DELETE FROM sasl2_fast_tokens WHERE host = ? AND username = ? AND origin = ?",
                        (host, user, origin_of(app_id)))
            return app_id

        return self._db.runInteraction("sasl2: revoke app password", revoke)

    def keys_sharing(self, host, user, hash_name, salt, iterations):
        """Fire with [(id, ScramCredentials)] of the app passwords whose keys for
        ``hash_name`` have this salt and iteration count."""

        def find(txn):
            rows = txn.execute(
                "SELECT id, salt, iterations, stored_key, server_key, hash_name FROM sasl2_app_keys"
                " WHERE host = ? AND username = ? AND hash_name = ?", (host, user, hash_name)).fetchall()
            return [(row[0], _keys(row[1:])) for row in rows
                    if bytes(row[1]) == salt and int(row[2]) == iterations]

        return self._db.runInteraction("sasl2: app password keys", find)

    def used(self, host, user, app_id):
        return self._db.runInteraction(
            "sasl2: app password used", lambda txn: txn.execute(
                "UPDATE sasl2_app_passwords SET last_used = ? WHERE host = ? AND username = ? AND id = ?",
                (int(self._clock.seconds()), host, user, app_id)))

    def existing(self, host, user, ids):
        """Fire with the subset of ``ids`` that still exist."""
        ids = list(ids)

        def existing(txn):
            marks = ", ".join("?" for _ in ids)
            return {row[0] for row in txn.execute(
                f"SELECT id FROM sasl2_app_passwords WHERE host = ? AND username = ? AND id IN ({marks})",
                (host, user, *ids)).fetchall()}

        return self._db.runInteraction("sasl2: app passwords still there", existing)


# -- SASL mechanisms that know every credential of the account ---------------------------------

class CredentialLookup:
    """The ``lookup_credentials`` of one exchange: the account's keys for a hash, and, kept
    aside in ``candidates``, the app passwords' keys that share their salt."""

    def __init__(self, account_store, apps, host):
        self._accounts = account_store
        self._apps = apps
        self._host = host
        self.candidates = {}    # hash_name -> [(id, ScramCredentials)]

    def __call__(self, username, hash_name):
        d = self._accounts.get_credentials(self._host, username, hash_name)
        d.addCallback(self._with_apps, username, hash_name)
        return d

    def _with_apps(self, main, username, hash_name):
        if main is None:
            return None
        d = self._apps.keys_sharing(self._host, username, hash_name, main.salt, main.iterations)
        d.addCallback(lambda found: self.candidates.__setitem__(hash_name, found))
        d.addCallback(lambda _: main)
        return d


class MultiKeyScram(ScramMechanism):
    """SCRAM whose proof may match the account's keys or an app password's."""

    def __init__(self, hash_name, plus, context, lookup):
        super().__init__(hash_name, plus, context)
        self._keys_lookup = lookup
        self.origin = None
        self.app_id = None

    def _client_final(self, response):
        outcome = super()._client_final(response)
        if isinstance(outcome, Success):
            self.origin = PASSWORD
            return outcome
        main = self._credentials
        for app_id, keys in self._keys_lookup.candidates.get(self._hash_name, ()):
            self._credentials = keys        # same salt, nonce and messages: only the keys differ
            if isinstance(candidate := super()._client_final(response), Success):
                self.origin, self.app_id = origin_of(app_id), app_id
                return candidate
        self._credentials = main
        return outcome


class MultiKeyPlain(PlainMechanism):
    """PLAIN checking the account's keys, then the app passwords' (derived once: they share
    the salt). Keeps the password of a password login for the XEP-0480 upgrade."""

    def __init__(self, context, lookup):
        super().__init__(context)
        self._keys_lookup = lookup
        self.origin = None
        self.app_id = None
        self.password = None

    def _check_password(self, stored, password, authzid):
        outcome = super()._check_password(stored, password, authzid)
        if isinstance(outcome, Success):
            self.origin, self.password = PASSWORD, password
            return outcome
        apps = self._keys_lookup.candidates.get(stored.hash_name, ()) if stored is not None else ()
        if apps:
            try:
                derived = derive_credentials(password, stored.hash_name, stored.iterations, stored.salt)
            except ValueError:
                return outcome
            for app_id, keys in apps:
                if hmac.compare_digest(derived.stored_key, keys.stored_key):
                    self.origin, self.app_id = origin_of(app_id), app_id
                    return Success(None, self._username, authzid)
        return outcome


def password_mechanism(name, sasl_context, lookup):
    """A SCRAM (any hash, -PLUS) or PLAIN mechanism for ``name``, None if not available."""
    if name not in available_mechanisms(sasl_context.secure, sasl_context.channel_bindings):
        return None
    if name == "PLAIN":
        return MultiKeyPlain(sasl_context, lookup)
    plus = name.endswith("-PLUS")
    label = name[len("SCRAM-"):].removesuffix("-PLUS")
    return MultiKeyScram(_HASH_BY_LABEL[label], plus, sasl_context, lookup)


# -- the part, management, and the commands ----------------------------------------------------

class AppPasswords(Part):
    """Password mechanisms for SASL2, and app password management."""

    def __init__(self, context, store, revocation_check_interval):
        self.context = context
        self.store = store
        self.accounts = context.accounts.store
        if revocation_check_interval > 0:
            context.looping_call(revocation_check_interval, self.check_revocations)

    # -- Part --

    def mechanisms(self, stream, cb):
        return available_mechanisms(stream.secure, list(cb))

    def mechanism(self, name, exchange):
        lookup = CredentialLookup(self.accounts, self.store, exchange.stream.host)
        mechanism = password_mechanism(name, exchange.sasl_context(lookup), lookup)
        return mechanism

    def finish(self, exchange):
        app_id = getattr(exchange.mechanism, "app_id", None)
        if app_id is not None:
            stream = exchange.stream
            return self.store.used(stream.host, exchange.username, app_id).addCallback(lambda _: ())
        return ()

    # -- management --

    @defer.inlineCallbacks
    def create(self, account, name):
        """Make an app password for ``account`` (a bare JID); fires with the password."""
        name = check_name(name)
        main = {}
        for hash_name in SCRAM_HASHES:
            keys = yield self.accounts.get_credentials(account.host, account.user, hash_name)
            if keys is not None:
                main[hash_name] = keys
        if not main:
            raise AppPasswordError(f"{account.userhost()} has no password keys to share a salt with")
        password = generate_password()
        keys = {h: derive_credentials(password, h, k.iterations, k.salt) for h, k in main.items()}
        yield self.store.add(account.host, account.user, name, keys)
        return password

    @defer.inlineCallbacks
    def revoke(self, account, name):
        """Revoke by name and close the sessions it opened; fires with whether it existed."""
        app_id = yield self.store.revoke(account.host, account.user, name)
        if app_id is None:
            return False
        self.close_sessions(account, {origin_of(app_id)})
        return True

    def close_sessions(self, account, origins):
        for session in self.context.sessions(account):
            info = session.data.get(SESSION_KEY)
            if info is None or info.origin not in origins:
                continue
            self.context.log.info("{jid}: its app password was revoked; closing the session",
                                  jid=session.jid.full())
            if session.stream.state == "closed":
                session.stream.end_session()        # hibernating (stream management)
            else:
                session.stream.close(StreamError("not-authorized", "this app password was revoked"))

    def check_revocations(self):
        """Close sessions whose app password disappeared (revoked by summitctl)."""
        by_account = {}
        for session in self.context.all_sessions():
            info = session.data.get(SESSION_KEY)
            if info is not None and info.origin.startswith(APP_PREFIX):
                by_account.setdefault(session.jid.userhostJID(), set()).add(info.origin[len(APP_PREFIX):])
        for account, ids in by_account.items():
            d = self.store.existing(account.host, account.user, ids)
            d.addCallback(lambda alive, account=account, ids=ids: self.close_sessions(
                account, {origin_of(i) for i in ids - alive}))
            d.addErrback(lambda f: self.context.log.failure("checking revoked app passwords", f))

    # -- ad-hoc commands (XEP-0050) --

    def commands(self):
        return [
            Command(NODE_LIST, "List app passwords", self._list),
            Command(NODE_ADD, "Create an app password", self._ask_name, self._add),
            Command(NODE_REVOKE, "Revoke app passwords", self._ask_which, self._revoke),
        ]

    @defer.inlineCallbacks
    def _list(self, account):
        rows = yield self.store.list(account.host, account.user)
        if not rows:
            return Reply(note="This account has no app passwords.")
        return Reply(title="App passwords", reported=(("name", "Name"), ("created", "Created"),
                                                      ("last-used", "Last used")),
                     rows=[{"name": name, "created": _when(created), "last-used": _when(used)}
                           for name, created, used in rows])

    def _ask_name(self, account):
        return Reply(form=[Field("name", label="A name for the device or app", required=True)],
                     title="Create an app password",
                     instructions="The password is shown once: type it into the app's password field.")

    @defer.inlineCallbacks
    def _add(self, account, values):
        name = (values.get("name") or [""])[0]
        try:
            password = yield self.create(account, name)
        except AppPasswordError as e:
            raise StanzaError("not-acceptable", str(e)) from None
        return Reply(title="App password created", note="Shown once; store it in the app now.",
                     result=[Field("name", label="Name", values=(check_name(name),)),
                             Field("password", label="Password", values=(password,))])

    @defer.inlineCallbacks
    def _ask_which(self, account):
        rows = yield self.store.list(account.host, account.user)
        if not rows:
            return Reply(note="This account has no app passwords.")
        return Reply(form=[Field("names", "list-multi", "Revoke", required=True,
                                 options=tuple((name, name) for name, _, _ in rows))],
                     title="Revoke app passwords",
                     instructions="Sessions that logged in with them are closed.")

    @defer.inlineCallbacks
    def _revoke(self, account, values):
        revoked = []
        for name in values.get("names") or ():
            if (yield self.revoke(account, name)):
                revoked.append(name)
        if not revoked:
            raise StanzaError("item-not-found", "no such app password")
        return Reply(note=f"Revoked: {', '.join(revoked)}.")


def _when(seconds):
    return "never" if seconds is None else format_time(seconds)
