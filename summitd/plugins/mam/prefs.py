"""Archiving preferences (XEP-0441, in the urn:xmpp:mam:2 namespace): which messages a user
wants archived.

A user has a default ('always', 'never' or 'roster': only contacts in the roster)
and two lists of JIDs that override it. A bare JID in a list matches every
resource of that entity, a full JID only itself. A JID in both lists is not
archived: 'never' wins, because an archive that holds too little can be fixed
later and one that holds too much cannot.

Users who never set preferences get the server's configured default. The few
who did are loaded into memory at start and kept there (``Preferences``), so the
decision on the message hot path is a dict lookup, never a database read.
'roster' asks the roster extension's ``IRoster`` provider; without the roster
extension loaded, nobody is in a roster and 'roster' archives nothing (the user
chose not to archive strangers, and we cannot tell strangers from contacts).
"""

from dataclasses import dataclass

from twisted.words.xish import domish

from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid

NS_MAM = "urn:xmpp:mam:2"
MODES = ("always", "never", "roster")


@dataclass(frozen=True)
class Prefs:
    default: str
    always: frozenset = frozenset()
    never: frozenset = frozenset()


def parse_prefs(element, max_jids):
    """Prefs from a ``<prefs/>`` set request; StanzaError for anything malformed."""
    default = element.getAttribute("default")
    if default not in MODES:
        raise StanzaError("bad-request", "'default' must be always, never or roster")
    lists = {"always": set(), "never": set()}
    for child in element.elements():
        if child.uri != NS_MAM or child.name not in lists:
            continue
        for item in child.elements():
            if item.name != "jid":
                continue
            try:
                jid = parse_jid(str(item).strip())
            except InvalidJID:
                raise StanzaError("jid-malformed", f"not a JID in <{child.name}/>") from None
            lists[child.name].add(jid.full())
    if len(lists["always"]) + len(lists["never"]) > max_jids:
        raise StanzaError("not-acceptable", f"at most {max_jids} JIDs in the preferences")
    return Prefs(default, frozenset(lists["always"]), frozenset(lists["never"]))


def build_prefs(prefs):
    """The ``<prefs/>`` element describing ``prefs`` (both lists always present)."""
    element = domish.Element((NS_MAM, "prefs"))
    element["default"] = prefs.default
    for name in ("always", "never"):
        listed = element.addElement(name)
        for jid in sorted(getattr(prefs, name)):
            listed.addElement("jid", content=jid)
    return element


class Preferences:
    """Every account's preferences, in memory, persisted through the archive store."""

    def __init__(self, store, default_mode):
        self._store = store
        self._default = Prefs(default_mode)
        self._prefs = {}    # (host, user) -> Prefs, only for accounts that set them

    def load(self):
        d = self._store.load_prefs()
        d.addCallback(self._loaded)
        return d

    def _loaded(self, prefs):
        self._prefs = dict(prefs)

    def get(self, host, user):
        return self._prefs.get((host, user), self._default)

    def set(self, host, user, prefs):
        """Persist, then use; fires when stored."""
        d = self._store.save_prefs(host, user, prefs)
        d.addCallback(lambda _: self._prefs.__setitem__((host, user), prefs))
        return d

    def forget(self, host, user):
        self._prefs.pop((host, user), None)

    def decide(self, owner, contact, in_roster):
        """Whether to archive a message with ``contact`` (a JID) in the archive of ``owner``
        (a bare JID): True, False, or a Deferred firing with either (the roster lookup).
        ``in_roster(owner, contact_bare)`` answers for the 'roster' mode."""
        prefs = self._prefs.get((owner.host, owner.user), self._default)
        if prefs.never or prefs.always:
            full, bare = contact.full(), contact.userhost()
            if full in prefs.never or bare in prefs.never:
                return False
            if full in prefs.always or bare in prefs.always:
                return True
        if prefs.default == "roster":
            return in_roster(owner, contact.userhostJID())
        return prefs.default == "always"
