"""The channel: one model behind both faces of group chat, MUC (XEP-0045) and MIX (XEP-0369).

A channel is what a MUC room and a MIX channel of the same name share (XEP-0408, the
"partially integrated" option: ``room@conference.DOMAIN`` and ``room@mix.DOMAIN`` are one
channel): its configuration, its members (affiliations, registered nicks, MIX
participation), its subject and its history. The faces only render it.

What lives here is pure: data and the rules both faces apply (who may enter, who holds a
nick, which role an affiliation gives, who may act on whom). Nothing here sends a stanza
or touches storage, so the rules are tested once and read in one place.

* ``ChannelConfig``: every option, under one neutral name, that the MUC room configuration
  form (``muc#roomconfig_*``) and the MIX configuration and information nodes (``mix#*``)
  both edit (``forms`` maps the field names).
* ``Member``: what is kept of one bare JID in one channel: affiliation, the nick it holds
  (a MUC registration or its MIX participant nick) and whether it is a MIX participant.
* ``Occupant``: a MUC occupant (in memory only: occupancy ends with the session).
* ``Channel``: the above plus the runtime state of both faces: occupants, MIX presence.

Nicks are one namespace across both faces and compared under the PRECIS
NicknameCaseMapped profile (RFC 8266): a MUC occupant cannot take the nick a MIX
participant or a registered member holds, and the reverse.
"""

import functools
from dataclasses import dataclass, field, fields, replace

from precis_i18n import get_profile

from summitd.core.errors import StanzaError

AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
RANK = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}
ROLES = ("moderator", "participant", "visitor", "none")
ROLE_RANK = {"none": 0, "visitor": 1, "participant": 2, "moderator": 3}

#: MIX rights levels, lowest first ('anyone' includes non-participants; 'nobody' no one).
RIGHTS = ("anyone", "allowed", "participants", "admins", "owners", "nobody")
ALLOW_PM = ("anyone", "participants", "moderators", "none")
WHOIS = ("moderators", "anyone")

MAX_NICK_LENGTH = 64
_NICKNAME = get_profile("NicknameCaseMapped")
_NICKNAME_SHOWN = get_profile("NicknameCasePreserved")


class ChannelError(StanzaError):
    """A rule said no; the condition is the one the XEPs give for it."""


@functools.lru_cache(maxsize=4096)
def nick_key(nick):
    """The form under which nicks are compared (RFC 8266 NicknameCaseMapped); raises
    ChannelError(jid-malformed) for a nick that is not one."""
    try:
        key = _NICKNAME.enforce(nick)
    except (UnicodeError, ValueError):
        raise ChannelError("jid-malformed", "not a valid nickname") from None
    if not key or len(key) > MAX_NICK_LENGTH:
        raise ChannelError("jid-malformed", "a nickname has 1 to 64 characters")
    return key


def clean_nick(nick):
    """A requested nick as it will be shown (NicknameCasePreserved: spaces collapsed, NFC);
    ChannelError(jid-malformed) for one that is not a nick."""
    try:
        shown = _NICKNAME_SHOWN.enforce(nick)
    except (UnicodeError, ValueError):
        raise ChannelError("jid-malformed", "not a valid nickname") from None
    nick_key(shown)
    return shown


@dataclass(frozen=True)
class ChannelConfig:
    """A channel's options. The MUC and MIX forms edit the same fields (see ``forms``)."""

    name: str = ""                      # short name (MUC roomname, MIX info 'name')
    description: str = ""               # long description (MUC roomdesc, MIX info 'description')
    contact: tuple = ()                 # bare JIDs responsible for the channel
    persistent: bool = False            # kept when empty (MIX channels always are)
    public: bool = True                 # listed in disco#items of the services
    members_only: bool = False          # who may join: members only (MIX: the allowed node)
    moderated: bool = False             # who may write: only members and up (voice)
    password: str = ""                  # optional; "" is none
    whois: str = "moderators"           # who sees real JIDs: moderators (admins) or anyone
    max_users: int = 0                  # MUC occupants; 0: the service's limit
    change_subject: bool = False        # participants may set the subject (topic)
    allow_invites: bool = False         # participants may invite (members-only channels)
    allow_pm: str = "anyone"            # who may send private messages
    archive: bool = True                # keep the channel's archive (MAM)
    mandatory_nicks: bool = True        # MIX participants need a nick
    open_presence: bool = False         # non-participants may share presence (MIX)
    messages_subscription: str = "participants"
    presence_subscription: str = "participants"
    participants_subscription: str = "participants"
    info_subscription: str = "participants"
    allowed_subscription: str = "admins"
    banned_subscription: str = "admins"
    config_access: str = "owners"
    info_rights: str = "admins"         # who may change name, description and contact
    user_retraction: bool = False       # participants may retract their own messages
    admin_retraction: str = "owners"    # who may retract any message: nobody|admins|owners
    last_change_by: str = ""

    def to_dict(self):
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self)}

    @classmethod
    def from_dict(cls, data):
        """A config from stored data; unknown keys (a newer version's) are ignored."""
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in data.items():
            if key in known:
                values[key] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def changed(self, **values):
        return replace(self, **values)


