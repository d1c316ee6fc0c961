"""Comparing received XML with an expected pattern, for readable protocol tests.

A pattern is XML text. An element matches when the name and namespace agree,
every attribute of the pattern is present with that value (``*`` accepts any
value; attribute order is irrelevant), the pattern's text (if any) equals the
element's stripped text, and the pattern's children match children of the
element in order (the element may have more).
"""

from summitd.core.xmlstream import parse_element
from summitd.core.xmlwriter import STANZA_NAMESPACES


def parse_xml(text, default_ns="jabber:client"):
    """One element from XML text; a root without xmlns is in ``default_ns``, as in a stream."""
    try:
        return parse_element(text, default_ns)
    except ValueError:
        raise ValueError(f"a pattern is one element: {text!r}") from None


def _same_namespace(a, b):
    return a == b or (a in STANZA_NAMESPACES and b in STANZA_NAMESPACES)


def _text(element):
    return "".join(c for c in element.children if isinstance(c, str)).strip()


def mismatch(element, pattern):
    """None when ``element`` matches ``pattern`` (an Element), else a reason."""
    if element.name != pattern.name or not _same_namespace(element.uri, pattern.uri):
        return f"expected <{pattern.name} xmlns='{pattern.uri}'>, got <{element.name} xmlns='{element.uri}'>"
    for key, value in pattern.attributes.items():
        actual = element.attributes.get(key)
        if actual is None or (value != "*" and actual != value):
            return f"<{element.name}> attribute {key!r}: expected {value!r}, got {actual!r}"
    expected_text = _text(pattern)
    if expected_text and expected_text != "*" and _text(element) != expected_text:
        return f"<{element.name}> text: expected {expected_text!r}, got {_text(element)!r}"
    children = [c for c in element.elements()]
    position = 0
    for wanted in pattern.elements():
        while position < len(children) and mismatch(children[position], wanted) is not None:
            position += 1
        if position == len(children):
            return f"<{element.name}> has no child matching <{wanted.name} xmlns='{wanted.uri}'>"
        position += 1
    return None


def matches(element, pattern_text):
    return mismatch(element, parse_xml(pattern_text)) is None
