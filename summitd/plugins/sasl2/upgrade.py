"""SASL upgrade tasks (XEP-0480, urn:xmpp:sasl:upgrade:0): accounts whose keys predate
SCRAM-SHA-256 get them at their next login.

The server cannot derive new keys from old ones; only the client, which has the password,
can. So <authentication/> lists ``UPGR-SCRAM-SHA-256`` (and one task per SCRAM hash), a
client asks for the tasks it knows with <upgrade/> in <authenticate/>, and after a login
with the account password (app passwords and FAST tokens have no account password to
give) each task the account needs runs (XEP-0480 §scram)::

    S: <continue><tasks><task>UPGR-SCRAM-SHA-256</task></tasks></continue>
    C: <next task='UPGR-SCRAM-SHA-256'/>
    S: <task-data><salt xmlns='urn:xmpp:scram-upgrade:0' iterations='4096'>base64</salt></task-data>
    C: <task-data><hash xmlns='urn:xmpp:scram-upgrade:0'>base64 SaltedPassword</hash></task-data>
    S: <success/> (or the next task)

and the server stores StoredKey and ServerKey computed from that SaltedPassword (RFC 5802
§3), keeping the older keys (XEP-0480 §rules). A PLAIN login shows the server the
password, so there the keys are derived at once without a task. Tasks are only run when
asked for: a client that does not know them (xmpp.js handles no <continue/>) is never
sent one.
"""

import base64
import binascii
import hashlib
import hmac
import os

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.sasl.credentials import SCRAM_HASHES, ScramCredentials
from summitd.sasl.mechanism import Failure
from summitd.sasl.scram import SALT_LENGTH, derive_credentials
from summitd.plugins.sasl2.authenticate import PASSWORD, Part, TaskData, TaskDone

NS_UPGRADE = "urn:xmpp:sasl:upgrade:0"
NS_SCRAM_UPGRADE = "urn:xmpp:scram-upgrade:0"
PREFIX = "UPGR-SCRAM-"

#: task name -> hashlib name
TASKS = {PREFIX + label: hash_name for hash_name, label in SCRAM_HASHES.items()}


def keys_from_salted(hash_name, salt, iterations, salted):
    """RFC 5802 §3: the stored keys for a SaltedPassword."""
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    return ScramCredentials(hash_name, salt, iterations, hashlib.new(hash_name, client_key).digest(),
                            hmac.new(salted, b"Server Key", hash_name).digest())


class Upgrades(Part):
    def __init__(self, context):
        self.context = context
        self.accounts = context.accounts.store

    def advertise(self, stream, cb):
        elements = []
        for name in TASKS:
            element = domish.Element((NS_UPGRADE, "upgrade"))
            element.addContent(name)
            elements.append(element)
        return elements

    @defer.inlineCallbacks
    def _keys(self, host, user):
        found = {}
        for hash_name in SCRAM_HASHES:
            keys = yield self.accounts.get_credentials(host, user, hash_name)
            if keys is not None:
                found[hash_name] = keys
        return found

    def add_keys(self, host, user, keys):
        """Add ``keys`` (ScramCredentials) to the account's, keeping the others."""
        d = self._keys(host, user)
        d.addCallback(lambda found: self.accounts.set_credentials(host, user, {**found, keys.hash_name: keys}))
        return d

    @defer.inlineCallbacks
    def tasks(self, exchange):
        if exchange.origin != PASSWORD or exchange.via_fast:
            return []
        host, user = exchange.stream.host, exchange.username
        found = yield self._keys(host, user)
        missing = [h for h in SCRAM_HASHES if h not in found]
        if not missing:
            return []
        password = getattr(exchange.mechanism, "password", None)
        if password is not None:        # PLAIN: derive the missing keys now
            iterations = exchange.stream.server.config.auth.scram_iterations
            for hash_name in missing:
                yield self.add_keys(host, user, derive_credentials(password, hash_name, iterations))
                self.context.log.info("{user}@{host}: added {hash} keys at a PLAIN login",
                                      user=user, host=host, hash=hash_name)
            return []
        wanted = [TASKS.get(str(e).strip()) for e in exchange.children(NS_UPGRADE, "upgrade")]
        iterations = exchange.stream.server.config.auth.scram_iterations
        return [UpgradeTask(self, host, user, h, iterations) for h in missing if h in wanted]


class UpgradeTask:
    """One UPGR-SCRAM-* task."""

    text = None

    def __init__(self, upgrades, host, user, hash_name, iterations):
        self.upgrades = upgrades
        self.host = host
        self.user = user
        self.hash_name = hash_name
        self.name = PREFIX + SCRAM_HASHES[hash_name]
        self.iterations = iterations
        self.salt = os.urandom(SALT_LENGTH)

    def start(self, exchange, element):
        salt = domish.Element((NS_SCRAM_UPGRADE, "salt"))
        salt["iterations"] = str(self.iterations)
        salt.addContent(base64.b64encode(self.salt).decode("ascii"))
        return TaskData(salt)

    def step(self, exchange, element):
        salted = None
        for child in element.elements():
            if child.uri == NS_SCRAM_UPGRADE and child.name == "hash":
                try:
                    salted = base64.b64decode("".join(str(child).split()), validate=True)
                except (binascii.Error, ValueError):
                    salted = None
        if salted is None or len(salted) != hashlib.new(self.hash_name).digest_size:
            return Failure("malformed-request", "expected <hash/> with the SaltedPassword", self.user)
        keys = keys_from_salted(self.hash_name, self.salt, self.iterations, salted)
        d = self.upgrades.add_keys(self.host, self.user, keys)
        d.addCallback(lambda _: TaskDone())
        self.upgrades.context.log.info("{user}@{host}: upgraded to {task}", user=self.user,
                                       host=self.host, task=self.name)
        return d