@dataclass(frozen=True)
class Member:
    """One bare JID's standing in a channel (what the store keeps)."""

    jid: str                      # bare JID text
    affiliation: str = "none"
    nick: str = None              # the nick it holds: registered (MUC) or participant (MIX)
    participant: bool = False     # a MIX participant (XEP-0369 participants node)

    @property
    def worth_keeping(self):
        return self.affiliation != "none" or self.nick is not None or self.participant


@dataclass(frozen=True)
class Subject:
    text: str
    nick: str = ""                # who set it (a nick, '' for the service)
    by: str = ""                  # their bare JID
    ts: int = 0                   # microseconds since the epoch


@dataclass
class Occupant:
    """A MUC occupant: a nick held by one bare JID through one or more sessions."""

    nick: str
    bare: str
    role: str
    sessions: dict = field(default_factory=dict)   # full JID text -> last presence element

    @property
    def key(self):
        return nick_key(self.nick)


class Channel:
    """One channel: what is stored plus the faces' runtime state."""

    def __init__(self, host, name, config=None, members=None, subject=None, created=0):
        self.host = host                  # the hosted domain the channel belongs to
        self.name = name                  # the localpart of both of its JIDs
        self.config = config or ChannelConfig()
        self.members = dict(members or {})   # bare JID text -> Member
        self.subject = subject
        self.created = created
        self.locked = False               # a new MUC room until its owner configures it
        self.occupants = {}               # nick key -> Occupant
        self.by_full = {}                 # full JID text -> Occupant
        self.presences = {}               # MIX presence: bare JID -> {full JID text: presence}
        self.ids = {}                     # bare JID text -> stable participant/occupant id
        self.by_id = {}                   # stable id -> bare JID text
        self.history = None               # archive.History once loaded

    def __repr__(self):
        return f"<Channel {self.name}@{self.host}>"

    @property
    def key(self):
        return (self.host, self.name)

    # -- standing -------------------------------------------------------------------------

    def affiliation(self, bare):
        member = self.members.get(bare)
        return member.affiliation if member is not None else "none"

    def rank(self, bare):
        return RANK[self.affiliation(bare)]

    def member(self, bare):
        return self.members.get(bare) or Member(bare)

    def participants(self):
        """The MIX participants (Members)."""
        return [m for m in self.members.values() if m.participant]

    def is_participant(self, bare):
        member = self.members.get(bare)
        return member is not None and member.participant

    def with_affiliation(self, affiliation):
        return sorted(m.jid for m in self.members.values() if m.affiliation == affiliation)

    def owners(self):
        return self.with_affiliation("owner")

    def default_role(self, bare):
        """XEP-0045 §5.1.2: the role an affiliation gives on entering."""
        affiliation = self.affiliation(bare)
        if affiliation in ("owner", "admin"):
            return "moderator"
        if affiliation == "member":
            return "participant"
        if affiliation == "outcast":
            return "none"
        return "visitor" if self.config.moderated else "participant"

    def may_see_jids(self, bare, role=None):
        """Whether ``bare`` sees real JIDs: everyone in non-anonymous channels, moderators
        (admins and owners, or an occupant holding the moderator role) otherwise. ``role``
        is the viewer's role when it is an occupant (saves looking it up)."""
        if self.config.whois == "anyone" or role == "moderator" or self.rank(bare) >= RANK["admin"]:
            return True
        if role is not None:
            return False
        return any(o.role == "moderator" for o in self.occupants.values() if o.bare == bare)

    def jid_viewers(self):
        """``may_see_jids`` for many viewers: a predicate on bare JIDs, the moderators found
        once (a fan-out asks it of every recipient)."""
        if self.config.whois == "anyone":
            return lambda bare: True
        moderators = {o.bare for o in self.occupants.values() if o.role == "moderator"}
        return lambda bare: bare in moderators or self.rank(bare) >= RANK["admin"]

    def has_right(self, bare, right):
        """Whether ``bare`` holds a MIX right level ('anyone' ... 'owners', 'nobody')."""
        rank = self.rank(bare)
        if right == "nobody" or rank < 0:
            return False
        if right == "anyone":
            return True
        if right == "allowed":
            return not self.config.members_only or rank >= RANK["member"] or self.is_participant(bare)
        if right == "participants":
            return self.is_participant(bare) or rank >= RANK["admin"]
        if right == "admins":
            return rank >= RANK["admin"]
        return rank >= RANK["owner"]

    def may_write(self, bare, role=None):
        """Voice: in a moderated channel only members and up (or a MUC occupant given the
        participant role) write; a visitor never does."""
        if role is not None:
            return role in ("participant", "moderator")
        return not self.config.moderated or self.rank(bare) >= RANK["member"]

    def may_set_subject(self, bare, role=None):
        if role == "moderator" or self.rank(bare) >= RANK["admin"]:
            return True
        return self.config.change_subject and self.may_write(bare, role)

    # -- nicks -------------------------------------------------------------------------------

    def nick_holder(self, nick):
        """The bare JID holding ``nick`` (an occupant's, a participant's or a registered one),
        or None."""
        key = nick_key(nick)
        occupant = self.occupants.get(key)
        if occupant is not None:
            return occupant.bare
        for member in self.members.values():
            if member.nick is not None and nick_key(member.nick) == key:
                return member.jid
        return None

    def check_nick(self, bare, nick):
        """ChannelError(conflict) unless ``bare`` may use ``nick``."""
        holder = self.nick_holder(nick)
        if holder is not None and holder != bare:
            raise ChannelError("conflict", "that nickname is taken")

    def occupant_by_nick(self, nick):
        try:
            return self.occupants.get(nick_key(nick))
        except ChannelError:
            return None

    # -- entering (XEP-0045 §7.2, XEP-0369 join) -------------------------------------------------

    def check_entry(self, bare, nick, password, invited=False):
        """Raise the error for a JID that may not enter, in the order of XEP-0045 §7.2:
        banned, members-only, password, nick conflict, occupant limit (not here: the face
        knows the service's limit)."""
        rank = self.rank(bare)
        if rank < 0:
            raise ChannelError("forbidden", "you are banned from this channel")
        if self.config.members_only and rank < RANK["member"] and not invited and not self.is_participant(bare):
            raise ChannelError("registration-required", "this channel is for members only")
        if self.config.password and rank < RANK["admin"] and password != self.config.password:
            raise ChannelError("not-authorized", "a password is required" if not password else "wrong password")
        if nick is not None:
            self.check_nick(bare, nick)

    # -- acting on others (XEP-0045 §8, §9) --------------------------------------------------

    def check_role_change(self, actor_bare, actor_role, target, role):
        """May an occupant with ``actor_role`` give ``target`` (an Occupant) ``role``?"""
        if actor_role != "moderator":
            raise ChannelError("forbidden", "only moderators change roles")
        if role == "none" and target.bare == actor_bare:
            raise ChannelError("conflict", "you cannot kick yourself")
        actor_rank, target_rank = self.rank(actor_bare), self.rank(target.bare)
        if role == "moderator" or (target.role == "moderator" and role != "none"):
            if actor_rank < RANK["admin"]:
                raise ChannelError("forbidden", "only admins and owners grant or revoke moderation")
        if target_rank >= RANK["admin"] and role != "moderator":
            raise ChannelError("not-allowed", "admins and owners keep their role")
        if target_rank > actor_rank:
            raise ChannelError("not-allowed", "you cannot act on a higher affiliation")

    def check_affiliation_change(self, actor_bare, target_bare, affiliation):
        """May ``actor_bare`` give ``target_bare`` ``affiliation`` (XEP-0045 §9, §10)?"""
        actor = self.rank(actor_bare)
        before = self.affiliation(target_bare)
        if actor < RANK["admin"]:
            raise ChannelError("forbidden", "only admins and owners change affiliations")
        touches_owners = "owner" in (affiliation, before) or "admin" in (affiliation, before)
        if touches_owners and actor < RANK["owner"]:
            raise ChannelError("not-allowed" if before in ("owner", "admin") else "forbidden",
                               "only owners grant or revoke admin and owner status")
        if target_bare == actor_bare and affiliation == "outcast":
            raise ChannelError("conflict", "you cannot ban yourself")
        if before == "owner" and affiliation != "owner" and self.owners() == [target_bare]:
            raise ChannelError("conflict", "a channel keeps at least one owner")
