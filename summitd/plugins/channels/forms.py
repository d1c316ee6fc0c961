"""The configuration and information forms of both faces (XEP-0004 data forms), over the one
``ChannelConfig``.

MUC edits it with the ``muc#roomconfig`` form (XEP-0045 §10.2, §15.5.3) and shows it with
``muc#roominfo`` (§15.5.4). MIX edits it with two nodes: information (XEP-0369 §5.6) and
configuration (XEP-0406 §2.4). For MIX the community asked for field names that are
tags, not English labels (XEP-0369 and XEP-0406 use 'Name', 'Messages Node Subscription'
...): here every MIX field is named ``mix#<snake_case>`` (``mix#name``,
``mix#description``, ``mix#messages_node_subscription`` ...) so libraries can handle them
and clients translate the label, which is only a label. The spec's names are accepted
when submitted, for clients written against the XEP text. Channel metadata lives once, in
``ChannelConfig``: the pubsub nodes' own ``pubsub#title``/``pubsub#description`` are not
used for it.

Fields beyond MIX-ADMIN that the community asked for, each optional and each shared with
the MUC face: ``mix#members_only`` (who may join), ``mix#moderated`` (who may write:
voice), ``mix#password`` (an optional password) and ``mix#jid_visibility`` (XEP-0404
'visible' or 'hidden'; 'maybe visible', which needs per-participant preferences, is not
offered).

Each field is described once (``Field``), so the form a client fetches and the parsing
of what it submits cannot disagree. Submitted fields this server does not know are
ignored (clients send forms written for other servers); a value that does not fit its
field is ``not-acceptable`` (XEP-0045 §10.1.3).
"""

from dataclasses import dataclass

from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid
from summitd.plugins.channels.model import ALLOW_PM, RIGHTS, WHOIS
from summitd.plugins.channels.stanzas import form, form_values

NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
NS_ROOMINFO = "http://jabber.org/protocol/muc#roominfo"
NS_MIX_CORE = "urn:xmpp:mix:core:1"
NS_MIX_ADMIN = "urn:xmpp:mix:admin:0"

SUBSCRIBERS = ("participants", "allowed", "anyone")
READERS = ("participants", "allowed", "nobody", "admins", "owners")
UPDATERS = ("participants", "admins", "owners")
RETRACTORS = ("nobody", "admins", "owners")
VISIBILITY = {"anyone": "visible", "moderators": "hidden"}
MAX_USERS_OPTIONS = ("10", "20", "30", "50", "100", "200", "none")


@dataclass(frozen=True)
class Field:
    """One form field: its var, XEP-0004 type, label, the ChannelConfig attribute it edits
    (None: not a configuration value), its options and the names also accepted."""

    var: str
    type: str
    label: str
    attr: str = None
    options: tuple = ()
    aliases: tuple = ()


def _bool(values):
    value = values[0] if values else "0"
    if value not in ("1", "0", "true", "false"):
        raise StanzaError("not-acceptable", "a boolean field takes 0, 1, true or false")
    return value in ("1", "true")


def _jids(values):
    try:
        return tuple(dict.fromkeys(parse_jid(v).userhost() for v in values if v))
    except InvalidJID:
        raise StanzaError("not-acceptable", "not a JID") from None


def _one(values, spec):
    value = values[0] if values else ""
    if spec.options and value not in spec.options:
        raise StanzaError("not-acceptable", f"{spec.var} takes one of {', '.join(spec.options)}")
    return value


def _max_users(values):
    value = values[0] if values else "none"
    if value in ("none", "0", ""):
        return 0
    if not value.isdigit() or int(value) > 100_000:
        raise StanzaError("not-acceptable", "maxusers is a number or 'none'")
    return int(value)


def _parse(spec, values):
    """The config value a submitted field carries."""
    if spec.type == "boolean":
        return _bool(values)
    if spec.type in ("jid-multi", "jid-single"):
        return _jids(values)
    if spec.type == "list-single":
        return _one(values, spec)
    return "\n".join(values) if spec.type == "text-multi" else (values[0] if values else "")


