"""Node configuration, publish-options preconditions and subscription options (XEP-0060
§8.2, §7.1.5, §6.3, and the pubsub#node_config / pubsub#subscribe_options registrations of
§16.4; forms are XEP-0004 data forms).

A node's configuration is a dict of field -> value (bool, str, list of str, or for
``pubsub#max_items`` an int or "max", the service limit, kept as "max" so that it follows a
changed limit). Only the fields below exist: a configuration form lists them, a submitted
form that sets others is refused (``not-acceptable``, §8.2.5.2) and so is a precondition on
an unknown field (``precondition-not-met``: §7.1.5 requires rejecting it). Collection nodes
(XEP-0248) are not supported.
"""

from dataclasses import dataclass

from summitd.core.errors import StanzaError
from summitd.plugins.pubsub.protocol import (
    NS_META_DATA, NS_NODE_CONFIG, NS_SUBSCRIBE_OPTIONS, error, form_element, form_values, unsupported)

ACCESS_MODELS = ("authorize", "open", "presence", "roster", "whitelist")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")
NOTIFICATION_TYPES = ("headline", "normal")
MAX = "max"


@dataclass(frozen=True)
class Field:
    var: str
    type: str
    label: str
    options: tuple = ()


FIELDS = {field.var: field for field in (
    Field("pubsub#title", "text-single", "A friendly name for the node"),
    Field("pubsub#description", "text-single", "A description of the node"),
    Field("pubsub#type", "text-single", "The namespace of the payloads (empty: any)"),
    Field("pubsub#node_type", "list-single", "The node type", ("leaf",)),
    Field("pubsub#max_items", "text-single", "The maximum number of items to persist ('max': the service limit)"),
    Field("pubsub#persist_items", "boolean", "Whether to persist items"),
    Field("pubsub#access_model", "list-single", "Who may subscribe and retrieve items", ACCESS_MODELS),
    Field("pubsub#roster_groups_allowed", "list-multi", "The roster groups allowed (access model 'roster')"),
    Field("pubsub#publish_model", "list-single", "Who may publish", PUBLISH_MODELS),
    Field("pubsub#send_last_published_item", "list-single", "When to send the last published item", SEND_LAST),
    Field("pubsub#deliver_notifications", "boolean", "Whether to deliver event notifications"),
    Field("pubsub#deliver_payloads", "boolean", "Whether to deliver payloads with notifications"),
    Field("pubsub#notify_config", "boolean", "Notify subscribers when the configuration changes"),
    Field("pubsub#notify_delete", "boolean", "Notify subscribers when the node is deleted"),
    Field("pubsub#notify_retract", "boolean", "Notify subscribers when items are removed"),
    Field("pubsub#notify_sub", "boolean", "Notify owners about new subscribers and unsubscribes"),
    Field("pubsub#notification_type", "list-single", "The message type of notifications", NOTIFICATION_TYPES),
    Field("pubsub#subscribe", "boolean", "Whether to allow subscriptions"),
)}

BASE_DEFAULTS = {
    "pubsub#title": "",
    "pubsub#description": "",
    "pubsub#type": "",
    "pubsub#node_type": "leaf",
    "pubsub#max_items": 10,
    "pubsub#persist_items": True,
    "pubsub#access_model": "open",
    "pubsub#roster_groups_allowed": [],
    "pubsub#publish_model": "publishers",
    "pubsub#send_last_published_item": "on_sub",
    "pubsub#deliver_notifications": True,
    "pubsub#deliver_payloads": True,
    "pubsub#notify_config": False,
    "pubsub#notify_delete": True,
    "pubsub#notify_retract": True,
    "pubsub#notify_sub": False,
    "pubsub#notification_type": "headline",
    "pubsub#subscribe": True,
}


def max_items(config, limit):
    """The number of items the node keeps (0 when it persists none)."""
    if not config["pubsub#persist_items"]:
        return 0
    value = config["pubsub#max_items"]
    return limit if value == MAX else min(value, limit)


def _boolean(values):
    text = values[0] if len(values) == 1 else None
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    raise ValueError("must be a boolean")


def parse_value(var, values, limit):
    """The value of field ``var`` from submitted ``values``; ValueError saying why not."""
    field = FIELDS[var]
    if var == "pubsub#max_items":
        text = values[0] if len(values) == 1 else ""
        if text == MAX:
            return MAX
        if not (text.isascii() and text.isdigit()) or int(text) > limit:
            raise ValueError(f"must be 'max' or an integer from 0 to {limit}")
        return int(text)
    if field.type == "boolean":
        return _boolean(values)
    if field.type == "list-multi":
        return sorted(set(values))
    if len(values) > 1:
        raise ValueError("takes one value")
    value = values[0] if values else ""
    if field.options and value not in field.options:
        raise ValueError(f"must be one of {', '.join(field.options)}")
    return value


