"""Serialising elements to the wire, once per destination, without domish's prefix machinery.

Stanzas keep the namespace of the stream they came from (``jabber:client`` or
``jabber:server``); on the way out they take the namespace of the stream they go
to, so a stanza in either stanza namespace is written without an ``xmlns``.
"""

from summitd.core.xmlstream import NS_XML

STANZA_NAMESPACES = frozenset({"jabber:client", "jabber:server", "jabber:component:accept"})

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})


def escape_text(text):
    return text.translate(_TEXT_ESCAPES)


def escape_attribute(value):
    return value.translate(_ATTR_ESCAPES)


def serialize(element, default_ns="jabber:client"):
    """The element as a str, written inside a stream whose default namespace is ``default_ns``."""
    parts = []
    _write(element, default_ns, parts)
    return "".join(parts)


def _write(element, inherited, out):
    name = element.name
    uri = element.uri
    out.append("<")
    out.append(name)
    if uri != inherited and not (uri in STANZA_NAMESPACES and inherited in STANZA_NAMESPACES):
        if uri is not None:
            out.append(" xmlns='")
            out.append(escape_attribute(uri))
            out.append("'")
            inherited = uri
    extra_prefixes = 0
    for key, value in element.attributes.items():
        if key.__class__ is tuple:
            ns, local = key
            if ns == NS_XML:
                out.append(f" xml:{local}='")
            else:
                extra_prefixes += 1
                out.append(f" xmlns:a{extra_prefixes}='{escape_attribute(ns)}' a{extra_prefixes}:{local}='")
        else:
            out.append(" ")
            out.append(key)
            out.append("='")
        out.append(escape_attribute(value))
        out.append("'")
    children = element.children
    if not children:
        out.append("/>")
        return
    out.append(">")
    for child in children:
        if child.__class__ is str:
            out.append(child.translate(_TEXT_ESCAPES))
        elif hasattr(child, "name"):
            _write(child, inherited, out)
        else:   # domish.SerializedXML and other raw strings
            out.append(str(child))
    out.append("</")
    out.append(name)
    out.append(">")