def _shown(spec, value):
    """The form values of a config value."""
    if spec.type == "boolean":
        return ["1" if value else "0"]
    if isinstance(value, tuple):
        return list(value)
    return [str(value)] if value not in ("", None) else []


# -- MUC (XEP-0045) --------------------------------------------------------------------------

MUC_FIELDS = (
    Field("muc#roomconfig_roomname", "text-single", "Natural-language room name", "name"),
    Field("muc#roomconfig_roomdesc", "text-single", "Short description of the room", "description"),
    Field("muc#roomconfig_persistentroom", "boolean", "Make the room persistent", "persistent"),
    Field("muc#roomconfig_publicroom", "boolean", "Make the room publicly searchable", "public"),
    Field("muc#roomconfig_membersonly", "boolean", "Make the room members-only", "members_only"),
    Field("muc#roomconfig_moderatedroom", "boolean", "Make the room moderated", "moderated"),
    Field("muc#roomconfig_passwordprotectedroom", "boolean", "Password required to enter"),
    Field("muc#roomconfig_roomsecret", "text-private", "Password"),
    Field("muc#roomconfig_whois", "list-single", "Who may discover real JIDs", "whois", WHOIS),
    Field("muc#roomconfig_maxusers", "list-single", "Maximum number of occupants", "max_users",
          MAX_USERS_OPTIONS),
    Field("muc#roomconfig_changesubject", "boolean", "Allow occupants to change the subject", "change_subject"),
    Field("muc#roomconfig_allowinvites", "boolean", "Allow occupants to invite others", "allow_invites"),
    Field("muc#roomconfig_allowpm", "list-single", "Who may send private messages", "allow_pm", ALLOW_PM),
    Field("muc#roomconfig_enablearchiving", "boolean", "Archive the room's messages", "archive",
          aliases=("muc#roomconfig_enablelogging",)),
    Field("muc#roomconfig_roomowners", "jid-multi", "Room owners"),
    Field("muc#roomconfig_roomadmins", "jid-multi", "Room admins"),
)


def muc_config_form(channel):
    """The room configuration form (type 'form') with the current values."""
    config = channel.config
    current = {
        "muc#roomconfig_passwordprotectedroom": ["1" if config.password else "0"],
        "muc#roomconfig_roomsecret": [config.password] if config.password else [],
        "muc#roomconfig_maxusers": [str(config.max_users) if config.max_users else "none"],
        "muc#roomconfig_roomowners": channel.with_affiliation("owner"),
        "muc#roomconfig_roomadmins": channel.with_affiliation("admin"),
    }
    fields = []
    for spec in MUC_FIELDS:
        values = current.get(spec.var)
        if values is None:
            values = _shown(spec, getattr(config, spec.attr))
        options = spec.options
        if spec.var == "muc#roomconfig_maxusers" and values[0] not in options:
            options = (values[0],) + options
        fields.append((spec.var, spec.type, spec.label, values, options))
    return form("form", NS_ROOMCONFIG, fields)


def _known(values, specs):
    """{spec: values} of the submitted fields this table knows (by var or alias)."""
    found = {}
    for spec in specs:
        for var in (spec.var,) + spec.aliases:
            if var in values:
                found[spec] = values[var]
    return found