def _refuse_collections(values):
    if values.get("pubsub#node_type", ["leaf"]) != ["leaf"]:
        raise unsupported("collections", "only leaf nodes are supported")


def configured(config, form, limit):
    """``config`` with a submitted node_config form applied; not-acceptable on bad values."""
    values = form_values(form)
    _refuse_collections(values)
    result = dict(config)
    for var, submitted in values.items():
        if var not in FIELDS:
            raise StanzaError("not-acceptable", f"no configuration field {var}")
        try:
            result[var] = parse_value(var, submitted, limit)
        except ValueError as e:
            if var == "pubsub#access_model":
                raise error("not-acceptable", "unsupported-access-model", f"{var} {e}") from None
            raise StanzaError("not-acceptable", f"{var} {e}") from None
    return result


def preconditions(form, limit):
    """{var: value} of a publish-options form; precondition-not-met for fields or values we
    cannot check (XEP-0060 §7.1.5: unknown fields are rejected)."""
    values = form_values(form)
    wanted = {}
    for var, submitted in values.items():
        if var not in FIELDS:
            raise error("conflict", "precondition-not-met", f"unknown publish option {var}")
        try:
            wanted[var] = parse_value(var, submitted, limit)
        except ValueError as e:
            raise error("conflict", "precondition-not-met", f"{var} {e}") from None
    return wanted


def _same(var, have, want, limit):
    if var == "pubsub#max_items":
        return (limit if have == MAX else have) == (limit if want == MAX else want)
    return have == want


def check_preconditions(config, wanted, limit):
    """conflict/precondition-not-met unless the node's configuration matches ``wanted``."""
    for var, want in wanted.items():
        if not _same(var, config[var], want, limit):
            raise error("conflict", "precondition-not-met", f"the node's {var} does not match")


def _text(value):
    """A configuration value as form values."""
    if isinstance(value, bool):
        return ["1" if value else "0"]
    if isinstance(value, list):
        return list(value)
    return [str(value)]


def config_form(config, form_type="form"):
    """The node_config form showing ``config`` (configure get, default, notifications)."""
    fields = [(f.var, f.type, _text(config[f.var]), f.label, f.options) for f in FIELDS.values()]
    return form_element(form_type, NS_NODE_CONFIG, fields)


def metadata_form(node):
    """The pubsub#meta-data form of a node's disco#info (XEP-0060 §5.4)."""
    config = node.config
    owners = sorted(jid for jid, affiliation in node.affiliations.items() if affiliation == "owner")
    fields = [
        ("pubsub#type", "text-single", _text(config["pubsub#type"]), None, ()),
        ("pubsub#title", "text-single", _text(config["pubsub#title"]), None, ()),
        ("pubsub#description", "text-single", _text(config["pubsub#description"]), None, ()),
        ("pubsub#access_model", "list-single", _text(config["pubsub#access_model"]), None, ()),
        ("pubsub#publish_model", "list-single", _text(config["pubsub#publish_model"]), None, ()),
        ("pubsub#max_items", "text-single", _text(config["pubsub#max_items"]), None, ()),
        ("pubsub#persist_items", "boolean", _text(config["pubsub#persist_items"]), None, ()),
        ("pubsub#owner", "jid-multi", owners, None, ()),
        ("pubsub#num_subscribers", "text-single", [str(len(node.subscriptions))], None, ()),
    ]
    return form_element("result", NS_META_DATA, fields)


# -- subscription options (§6.3) ---------------------------------------------------------

SUBSCRIPTION_DEFAULTS = {"pubsub#deliver": True}


def options_form(options, form_type="form"):
    """The subscribe_options form for a subscription's ``options``."""
    return form_element(form_type, NS_SUBSCRIBE_OPTIONS, [
        ("pubsub#deliver", "boolean", _text(options.get("pubsub#deliver", True)),
         "Whether notifications are delivered", ())])


def parsed_options(form):
    """Subscription options from a submitted form; bad-request/invalid-options when invalid."""
    options = dict(SUBSCRIPTION_DEFAULTS)
    for var, values in form_values(form).items():
        if var != "pubsub#deliver":
            raise error("bad-request", "invalid-options", f"no subscription option {var}")
        try:
            options[var] = _boolean(values)
        except ValueError:
            raise error("bad-request", "invalid-options", f"{var} must be a boolean") from None
    return options
