"""The MAM query protocol (XEP-0313 §4, urn:xmpp:mam:2 with #extended): the query form and
RSM set in, result messages and ``<fin/>`` out.

Parsing is strict and happens before any storage is touched, so every bad query is
answered without work: a field the form does not define, a malformed date or JID,
a single-valued field with several values, a wrong FORM_TYPE or a malformed RSM
set is ``bad-request``. (XEP-0313 §4.1.5 asks for ``feature-not-implemented`` on an
unknown field; this server answers ``bad-request`` as its issue tracker decided:
the query is wrong, not the server incomplete.) A ``max`` above the server's cap
is clamped, not refused (§4.3.1): the client sees it in ``<fin/>`` (no
``complete``) and in the RSM ``<count/>``.

The fields are declared once (``FIELDS``); the form a client can fetch (§4.1.5) is
built from the same table. ``{urn:xmpp:fulltext:0}fulltext`` (XEP-0431) is offered
when the store can search; a search's default page is its newest matches
("ranked newest first"), still sent oldest first within the page unless the
client asks for ``<flip-page/>``.
"""

import datetime
import re
from dataclasses import dataclass

from twisted.words.xish import domish

from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.rsm import build_rsm, parse_rsm
from summitd.plugins.mam import fulltext
from summitd.plugins.mam.store import ArchiveFilter, PageRequest

NS_MAM = "urn:xmpp:mam:2"
NS_DATA = "jabber:x:data"
NS_VALIDATE = "http://jabber.org/protocol/xdata-validate"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_CLIENT = "jabber:client"
FULLTEXT_FIELD = "{urn:xmpp:fulltext:0}fulltext"

#: var -> data form field type (XEP-0313 §4.1.5; include-groupchat §4.1.4; XEP-0431).
FIELDS = {
    "with": "jid-single",
    "start": "text-single",
    "end": "text-single",
    "before-id": "text-single",
    "after-id": "text-single",
    "ids": "list-multi",
    "include-groupchat": "boolean",
    FULLTEXT_FIELD: "text-single",
}

_DATETIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)\Z", re.ASCII)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_datetime(text):
    """Microseconds since the epoch from an XEP-0082 DateTime; ValueError if malformed."""
    match = _DATETIME.match(text)
    if match is None:
        raise ValueError(f"not an XEP-0082 DateTime: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone == "Z":
        tz = datetime.timezone.utc
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"bad time zone in {text!r}")
        offset = datetime.timedelta(hours=hours, minutes=minutes)
        tz = datetime.timezone(-offset if zone[0] == "-" else offset)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute),
                               int(second), micro, tzinfo=tz)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_datetime(ts):
    """The XEP-0082 DateTime (UTC, microseconds) of a timestamp in microseconds."""
    moment = _EPOCH + datetime.timedelta(microseconds=ts)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class MamQuery:
    queryid: str | None
    filter: ArchiveFilter
    page: PageRequest
    flip: bool


def _form_values(form):
    """{var: [values]} of a submitted form; bad-request for a malformed one."""
    if form.getAttribute("type", "submit") != "submit":
        raise StanzaError("bad-request", "the query form must be of type 'submit'")
    values = {}
    for field in form.elements(NS_DATA, "field"):
        var = field.getAttribute("var")
        if var is None or var in values:
            raise StanzaError("bad-request", "every form field needs a distinct 'var'")
        values[var] = [str(v).strip() for v in field.elements(NS_DATA, "value")]
    form_type = values.pop("FORM_TYPE", [NS_MAM])
    if form_type != [NS_MAM]:
        raise StanzaError("bad-request", f"FORM_TYPE must be {NS_MAM}")
    return values


def _single(values, var):
    given = [v for v in values.get(var, ()) if v]
    if len(given) > 1:
        raise StanzaError("bad-request", f"field '{var}' takes one value")
    return given[0] if given else None


def _time(values, var):
    text = _single(values, var)
    if text is None:
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        raise StanzaError("bad-request", f"field '{var}' is not an XEP-0082 DateTime") from None


