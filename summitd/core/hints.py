"""Message Processing Hints (XEP-0334): what the sender asks storage and copying to do.

Offline storage, the archive (MAM) and carbons each read these; one module so
they agree on the rules.
"""

NS_HINTS = "urn:xmpp:hints"

NO_PERMANENT_STORE = "no-permanent-store"
NO_STORE = "no-store"
NO_COPY = "no-copy"
STORE = "store"


def hints(stanza):
    """The set of hint names present on a message (usually empty)."""
    found = set()
    for child in stanza.elements():
        if child.uri == NS_HINTS:
            found.add(child.name)
    return found


def may_store_permanently(stanza):
    """Archive (MAM) allowed: no no-permanent-store and no no-store hint."""
    found = hints(stanza)
    return NO_PERMANENT_STORE not in found and NO_STORE not in found


def may_store(stanza):
    """Offline storage allowed: no no-store hint."""
    return NO_STORE not in hints(stanza)


def may_copy(stanza):
    """Carbon copies allowed: no no-copy hint."""
    return NO_COPY not in hints(stanza)


def wants_store(stanza):
    """The sender asked for storage even where the server would not store by default."""
    return STORE in hints(stanza)