def parse_muc_config(x, channel):
    """(changed config, {bare JID: affiliation}) a submitted room configuration asks for."""
    submitted = _known(form_values(x, NS_ROOMCONFIG), MUC_FIELDS)
    changes = {}
    by_var = {spec.var: values for spec, values in submitted.items()}
    for spec, values in submitted.items():
        if spec.var == "muc#roomconfig_maxusers":
            changes["max_users"] = _max_users(values)
        elif spec.attr is not None:
            changes[spec.attr] = _parse(spec, values)
    protected = by_var.get("muc#roomconfig_passwordprotectedroom")
    secret = by_var.get("muc#roomconfig_roomsecret")
    if protected is not None and not _bool(protected):
        changes["password"] = ""
    elif secret is not None:
        changes["password"] = secret[0] if secret else ""
    if protected is not None and _bool(protected) and not changes.get("password", channel.config.password):
        raise StanzaError("not-acceptable", "a password-protected room needs a password")
    lists = {affiliation: by_var[var] for var, affiliation in
             (("muc#roomconfig_roomowners", "owner"), ("muc#roomconfig_roomadmins", "admin")) if var in by_var}
    return channel.config.changed(**changes), affiliation_lists(lists, channel)


def affiliation_lists(lists, channel):
    """{bare JID: affiliation} making the owner and admin lists what a form submitted:
    ``lists`` maps 'owner'/'admin' to the submitted values; those dropped from a list become
    members. A channel keeps at least one owner (not-acceptable)."""
    wanted = {affiliation: set(_jids(values)) for affiliation, values in lists.items()}
    if "owner" in wanted and not wanted["owner"]:
        raise StanzaError("not-acceptable", "a channel keeps at least one owner")
    changes = {}
    for affiliation, jids in wanted.items():
        for jid in jids:
            changes[jid] = affiliation
    for affiliation, jids in wanted.items():
        for jid in channel.with_affiliation(affiliation):
            if jid not in jids:
                changes.setdefault(jid, "member")
    return changes


def muc_info_form(channel, occupants):
    """The muc#roominfo extended disco information (XEP-0045 §6.4)."""
    config = channel.config
    fields = [
        ("muc#roominfo_description", None, "Description", [config.description] if config.description else []),
        ("muc#roominfo_occupants", None, "Number of occupants", [str(occupants)]),
        ("muc#roominfo_subject", None, "Current subject",
         [channel.subject.text] if channel.subject and channel.subject.text else []),
        ("muc#roomconfig_changesubject", None, "Occupants may change the subject",
         ["1" if config.change_subject else "0"]),
    ]
    if config.contact:
        fields.append(("muc#roominfo_contactjid", None, "Contact addresses", list(config.contact)))
    return form("result", NS_ROOMINFO, fields)


# -- MIX (XEP-0369, XEP-0406) ------------------------------------------------------------------

MIX_INFO_FIELDS = (
    Field("mix#name", "text-single", "Name", "name", aliases=("Name",)),
    Field("mix#description", "text-single", "Description", "description", aliases=("Description",)),
    Field("mix#contact", "jid-multi", "Contact", "contact", aliases=("Contact",)),
)

