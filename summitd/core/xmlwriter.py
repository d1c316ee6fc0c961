"""Serialising elements to the wire, once per destination, without domish's prefix machinery.

Stanzas keep the namespace of the stream they came from (``jabber:client`` or
``jabber:server``); on the way out they take the namespace of the stream they go
to, so a stanza in either stanza namespace is written without an ``xmlns``.
"""

from summitd.core.xmlstream import NS_XML

STANZA_NAMESPACES = frozenset({"jabber:client", "jabber:server", "jabber:component:accept"})



def escape_text(text):
    """Character data with &, < and > escaped. (Chained str.replace: each is one C scan that
    returns the string itself when there is nothing to replace; str.translate with a mapping
    costs a lookup per character, several times more for the usual JIDs, ids and bodies.)"""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attribute(value):
    """An attribute value with &, <, >, \" and ' escaped (written between single quotes)."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def serialize(element, default_ns="jabber:client"):
    """The element as a str, written inside a stream whose default namespace is ``default_ns``."""
    parts = []
    _write(element, default_ns, parts)
    return "".join(parts)


def _write(element, inherited, out):
    name = element.name
    uri = element.uri
    head = "<" + name
    if (uri != inherited and uri is not None
            and not (uri in STANZA_NAMESPACES and inherited in STANZA_NAMESPACES)):
        head += " xmlns='" + escape_attribute(uri) + "'"
        inherited = uri
    out.append(head)
    extra_prefixes = 0
    for key, value in element.attributes.items():
        if key.__class__ is tuple:
            ns, local = key
            if ns == NS_XML:
                out.append(f" xml:{local}='{escape_attribute(value)}'")
            else:
                extra_prefixes += 1
                out.append(f" xmlns:a{extra_prefixes}='{escape_attribute(ns)}' "
                           f"a{extra_prefixes}:{local}='{escape_attribute(value)}'")
        else:
            out.append(f" {key}='{escape_attribute(value)}'")
    children = element.children
    if not children:
        out.append("/>")
        return
    out.append(">")
    for child in children:
        if child.__class__ is str:
            out.append(child.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        elif hasattr(child, "name"):
            _write(child, inherited, out)
        else:   # domish.SerializedXML and other raw strings
            out.append(str(child))
    out.append("</" + name + ">")
