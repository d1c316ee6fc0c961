"""The XML stream parser: bytes in, stream events and stanzas (domish Elements) out.

RFC 6120 §11 restricts the XML an XMPP stream may carry: no DTDs, no entity
declarations, no processing instructions, no comments (``restricted-xml``), UTF-8
only (``unsupported-encoding``). This parser drives pyexpat directly, without
XPath observers, and also bounds what one peer can make us hold in memory: the
size of one top-level element (``policy-violation``) and its nesting depth.
Every problem becomes a ``StreamError`` raised from ``feed()``.
"""

from xml.parsers import expat

from twisted.words.xish import domish

from summitd.core.errors import NS_STREAMS, StreamError

NS_XML = "http://www.w3.org/XML/1998/namespace"
_SEP = "\x01"

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

    ``handler`` gets ``stream_started(attrs, default_ns)`` with the header's attributes
    keyed by name (``(NS_XML, 'lang')`` for xml:lang) and its default namespace, ``element_received(element)``
    for each complete top-level element, and ``stream_ended()``.
    """

    def __init__(self, handler, max_stanza_size=262144, max_depth=32, max_header_size=4096):
        self.handler = handler
        self.max_stanza_size = max_stanza_size
        self.max_depth = max_depth
        self.max_header_size = max_header_size
        self._depth = 0
        self._stack = []
        self._element_start = 0     # byte offset where the current top-level element began
        self._fed = 0               # bytes fed so far
        self._failed = False
        parser = expat.ParserCreate("UTF-8", _SEP)
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.XmlDeclHandler = self._xml_decl
        parser.StartNamespaceDeclHandler = self._namespace_declared
        self._default_ns = None
        for name in ("StartDoctypeDeclHandler", "EntityDeclHandler", "UnparsedEntityDeclHandler",
                     "NotationDeclHandler", "ProcessingInstructionHandler", "CommentHandler",
                     "ElementDeclHandler", "AttlistDeclHandler"):
            setattr(parser, name, self._restricted)
        # No external entities, ever; undefined internal ones are a well-formedness error.
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self._parser = parser

    # -- feeding -----------------------------------------------------------------

    def feed(self, data):
        """Parse ``data``; raises StreamError on anything RFC 6120 does not allow."""
        if self._failed:
            return
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

    def _parse(self, data):
        self._fed += len(data)
        try:
            self._parser.Parse(data, False)
        except expat.ExpatError as e:
            self._failed = True
            raise StreamError(_EXPAT_CONDITIONS.get(e.code, "not-well-formed")) from None
        except StreamError:
            self._failed = True
            raise

    # -- expat callbacks -------------------------------------------------------

    def _restricted(self, *args):
        raise StreamError("restricted-xml")

    def _xml_decl(self, version, encoding, standalone):
        if encoding is not None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise StreamError("unsupported-encoding")

    def _namespace_declared(self, prefix, uri):
        if prefix is None and self._depth == 0:
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
            self._element_start = self._parser.CurrentByteIndex
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
            if self._parser.CurrentByteIndex - self._element_start > self.max_stanza_size:
                raise StreamError("policy-violation", "stanza too large")
            self.handler.element_received(element)

    def _text(self, data):
        if self._depth > 1:
            self._stack[-1].children.append(data)
        elif self._depth == 1 and data.strip():
            raise StreamError("not-well-formed", "text between stanzas")


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
