"""Stream and stanza errors (RFC 6120 §4.9 and §8.3) as exceptions that know their XML.

Raise ``StanzaError`` from any handler: the IQ funnel and the router turn it into
the error reply. Raise ``StreamError`` from stream code: the transport sends it
and closes the stream.
"""

from twisted.words.xish import domish

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"

#: RFC 6120 §8.3.3: each defined condition and its usual error type.
STANZA_CONDITIONS = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}

#: RFC 6120 §4.9.3: the defined stream error conditions.
STREAM_CONDITIONS = frozenset({
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout",
    "host-gone", "host-unknown", "improper-addressing", "internal-server-error",
    "invalid-from", "invalid-namespace", "invalid-xml", "not-authorized",
    "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
    "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown",
    "undefined-condition", "unsupported-encoding", "unsupported-feature",
    "unsupported-stanza-type", "unsupported-version",
})


class StanzaError(Exception):
    """A stanza-level error: the stanza fails, the stream goes on."""

    def __init__(self, condition, text=None, type=None, app_condition=None):
        if condition not in STANZA_CONDITIONS:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(condition, text)
        self.condition = condition
        self.text = text
        self.type = type or STANZA_CONDITIONS[condition]
        self.app_condition = app_condition

    def to_element(self):
        """The ``<error/>`` child for an error reply."""
        error = domish.Element((None, "error"))
        error["type"] = self.type
        error.addElement((NS_STANZA_ERRORS, self.condition))
        if self.text:
            error.addElement((NS_STANZA_ERRORS, "text"), content=self.text)
        if self.app_condition is not None:
            error.addChild(self.app_condition)
        return error

    def reply_to(self, stanza):
        """An error stanza answering ``stanza`` (addresses swapped, payload kept for IQs only
        when small); the caller routes it."""
        reply = domish.Element((stanza.uri, stanza.name))
        reply["type"] = "error"
        if stanza.getAttribute("id") is not None:
            reply["id"] = stanza["id"]
        if stanza.getAttribute("from") is not None:
            reply["to"] = stanza["from"]
        if stanza.getAttribute("to") is not None:
            reply["from"] = stanza["to"]
        reply.addChild(self.to_element())
        return reply


class StreamError(Exception):
    """A stream-level error: the stream is closed after it is sent."""

    def __init__(self, condition, text=None):
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def to_element(self):
        error = domish.Element((NS_STREAMS, "error"))
        error.addElement((NS_STREAM_ERRORS, self.condition))
        if self.text:
            error.addElement((NS_STREAM_ERRORS, "text"), content=self.text)
        return error
