"""Result Set Management (XEP-0059): the ``<set/>`` a request carries and the one a reply returns.

wokkel 18.0.0 has no RSM module, and the protocol is small: a request says how
many items it wants (``max``) and where the page is (``after`` an id, ``before``
an id, an empty ``before`` for the last page, or an ``index``); a reply names the
first and last item of the page, the first item's index and the size of the
whole result set (``count``). Parsing is strict: a malformed request is a
``bad-request`` (XEP-0059 §2 defines only non-negative integers for max and index).
"""

from dataclasses import dataclass

from twisted.words.xish import domish

from summitd.core.errors import StanzaError

NS_RSM = "http://jabber.org/protocol/rsm"

#: An index or max beyond this is nonsense for any result set we keep; refusing it keeps
#: int() and SQL away from giant numbers.
MAX_NUMBER = 10 ** 9


@dataclass(frozen=True)
class RSMRequest:
    """What a requester asked for; ``None`` means 'not given'.

    ``before`` is ``""`` for an empty ``<before/>`` (the last page, XEP-0059 §2.5).
    """

    max: int | None = None
    after: str | None = None
    before: str | None = None
    index: int | None = None

    @property
    def backwards(self):
        """Paging from the end of the set (``<before/>``, empty or not)."""
        return self.before is not None


def find_set(parent):
    """The RSM ``<set/>`` child of ``parent``, or None."""
    for child in parent.elements():
        if child.name == "set" and child.uri == NS_RSM:
            return child
    return None


def parse_rsm(parent):
    """The RSMRequest carried by ``parent`` (a query element), or None when it has no
    ``<set/>``. Raises StanzaError('bad-request') for a malformed one."""
    element = find_set(parent)
    if element is None:
        return None
    values = {}
    for child in element.elements():
        if child.uri != NS_RSM or child.name not in ("max", "after", "before", "index"):
            continue    # count/first/last in a request mean nothing; tolerated
        if child.name in values:
            raise StanzaError("bad-request", f"more than one <{child.name}/> in <set/>")
        values[child.name] = str(child).strip()
    request = RSMRequest(
        max=_number(values, "max"),
        after=_uid(values, "after"),
        before=values.get("before"),
        index=_number(values, "index"),
    )
    if request.after is not None and request.before is not None:
        # XEP-0059 leaves the pair undefined and XEP-0313 §4.3.2 says to use the
        # query's after-id/before-id for a range instead.
        raise StanzaError("bad-request", "<after/> and <before/> together are not supported")
    if request.index is not None and (request.after is not None or request.before is not None):
        raise StanzaError("bad-request", "<index/> cannot be combined with <after/> or <before/>")
    return request


def _number(values, name):
    text = values.get(name)
    if text is None:
        return None
    if not text.isdigit() or not text.isascii() or len(text) > 10 or int(text) > MAX_NUMBER:
        raise StanzaError("bad-request", f"<{name}/> must be a non-negative integer")
    return int(text)


def _uid(values, name):
    text = values.get(name)
    if text is not None and not text:
        raise StanzaError("bad-request", f"<{name}/> must not be empty")
    return text


def build_rsm(first=None, last=None, first_index=None, count=None):
    """A reply ``<set/>``: first/last UIDs of the page (both or neither, XEP-0059 §2.2),
    the index of the first item and the size of the whole set, each when known."""
    element = domish.Element((NS_RSM, "set"))
    if first is not None:
        first_element = element.addElement("first", content=first)
        if first_index is not None:
            first_element["index"] = str(first_index)
        element.addElement("last", content=last)
    if count is not None:
        element.addElement("count", content=str(count))
    return element
