"""A bound client session: the routing table's entry for one full JID."""


class Session:
    """One resource of one account, as the router sees it.

    ``stream`` is the transport side (c2s today, WebSocket later) and must offer
    ``send(element)`` and ``close(stream_error)``. ``data`` is a small dict for
    extensions' per-session state, keyed by the extension's name.
    """

    __slots__ = ("jid", "stream", "available", "priority", "presence", "data")

    def __init__(self, jid, stream):
        self.jid = jid
        self.stream = stream
        self.available = False      # sent initial presence and not yet unavailable
        self.priority = 0
        self.presence = None        # the last broadcast presence stanza
        self.data = {}

    def send(self, stanza):
        self.stream.send(stanza)

    def __repr__(self):
        return f"<Session {self.jid}>"
