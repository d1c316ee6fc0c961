"""Small stanza builders the group chat faces share (RFC 6120 stanzas, XEP-0203 delays).

One message is built per event and addressed per recipient with ``addressed``, which
copies the attributes and the list of children but shares the child elements: a room of
a thousand occupants builds one set of payload elements, not a thousand. The list is
copied because a recipient's server may add children of its own (a stanza-id).
"""

from twisted.words.xish import domish

from summitd.core.errors import StanzaError

NS_CLIENT = "jabber:client"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"
NS_ORIGIN_ID = "urn:xmpp:sid:0"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_DATA = "jabber:x:data"


def stanza(name, sender, to=None, type=None, id=None):
    element = domish.Element((NS_CLIENT, name))
    element["from"] = sender
    if to is not None:
        element["to"] = to
    if type is not None:
        element["type"] = type
    if id is not None:
        element["id"] = id
    return element


def addressed(element, to):
    """A copy of ``element`` for ``to`` sharing its child elements."""
    copy = domish.Element((element.uri, element.name))
    copy.attributes = dict(element.attributes)
    copy.attributes["to"] = to
    copy.children = list(element.children)
    return copy


def delay(stamp, by):
    element = domish.Element((NS_DELAY, "delay"))
    element["stamp"] = stamp
    element["from"] = by
    return element


def stanza_id(archive_id, by):
    element = domish.Element((NS_SID, "stanza-id"))
    element["id"] = archive_id
    element["by"] = by
    return element


def occupant_id(value):
    element = domish.Element((NS_OCCUPANT_ID, "occupant-id"))
    element["id"] = value
    return element


def error_reply(original, error, by=None, extra=None):
    """The error answer to ``original`` (a StanzaError), with the XEP-0045 'by' and an
    optional payload (the <x/> a MUC presence error carries)."""
    reply = error.reply_to(original)
    if extra is not None:
        reply.children.insert(0, extra)
    if by is not None:
        for child in reply.elements():
            if child.name == "error":
                child["by"] = by
    return reply


def iq_result(iq, payload=None):
    reply = domish.Element((NS_CLIENT, "iq"))
    reply["type"] = "result"
    reply["id"] = iq.getAttribute("id", "")
    if iq.getAttribute("to") is not None:
        reply["from"] = iq["to"]
    if iq.getAttribute("from") is not None:
        reply["to"] = iq["from"]
    if payload is not None:
        reply.addChild(payload)
    return reply


def child(element, uri, name):
    """The first child element {uri}name, or None."""
    for found in element.elements():
        if found.name == name and found.uri == uri:
            return found
    return None


def text_of(element, uri, name):
    """The text of the child {uri}name, or None when there is none."""
    found = child(element, uri, name)
    return None if found is None else str(found)


def payload(element):
    """The single child element of an IQ, or StanzaError(bad-request)."""
    children = list(element.elements())
    if len(children) != 1:
        raise StanzaError("bad-request", "an IQ get or set has exactly one child")
    return children[0]


def form(x_type, form_type, fields):
    """A jabber:x:data form: fields are (var, type, label, values[, options]) tuples."""
    x = domish.Element((NS_DATA, "x"))
    x["type"] = x_type
    hidden = x.addElement("field")
    hidden["var"], hidden["type"] = "FORM_TYPE", "hidden"
    hidden.addElement("value", content=form_type)
    for var, field_type, label, values, *options in fields:
        field = x.addElement("field")
        field["var"] = var
        if field_type:
            field["type"] = field_type
        if label:
            field["label"] = label
        for value in values:
            field.addElement("value", content=value)
        for option in (options[0] if options else ()):
            field.addElement("option").addElement("value", content=option)
    return x


def form_values(x, form_type):
    """{var: [values]} of a submitted form; StanzaError(bad-request) for a malformed one
    or the wrong FORM_TYPE."""
    if x.getAttribute("type") not in ("submit", None):
        raise StanzaError("bad-request", "submit the form with type 'submit'")
    values = {}
    for field in x.elements(NS_DATA, "field"):
        var = field.getAttribute("var")
        if not var or var in values:
            raise StanzaError("bad-request", "every form field needs a distinct 'var'")
        values[var] = [str(v).strip() for v in field.elements(NS_DATA, "value")]
    found = values.pop("FORM_TYPE", [form_type])
    if found != [form_type]:
        raise StanzaError("bad-request", f"FORM_TYPE must be {form_type}")
    return values