def _parse_filter(values, limits):
    """The ArchiveFilter a form's values describe."""
    unknown = [var for var in values if var not in FIELDS
               or (var == FULLTEXT_FIELD and not limits.fulltext)]
    if unknown:
        raise StanzaError("bad-request", f"unknown field '{unknown[0]}'")
    with_bare = with_resource = None
    with_text = _single(values, "with")
    if with_text is not None:
        try:
            with_jid = parse_jid(with_text)
        except InvalidJID:
            raise StanzaError("bad-request", "field 'with' is not a JID") from None
        with_bare, with_resource = with_jid.userhost(), with_jid.resource
    ids = tuple(dict.fromkeys(v for v in values.get("ids", ()) if v))
    if len(ids) > limits.max_page_size:
        raise StanzaError("bad-request", f"at most {limits.max_page_size} ids in one query")
    groupchat = _single(values, "include-groupchat")
    if groupchat not in (None, "true", "false", "1", "0"):
        raise StanzaError("bad-request", "field 'include-groupchat' is a boolean")
    terms = None
    search = _single(values, FULLTEXT_FIELD)
    if search is not None:
        try:
            terms = fulltext.parse_search(search)
        except ValueError as e:
            raise StanzaError("bad-request", str(e)) from None
    return ArchiveFilter(
        with_bare=with_bare, with_resource=with_resource,
        start=_time(values, "start"), end=_time(values, "end"),
        after_id=_single(values, "after-id"), before_id=_single(values, "before-id"),
        ids=ids, fulltext=terms, include_groupchat=groupchat not in ("false", "0"))


def parse_query(query, limits):
    """A MamQuery from a ``<query/>`` set request. ``limits`` has default_page_size,
    max_page_size and fulltext (whether the search field is offered)."""
    if query.getAttribute("node") is not None:
        raise StanzaError("item-not-found", "a user archive has no nodes")
    form = next(query.elements(NS_DATA, "x"), None)
    archive_filter = _parse_filter({} if form is None else _form_values(form), limits)
    rsm = parse_rsm(query)
    size = limits.default_page_size if rsm is None or rsm.max is None else rsm.max
    page = PageRequest(
        max=min(size, limits.max_page_size),
        after=None if rsm is None else rsm.after,
        before=None if rsm is None else rsm.before,
        index=None if rsm is None else rsm.index,
        newest_first=archive_filter.fulltext is not None)
    flip = next(query.elements(NS_MAM, "flip-page"), None) is not None
    return MamQuery(query.getAttribute("queryid"), archive_filter, page, flip)


def build_form(fulltext_enabled):
    """The query form a client fetches with an IQ get (XEP-0313 §4.1.5)."""
    query = domish.Element((NS_MAM, "query"))
    form = query.addElement((NS_DATA, "x"))
    form["type"] = "form"
    form_type = form.addElement("field")
    form_type["type"], form_type["var"] = "hidden", "FORM_TYPE"
    form_type.addElement("value", content=NS_MAM)
    for var, field_type in FIELDS.items():
        if var == FULLTEXT_FIELD and not fulltext_enabled:
            continue
        field = form.addElement("field")
        field["type"], field["var"] = field_type, var
        if var == "ids":
            validate = field.addElement((NS_VALIDATE, "validate"))
            validate["datatype"] = "xs:string"
            validate.addElement("open")
    return query


def result_message(item, queryid, to, archive):
    """One result (XEP-0313 §4.2): the archived stanza forwarded (XEP-0297) with its
    time (XEP-0203), from the archive to the querying resource."""
    message = domish.Element((NS_CLIENT, "message"))
    message["to"] = to
    message["from"] = archive
    message["id"] = "mam-" + item.id
    result = message.addElement((NS_MAM, "result"))
    if queryid is not None:
        result["queryid"] = queryid
    result["id"] = item.id
    forwarded = result.addElement((NS_FORWARD, "forwarded"))
    forwarded.addElement((NS_DELAY, "delay"))["stamp"] = format_datetime(item.ts)
    forwarded.addRawXml(item.stanza)
    return message


def build_fin(page, stable=True):
    """The ``<fin/>`` ending a query: complete when paging in this direction is done,
    stable unless results may still change."""
    fin = domish.Element((NS_MAM, "fin"))
    if page.complete:
        fin["complete"] = "true"
    if not stable:
        fin["stable"] = "false"
    first = last = None
    if page.items:
        first, last = page.items[0].id, page.items[-1].id
    fin.addChild(build_rsm(first, last, page.first_index, page.count))
    return fin


def build_metadata(first, last):
    """The archive metadata (XEP-0313 §5): first and last ids and times, or empty."""
    metadata = domish.Element((NS_MAM, "metadata"))
    if first is not None:
        for name, item in (("start", first), ("end", last)):
            element = metadata.addElement(name)
            element["id"] = item.id
            element["timestamp"] = format_datetime(item.ts)
    return metadata
