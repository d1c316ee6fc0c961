"""MIX and MUC over the same channels (XEP-0408, the "partially integrated" option).

Each channel is reachable as a MUC room at ``name@conference.DOMAIN`` and as a MIX channel
at ``name@mix.DOMAIN``; the two services are faces of the one channel model. Everything
that happens in a channel happens once, in the directory, and is told to every face
through the ``Hub``; each face renders it for its own audience. So what crosses between
the faces is decided here, by the events a face must answer:

* ``message_posted``: a message (archived once, one id): MUC occupants get it from
  ``room/nick``, MIX participants subscribed to the messages node from
  ``channel/participant-id`` with a ``<mix/>`` element.
* ``subject_changed``: the MUC subject, which the MIX face publishes as the channel topic
  (a separate node, not part of MIX core: see ``mix``).
* ``member_changed``: an affiliation, a nick or MIX participation changed. MIX participants
  are shown to MUC occupants as occupants under their nick (joining, leaving, renaming,
  being banned); the MIX face republishes its participants node.
* ``occupant_presence``: a MUC occupant entered, changed status or left: MIX participants
  subscribed to presence (XEP-0403) see it as channel presence.
* ``participant_presence``: a MIX client's presence: MUC occupants see it as the
  participant's occupant presence.
* ``config_changed``, ``retracted``, ``destroyed``, ``created``.

A face answers only the events it implements (``Face`` gives no-op defaults); a face
that fails is logged and the others still hear the event.

The services point at each other in service discovery with the XEP-0408 mirror forms
(``mirror_form``): the MIX service names its MUC mirror and the reverse.
"""

from summitd.plugins.channels.stanzas import form

NS_MIX_MUC = "urn:xmpp:mix:muc:0"
EVENTS = ("message_posted", "subject_changed", "member_changed", "occupant_presence",
          "participant_presence", "config_changed", "retracted", "destroyed", "created")


class Face:
    """A way of reaching channels; every event is ignored unless overridden."""

    kind = None         # "muc" or "mix"

    def address(self, channel):
        """The channel's JID text on this face."""
        raise NotImplementedError

    def service_host(self, host):
        """The service's domain for a hosted domain."""
        raise NotImplementedError


for _event in EVENTS:
    setattr(Face, _event, lambda self, *args: None)


class Hub:
    """Tells every registered face what happened in a channel."""

    def __init__(self, log):
        self._log = log
        self.faces = []

    def register(self, face):
        self.faces.append(face)
        return lambda: self.faces.remove(face)

    def face(self, kind):
        for face in self.faces:
            if face.kind == kind:
                return face
        return None

    def emit(self, event, *args):
        for face in list(self.faces):
            try:
                getattr(face, event)(*args)
            except Exception:
                self._log.failure("channels: the {kind} face failed on {event}", kind=face.kind,
                                  event=event)


def mirror_form(kind, other_host):
    """The XEP-0408 form a service adds to its disco#info to name its mirror on the other
    face: ``kind`` is the other face ("muc" or "mix")."""
    var = f"{kind}-mirror"
    return form("result", f"{NS_MIX_MUC}#{var}", [(var, "jid-single", f"Location of the {kind.upper()} mirror service",
                                                   [other_host])])
