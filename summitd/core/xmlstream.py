"""The XML stream parser: bytes in, stream events and stanzas (domish Elements) out.

RFC 6120 §11 restricts the XML an XMPP stream may carry: no DTDs, no entity
declarations, no processing instructions, no comments (``restricted-xml``), UTF-8
only (``unsupported-encoding``). This parser drives pyexpat directly, without
XPath observers, and also bounds what one peer can make us hold in memory: the
size of one top-level element (``policy-violation``) and its nesting depth.
Every problem becomes a ``StreamError`` raised from ``feed()``.

Memory: an expat parser holds 10 to 20 kB (its buffers, name tables and the text
buffer), more than everything else a session has. Most sessions are idle most of the
time, so a parser given a clock *hibernates*: once its stream has been quiet for
``HIBERNATE_AFTER`` seconds at a stanza boundary, the expat state is dropped, and the
next bytes make a new one, primed with a replay of the stream header's namespace
declarations (the only state expat keeps between stanzas). That costs some 10 µs once
per quiet period, and halves what an idle session weighs.
"""

import ctypes
import weakref
from xml.parsers import expat

from twisted.words.xish import domish

from summitd.core.errors import NS_STREAMS, StreamError

NS_XML = "http://www.w3.org/XML/1998/namespace"
_SEP = "\x01"

#: Seconds a stream must stay quiet (at a stanza boundary) before its parser hibernates.
HIBERNATE_AFTER = 1.0
#: Parsers put to sleep between two returns of freed memory to the system (malloc_trim).
TRIM_AFTER = 1000

_ESCAPE_URI = str.maketrans({"&": "&amp;", "<": "&lt;", "'": "&apos;"})
_RESTRICTED = ("StartDoctypeDeclHandler", "EntityDeclHandler", "UnparsedEntityDeclHandler",
               "NotationDeclHandler", "ProcessingInstructionHandler", "CommentHandler",
               "ElementDeclHandler", "AttlistDeclHandler")
_HANDLERS = ("StartElementHandler", "EndElementHandler", "CharacterDataHandler",
             "XmlDeclHandler", "StartNamespaceDeclHandler") + _RESTRICTED

#: expat error codes that have a more specific stream error than not-well-formed.
_EXPAT_CONDITIONS = {
    expat.errors.codes[expat.errors.XML_ERROR_UNBOUND_PREFIX]: "bad-namespace-prefix",
    expat.errors.codes[expat.errors.XML_ERROR_INCORRECT_ENCODING]: "unsupported-encoding",
    expat.errors.codes[expat.errors.XML_ERROR_UNKNOWN_ENCODING]: "unsupported-encoding",
    expat.errors.codes[expat.errors.XML_ERROR_BAD_CHAR_REF]: "not-well-formed",
}


def _split(qname):
    """expat's 'uri\\x01name' (or plain 'name') -> (uri, name)."""
    uri, sep, name = qname.rpartition(_SEP)
    return (uri or None, name) if sep else (None, qname)


