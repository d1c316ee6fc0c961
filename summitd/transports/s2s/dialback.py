"""Server Dialback (XEP-0220): keys and the elements that carry them.

Keys are generated as XEP-0185 recommends (and XEP-0220 §2.1.1 shows)::

    key = HEX(HMAC-SHA256(HEX(SHA256(secret)), receiving + " " + originating + " " + stream_id))

with the per-server secret (``server.secret`` in data_dir). They are stateless: the
Authoritative Server recomputes the key from the 'from', 'to' and 'id' of a
``<db:verify/>`` instead of remembering the keys it sent, so a restart does not break
verifications in flight only if the secret survives, which it does.

Dialback errors (XEP-0220 §2.4) are ``<db:result type='error'>`` / ``<db:verify
type='error'>`` carrying a stanza error; they do not close the stream.
"""

import hashlib
import hmac

from twisted.words.xish import domish

from summitd.core.errors import NS_STANZA_ERRORS, STANZA_CONDITIONS
from summitd.core.xmlwriter import escape_attribute

NS_DIALBACK = "jabber:server:dialback"
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"
RESULT_TYPES = frozenset({"valid", "invalid", "error"})
MAX_KEY_LENGTH = 512    # our keys are 64 hex digits; a peer's could be longer, not this long


def generate_key(secret, receiving, originating, stream_id):
    """The dialback key for a stream from ``originating`` to ``receiving`` with ``stream_id``."""
    hashed = hashlib.sha256(secret).hexdigest().encode("ascii")
    message = f"{receiving} {originating} {stream_id}".encode("utf-8")
    return hmac.new(hashed, message, hashlib.sha256).hexdigest()


def key_is_valid(secret, receiving, originating, stream_id, key):
    """Constant-time comparison of a presented key with the one we would have generated."""
    expected = generate_key(secret, receiving, originating, stream_id)
    return hmac.compare_digest(expected.encode("ascii"), key.strip().encode("utf-8", "replace"))


def element_text(element):
    """The key carried by a dialback element ('' when none, or when absurdly long)."""
    text = "".join(c for c in element.children if isinstance(c, str)).strip()
    return text if len(text) <= MAX_KEY_LENGTH else ""


def dialback_xml(name, sender, target, type=None, key=None, id=None, error=None):
    """``<db:result/>`` or ``<db:verify/>`` as text, using the 'db' prefix our stream header
    declares (XEP-0220 §2: some servers accept only that prefix). ``error`` is a stanza error
    condition (XEP-0220 §2.4 also uses remote-connection-failed, which RFC 6120 defines
    only as a stream error)."""
    attrs = f" from='{escape_attribute(sender)}' to='{escape_attribute(target)}'"
    if id is not None:
        attrs += f" id='{escape_attribute(id)}'"
    if type is not None:
        attrs += f" type='{type}'"
    if error is not None:
        body = error_xml(error)
    elif key is not None:
        body = escape_attribute(key)
    else:
        return f"<db:{name}{attrs}/>"
    return f"<db:{name}{attrs}>{body}</db:{name}>"


def error_xml(condition):
    """The ``<error/>`` child of a dialback error (in jabber:server, the stream's namespace)."""
    type = STANZA_CONDITIONS.get(condition, "cancel")
    return f"<error type='{type}'><{condition} xmlns='{NS_STANZA_ERRORS}'/></error>"


def error_condition(element):
    """The stanza error condition inside a dialback error ('undefined-condition' if none)."""
    for child in element.elements():
        if child.name == "error":
            for condition in child.elements():
                if condition.name != "text":
                    return condition.name
    return "undefined-condition"


def feature():
    """``<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>`` (XEP-0220 §2.3.2)."""
    element = domish.Element((NS_DIALBACK_FEATURE, "dialback"))
    element.addElement("errors")
    return element