MIX_CONFIG_FIELDS = (
    Field("mix#last_change_by", "jid-single", "Last change made by", aliases=("Last Change Made By",)),
    Field("mix#owner", "jid-multi", "Owners", aliases=("Owner",)),
    Field("mix#administrator", "jid-multi", "Administrators", aliases=("Administrator",)),
    Field("mix#messages_node_subscription", "list-single", "Who may subscribe to messages",
          "messages_subscription", SUBSCRIBERS, ("Messages Node Subscription",)),
    Field("mix#presence_node_subscription", "list-single", "Who may subscribe to presence",
          "presence_subscription", SUBSCRIBERS, ("Presence Node Subscription",)),
    Field("mix#participants_node_subscription", "list-single", "Who may see the participants",
          "participants_subscription", SUBSCRIBERS + ("nobody", "admins", "owners"),
          ("Participants Node Subscription",)),
    Field("mix#information_node_subscription", "list-single", "Who may see the information",
          "info_subscription", SUBSCRIBERS, ("Information Node Subscription",)),
    Field("mix#allowed_node_subscription", "list-single", "Who may see the allowed list",
          "allowed_subscription", READERS, ("Allowed Node Subscription",)),
    Field("mix#banned_node_subscription", "list-single", "Who may see the banned list",
          "banned_subscription", READERS, ("Banned Node Subscription",)),
    Field("mix#configuration_node_access", "list-single", "Who may see the configuration",
          "config_access", READERS, ("Configuration Node Access",)),
    Field("mix#information_node_update_rights", "list-single", "Who may change the information",
          "info_rights", UPDATERS, ("Information Node Update Rights",)),
    Field("mix#open_presence", "boolean", "Anyone may share presence", "open_presence", aliases=("Open Presence",)),
    Field("mix#user_message_retraction", "boolean", "Participants may retract their messages",
          "user_retraction", aliases=("User Message Retraction",)),
    Field("mix#administrator_message_retraction_rights", "list-single", "Who may retract any message",
          "admin_retraction", RETRACTORS, ("Administrator Message Retraction Rights",)),
    Field("mix#participation_addition_by_invitation", "boolean", "Participants may invite",
          "allow_invites", aliases=("Participation Addition by Invitation from Participant",)),
    Field("mix#private_messages", "boolean", "Private messages are allowed", aliases=("Private Messages",)),
    Field("mix#mandatory_nicks", "boolean", "Every participant needs a nick", "mandatory_nicks",
          aliases=("Mandatory Nicks",)),
    Field("mix#members_only", "boolean", "Only allowed JIDs may join", "members_only"),
    Field("mix#moderated", "boolean", "Only members may write (voice)", "moderated"),
    Field("mix#password", "text-private", "Password to join (optional)", "password"),
    Field("mix#jid_visibility", "list-single", "JID visibility", options=("visible", "hidden"),
          aliases=("JID Visibility",)),
    Field("mix#searchable", "boolean", "Listed in the service's channel list", "public"),
)

assert set(RIGHTS) >= set(SUBSCRIBERS + READERS + UPDATERS)


def _mix_values(channel, specs):
    config = channel.config
    current = {
        "mix#last_change_by": [config.last_change_by] if config.last_change_by else [],
        "mix#owner": channel.with_affiliation("owner"),
        "mix#administrator": channel.with_affiliation("admin"),
        "mix#private_messages": ["0" if config.allow_pm == "none" else "1"],
        "mix#jid_visibility": [VISIBILITY[config.whois]],
    }
    return [(spec.var, spec.type, spec.label,
             current[spec.var] if spec.var in current else _shown(spec, getattr(config, spec.attr)),
             spec.options) for spec in specs]


def mix_info_form(channel, type="result"):
    return form(type, NS_MIX_CORE, _mix_values(channel, MIX_INFO_FIELDS))


def mix_config_form(channel, type="result"):
    return form(type, NS_MIX_ADMIN, _mix_values(channel, MIX_CONFIG_FIELDS))


def parse_mix_info(x, channel):
    """The config after an information node update (fields not given stay)."""
    submitted = _known(form_values(x, NS_MIX_CORE), MIX_INFO_FIELDS)
    return channel.config.changed(**{spec.attr: _parse(spec, values) for spec, values in submitted.items()})


def parse_mix_config(x, channel):
    """(changed config, {bare JID: affiliation}) a configuration node update asks for."""
    submitted = _known(form_values(x, NS_MIX_ADMIN), MIX_CONFIG_FIELDS)
    changes, lists = {}, {}
    for spec, values in submitted.items():
        if spec.attr is not None:
            changes[spec.attr] = _parse(spec, values)
        elif spec.var == "mix#private_messages":
            changes["allow_pm"] = "anyone" if _bool(values) else "none"
        elif spec.var == "mix#jid_visibility":
            changes["whois"] = "anyone" if _one(values, spec) == "visible" else "moderators"
        elif spec.var in ("mix#owner", "mix#administrator"):
            lists["owner" if spec.var == "mix#owner" else "admin"] = values
    return channel.config.changed(**changes), affiliation_lists(lists, channel)