class StreamParser:
    """Incremental parser for one XML stream (a new one after every stream restart).

    A live stream's parser gets the server's ``clock`` (to hibernate when quiet) and
    ``keep_parents=False``: each message's descendants lose their ``parent`` links once the
    handler has returned (see ``_unlink``).

    ``handler`` gets ``stream_started(attrs, default_ns)`` with the header's attributes
    keyed by name (``(NS_XML, 'lang')`` for xml:lang) and its default namespace, ``element_received(element)``
    for each complete top-level element, and ``stream_ended()``.
    """

    def __init__(self, handler, max_stanza_size=262144, max_depth=32, max_header_size=4096,
                 clock=None, keep_parents=True):
        self.handler = handler
        self.keep_parents = keep_parents
        self.max_stanza_size = max_stanza_size
        self.max_depth = max_depth
        self.max_header_size = max_header_size
        self._depth = 0
        self._stack = []
        self._element_start = 0     # byte offset where the current top-level element began
        self._fed = 0               # bytes fed so far
        self._offset = 0            # stream offset of the expat parser's byte 0 (see _revive)
        self._last_end = None       # stream offset of the last top-level end, in this feed
        self._failed = False
        self._default_ns = None
        self._header_ns = []        # (prefix, uri) declared on the stream header
        self._replaying = False
        self._hibernation = None if clock is None else _hibernation(clock)
        self._parser = self._new_expat()

    def _new_expat(self):
        parser = expat.ParserCreate("UTF-8", _SEP)
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.XmlDeclHandler = self._xml_decl
        parser.StartNamespaceDeclHandler = self._namespace_declared
        for name in _RESTRICTED:
            setattr(parser, name, self._restricted)
        # No external entities, ever; undefined internal ones are a well-formedness error.
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        return parser

    def close(self):
        """The stream is done with this parser (restart, disconnection): ignore whatever
        else comes, and let go of the handler now rather than when the cycle collector
        finds the parser (expat's handlers hold this object). Safe inside a callback."""
        self._failed = True
        if self._hibernation is not None:
            self._hibernation.busy(self)
        if self._parser is not None:
            for name in _HANDLERS:
                setattr(self._parser, name, None)

    # -- feeding -----------------------------------------------------------------

    def feed(self, data):
        """Parse ``data``; raises StreamError on anything RFC 6120 does not allow."""
        if self._failed:
            return
        hibernation = self._hibernation
        if hibernation is not None:
            hibernation.busy(self)
        self._last_end = None
        if self._depth == 0 and self._fed + len(data) > self.max_header_size:
            # The header must end within max_header_size bytes, however the data is split.
            room = max(self.max_header_size - self._fed, 0)
            self._parse(data[:room])
            if self._depth == 0:
                self._failed = True
                raise StreamError("policy-violation", "stream header too large")
            data = data[room:]
        self._parse(data)
        # A stanza that completed in this chunk was measured by _end.
        if self._depth > 1 and self._fed - self._element_start > self.max_stanza_size:
            self._failed = True
            raise StreamError("policy-violation", "stanza too large")
        if hibernation is not None and self._depth == 1 and not self._failed and self._at_boundary(data):
            hibernation.idle(self)

    def _parse(self, data):
        if self._parser is None:
            self._revive()
        self._fed += len(data)
        try:
            self._parser.Parse(data, False)
        except expat.ExpatError as e:
            self._failed = True
            raise StreamError(_EXPAT_CONDITIONS.get(e.code, "not-well-formed")) from None
        except StreamError:
            self._failed = True
            raise

    # -- hibernation -------------------------------------------------------------

    def _at_boundary(self, data):
        """Whether ``data`` ended with a complete top-level element (and whitespace): then
        expat holds nothing of the stream but the header's namespace context."""
        end = self._last_end
        if end is None:
            return False
        i = end - (self._fed - len(data))
        if i < 0:
            return False        # the end tag began in an earlier chunk: do not guess
        tail = data[i:]
        # expat reports an end tag at its '<', an empty element's end just after its '/>'.
        if tail[:2] == b"</":
            tail = tail[tail.find(b">") + 1:]
        return not tail.strip()

    def _hibernate(self):
        """Drop the expat state of a quiet stream (it is remade by the next feed); True when
        there was one to drop."""
        if self._depth == 1 and not self._failed and self._parser is not None:
            self._parser = None
            return True
        return False

    def _revive(self):
        """A new expat parser, in the state the stream header left the old one in."""
        declarations = "".join(
            f" xmlns{':' + prefix if prefix else ''}='{(uri or '').translate(_ESCAPE_URI)}'"
            for prefix, uri in self._header_ns)
        prefix = next((p for p, uri in self._header_ns if p and uri == NS_STREAMS), None)
        header = f"<{prefix + ':' if prefix else ''}stream{declarations}>".encode("utf-8")
        self._parser = self._new_expat()
        self._depth = 0
        self._replaying = True
        try:
            self._parser.Parse(header, False)
        finally:
            self._replaying = False
        self._offset = self._fed - len(header)

    # -- expat callbacks -------------------------------------------------------

    def _restricted(self, *args):
        raise StreamError("restricted-xml")

    def _xml_decl(self, version, encoding, standalone):
        if encoding is not None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise StreamError("unsupported-encoding")

    def _namespace_declared(self, prefix, uri):
        if self._depth == 0 and not self._replaying:
            self._header_ns.append((prefix, uri))
            if prefix is None:
                self._default_ns = uri

    def _attributes(self, attrs):
        result = {}
        for key, value in attrs.items():
            if _SEP in key:
                result[_split(key)] = value
            else:
                result[key] = value
        return result

    def _start(self, qname, attrs):
        depth = self._depth = self._depth + 1
        if depth == 1:
            if self._replaying:
                return
            uri, name = _split(qname)
            if name != "stream" or uri != NS_STREAMS:
                raise StreamError("invalid-namespace")     # RFC 6120 §4.8.1
            self.handler.stream_started(self._attributes(attrs), self._default_ns)
            return
        if depth > self.max_depth:
            raise StreamError("policy-violation", "too deeply nested")
        uri, name = _split(qname)
        element = domish.Element((uri, name), uri)
        if attrs:
            element.attributes = self._attributes(attrs)
        if depth == 2:
            self._element_start = self._offset + self._parser.CurrentByteIndex
        else:
            parent = self._stack[-1]
            parent.children.append(element)
            element.parent = parent
        self._stack.append(element)

    def _end(self, qname):
        depth = self._depth
        self._depth = depth - 1
        if depth == 1:
            self.handler.stream_ended()
            return
        element = self._stack.pop()
        if depth == 2:
            end = self._last_end = self._offset + self._parser.CurrentByteIndex
            if end - self._element_start > self.max_stanza_size:
                raise StreamError("policy-violation", "stanza too large")
            if self.keep_parents or element.name != "message":
                self.handler.element_received(element)
                return
            try:
                self.handler.element_received(element)
            finally:
                _unlink(element)

    def _text(self, data):
        if self._depth > 1:
            self._stack[-1].children.append(data)
        elif self._depth == 1 and data.strip():
            raise StreamError("not-well-formed", "text between stanzas")


