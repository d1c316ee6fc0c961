"""Client State Indication (XEP-0352, urn:xmpp:csi:0): quiet while the client is in the background.

While a client says it is ``<inactive/>``, presence updates and chat-state
notifications are held back instead of waking its radio; only the latest one per
sender is kept (an old presence is worthless once a newer one exists). They are
flushed, in order, when the client says ``<active/>`` again or when an urgent
stanza (a message with a body) arrives, so nothing is reordered around it. IQs
pass straight through: the client must answer them.
"""

from twisted.words.xish import domish

from summitd.core import events
from summitd.extensions.base import Extension
from summitd.transports.c2s import NONZA

NS_CSI = "urn:xmpp:csi:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
MAX_HELD = 1000     # distinct senders held back per session before flushing anyway


def is_chat_state_only(message):
    """A message that carries only a chat state (typing notifications): not urgent."""
    children = list(message.elements())
    return bool(children) and all(c.uri == NS_CHATSTATES for c in children)


class HeldStanzas:
    """What an inactive session holds back: the latest presence and chat state per sender."""

    def __init__(self, stream):
        self.stream = stream
        self.held = {}          # (kind, from) -> stanza, in arrival order of the latest

    def __call__(self, stanza):
        """The stream's outbound_hold: True when ``stanza`` was held back."""
        name = stanza.name
        if name == "presence" or (name == "message" and is_chat_state_only(stanza)):
            key = (name, stanza.getAttribute("from"))
            self.held.pop(key, None)
            self.held[key] = stanza
            if len(self.held) > MAX_HELD:
                self.flush()
            return True
        if name == "message" and any(c.name == "body" for c in stanza.elements()):
            self.flush()    # urgent: everything held goes first, in order
        return False

    def flush(self, stream=None):
        """Write what is held, in order, to this stream (or to ``stream``, the one that
        resumed this stream's session)."""
        target = stream if stream is not None else self.stream
        held, self.held = self.held, {}
        for stanza in held.values():
            target.write_stanza(stanza)


class ClientStateIndication(Extension):
    def __init__(self, context):
        super().__init__(context)
        context.hook(events.STREAM_FEATURES, self.features)
        context.hook(NONZA, self.nonza)

    def features(self, stream):
        if stream.state == "authenticated":
            return [domish.Element((NS_CSI, "csi"))]
        return None

    def nonza(self, stream, element):
        if element.uri != NS_CSI or stream.state != "bound":
            return None
        if element.name == "inactive":
            if stream.outbound_hold is None:
                stream.outbound_hold = HeldStanzas(stream)
        elif element.name == "active":
            held, stream.outbound_hold = stream.outbound_hold, None
            if held is not None:
                held.flush()
        else:
            return None
        return True


def build(context, config):
    return ClientStateIndication(context)