class _Hibernation:
    """The parsers of one clock that went quiet at a stanza boundary, in two generations:
    at each tick the older generation hibernates and the recent one becomes the older, so a
    parser sleeps after between one and two intervals of quiet. One timer for the whole
    server, armed only while some parser is waiting; ``busy`` takes a parser out again."""

    def __init__(self, clock, interval):
        self.clock = clock
        self.interval = interval
        self.recent = {}
        self.older = {}
        self.call = None
        self.untrimmed = 0      # parsers put to sleep since memory was last given back

    def idle(self, parser):
        self.recent[parser] = None
        if self.call is None:
            self.call = self.clock.callLater(self.interval, self._tick)

    def busy(self, parser):
        if parser in self.recent:
            del self.recent[parser]
        elif parser in self.older:
            del self.older[parser]
        else:
            return
        if not self.recent and not self.older and self.call is not None:
            self.call.cancel()      # nobody waits: no timer left behind (tests, shutdown)
            self.call = None

    def _tick(self):
        self.call = None
        for parser in self.older:
            self.untrimmed += parser._hibernate()
        self.older, self.recent = self.recent, {}
        if self.older:
            self.call = self.clock.callLater(self.interval, self._tick)
        if self.untrimmed >= TRIM_AFTER:
            # Parsers' large buffers come from malloc, which keeps freed pages; thousands of
            # sleeping parsers leave megabytes of them. Some 10 ms for a heap of 200 MB.
            self.untrimmed = 0
            _malloc_trim()


def _malloc_trim():
    """Give free heap pages back to the system (glibc's malloc_trim; elsewhere nothing)."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)


_trim = None


_hibernations = weakref.WeakKeyDictionary()


def _hibernation(clock):
    found = _hibernations.get(clock)
    if found is None:
        found = _hibernations[clock] = _Hibernation(clock, HIBERNATE_AFTER)
    return found


def _unlink(element):
    """Drop the parent links of a handled message's descendants.

    Each link is a reference cycle (child -> parent -> children -> child), so every message
    would otherwise be freed by the cycle collector instead of by reference counting: the
    collector then runs all the time, and its full passes over a heap of thousands of
    sessions stall the reactor (the p99 latency). Only messages: nothing reads the links of
    a message's payload, while IQ payloads are parsed by wokkel, which reads
    ``verb.parent``, also after a Deferred (PEP). Handlers see the links while they run."""
    for child in element.children:
        if child.__class__ is not str and child.parent is element:
            child.parent = None
            if child.children:
                _unlink(child)


class _Collector:
    def __init__(self):
        self.elements = []

    def stream_started(self, attrs, default_ns):
        pass

    def element_received(self, element):
        self.elements.append(element)

    def stream_ended(self):
        pass


def parse_element(text, default_ns="jabber:client"):
    """One element from trusted XML text (our own stored stanzas, test patterns): parsed as if
    it arrived on a stream whose default namespace is ``default_ns``."""
    collector = _Collector()
    parser = StreamParser(collector, max_stanza_size=10 ** 8, max_header_size=10 ** 6)
    parser.feed((f"<stream:stream xmlns='{default_ns}' xmlns:stream='{NS_STREAMS}'>"
                 f"{text}</stream:stream>").encode("utf-8"))
    if len(collector.elements) != 1:
        raise ValueError(f"expected one element, found {len(collector.elements)}")
    return collector.elements[0]
