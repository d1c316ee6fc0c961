"""Tests for the XML stream parser (summitd.core.xmlstream) and the serializer
(summitd.core.xmlwriter): RFC 6120 §4 streams and §11 XML restrictions."""

from twisted.trial import unittest
from twisted.words.xish import domish

from summitd.core.errors import NS_STREAMS, StreamError
from summitd.core.xmlstream import NS_XML, StreamParser
from summitd.core.xmlwriter import escape_attribute, escape_text, serialize

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          f"xmlns:stream='{NS_STREAMS}' to='localhost' version='1.0' xml:lang='en'>")


class Recorder:
    """A StreamParser handler that keeps every event."""

    def __init__(self):
        self.header = None
        self.default_ns = None
        self.elements = []
        self.ended = False

    def stream_started(self, attrs, default_ns):
        self.header = attrs
        self.default_ns = default_ns

    def element_received(self, element):
        self.elements.append(element)

    def stream_ended(self):
        self.ended = True


def as_bytes(data):
    return data.encode("utf-8") if isinstance(data, str) else data


def parse(data, chunk=None, **limits):
    """Feed ``data`` (whole, or ``chunk`` bytes at a time); returns the Recorder."""
    recorder = Recorder()
    parser = StreamParser(recorder, **limits)
    data = as_bytes(data)
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        parser.feed(data[start:start + step])
    return recorder


def stanzas(body, chunk=None, **limits):
    """The elements parsed from ``body`` after a standard stream header."""
    return parse(HEADER + body if isinstance(body, str) else as_bytes(HEADER) + body,
                 chunk, **limits).elements


def only(body, **limits):
    elements = stanzas(body, **limits)
    if len(elements) != 1:
        raise AssertionError(f"expected one element, got {len(elements)}")
    return elements[0]


def text_of(element):
    return "".join(c for c in element.children if isinstance(c, str))


def tree(element):
    """A comparable description of an element: name, namespace, attributes, merged text and
    children (adjacent text pieces merged, so how the parser split text does not matter)."""
    children = []
    for child in element.children:
        if isinstance(child, str):
            if children and isinstance(children[-1], str):
                children[-1] += child
            else:
                children.append(child)
        else:
            children.append(tree(child))
    return (element.name, element.uri, dict(element.attributes), children)


class StreamErrorAssertions:
    """Mixin: assert that feeding something raises the expected stream error."""

    def assertStreamError(self, condition, data, chunk=None, **limits):
        """``data`` (a complete input, header included) makes the parser raise ``condition``."""
        error = self.assertRaises(StreamError, parse, data, chunk, **limits)
        self.assertEqual(error.condition, condition)
        return error

    def assertStanzaError(self, condition, body, chunk=None, **limits):
        """``body`` sent after a valid header makes the parser raise ``condition``."""
        return self.assertStreamError(condition, as_bytes(HEADER) + as_bytes(body), chunk, **limits)


class HeaderTests(unittest.TestCase, StreamErrorAssertions):
    """The stream header: attributes, namespaces, the root element and its size."""

    def test_header_attributes(self):
        """stream_started gets the header's attributes (xml:lang keyed by its namespace) and
        the content namespace."""
        recorder = parse(HEADER)
        self.assertEqual(recorder.header["to"], "localhost")
        self.assertEqual(recorder.header["version"], "1.0")
        self.assertEqual(recorder.header[(NS_XML, "lang")], "en")
        self.assertEqual(recorder.default_ns, "jabber:client")
        self.assertEqual(recorder.elements, [])

    def test_server_content_namespace(self):
        """The default namespace is reported as declared (jabber:server for s2s)."""
        recorder = parse(f"<stream:stream xmlns='jabber:server' xmlns:stream='{NS_STREAMS}'>")
        self.assertEqual(recorder.default_ns, "jabber:server")

    def test_no_content_namespace(self):
        """A header without a default namespace reports None (the transport decides)."""
        recorder = parse(f"<stream:stream xmlns:stream='{NS_STREAMS}'>")
        self.assertIsNone(recorder.default_ns)
        self.assertEqual(recorder.header, {})

    def test_wrong_stream_namespace(self):
        """A stream element in another namespace is invalid-namespace (RFC 6120 §4.8.1)."""
        self.assertStreamError(
            "invalid-namespace",
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://wrong.example/'>")

    def test_wrong_root_name(self):
        """A root element other than <stream/> is invalid-namespace, qualified or not."""
        for root in (f"<stream:features xmlns:stream='{NS_STREAMS}'>",
                     "<stream xmlns='jabber:client'>",
                     "<message xmlns='jabber:client'>",
                     "<foo>"):
            self.assertStreamError("invalid-namespace", root)

    def test_unbound_stream_prefix(self):
        """A header using the stream: prefix without declaring it is bad-namespace-prefix."""
        self.assertStreamError("bad-namespace-prefix", "<stream:stream xmlns='jabber:client'>")

    def test_header_too_large_in_small_chunks(self):
        """A header that never ends is cut off at max_header_size bytes."""
        huge = HEADER[:-1] + " x='" + "a" * 10000 + "'>"
        error = self.assertStreamError("policy-violation", huge, chunk=100, max_header_size=4096)
        self.assertEqual(error.text, "stream header too large")

    def test_header_too_large_in_one_chunk(self):
        """The header limit holds when the whole oversized header arrives at once."""
        huge = HEADER[:-1] + " x='" + "a" * 10000 + "'>"
        self.assertStreamError("policy-violation", huge, max_header_size=4096)

    def test_header_within_limit(self):
        """A header of exactly max_header_size bytes is accepted, also with stanzas in the
        same chunk and when it arrives in pieces."""
        for chunk in (None, 10):
            recorder = parse(HEADER + "<message/>", chunk, max_header_size=len(HEADER))
            self.assertEqual(len(recorder.elements), 1)

    def test_stream_end(self):
        """</stream:stream> is reported as stream_ended, after the stanzas before it."""
        recorder = parse(HEADER + "<message/></stream:stream>")
        self.assertEqual(len(recorder.elements), 1)
        self.assertTrue(recorder.ended)


class IncrementalTests(unittest.TestCase):
    """Data arrives in arbitrary pieces; the result must not depend on where they split."""

    BODY = ("<message to='bob@localhost' type='chat' id='m1'><body>hello &amp; "
            "h\u00e9llo \u263a \U0001f600</body><thread>t1</thread></message>"
            "<presence><show>away</show></presence>"
            "<iq type='get' id='q'><query xmlns='jabber:iq:roster'/></iq>")

    def test_one_byte_at_a_time(self):
        """Feeding one byte at a time gives the same elements as feeding everything at once."""
        whole = [tree(e) for e in stanzas(self.BODY)]
        bytewise = [tree(e) for e in stanzas(self.BODY, chunk=1)]
        self.assertEqual(len(whole), 3)
        self.assertEqual(bytewise, whole)

    def test_every_split_point(self):
        """Splitting the input in two at every byte offset gives the same elements."""
        data = (HEADER + self.BODY).encode("utf-8")
        expected = [tree(e) for e in parse(data).elements]
        for cut in range(1, len(data)):
            recorder = Recorder()
            parser = StreamParser(recorder)
            parser.feed(data[:cut])
            parser.feed(data[cut:])
            self.assertEqual([tree(e) for e in recorder.elements], expected, f"split at {cut}")

    def test_multibyte_utf8_split(self):
        """A character whose UTF-8 bytes are split across feeds arrives whole."""
        for char in ("\u00e9", "\u263a", "\U0001f600"):
            body = f"<message><body>{char}</body></message>".encode("utf-8")
            encoded = char.encode("utf-8")
            self.assertGreater(len(encoded), 1)
            message = stanzas(body, chunk=1)[0]
            self.assertEqual(text_of(next(message.elements())), char)

    def test_stanza_completes_across_feeds(self):
        """An element is delivered only when its end tag has been read."""
        recorder = Recorder()
        parser = StreamParser(recorder)
        parser.feed(HEADER.encode() + b"<message><body>hi</bo")
        self.assertEqual(recorder.elements, [])
        parser.feed(b"dy></message>")
        self.assertEqual(len(recorder.elements), 1)

    def test_whitespace_between_stanzas(self):
        """Whitespace between stanzas (keepalives, RFC 6120 §11.7) is ignored."""
        elements = stanzas("  \n\t<message/>\r\n  <presence/>   ", chunk=2)
        self.assertEqual([e.name for e in elements], ["message", "presence"])


class AttributeTests(unittest.TestCase):
    """Attributes and namespaces as the parser reports them."""

    def test_xml_lang(self):
        """xml:lang is keyed (NS_XML, 'lang'), as domish expects."""
        message = only("<message xml:lang='de'><body xml:lang='fr'>salut</body></message>")
        self.assertEqual(message.attributes, {(NS_XML, "lang"): "de"})
        self.assertEqual(next(message.elements()).attributes[(NS_XML, "lang")], "fr")

    def test_namespaced_attribute(self):
        """A prefixed attribute is keyed (namespace, name); plain ones by name."""
        message = only("<message xmlns:x='urn:example:x' x:flag='1' id='a'/>")
        self.assertEqual(message.attributes, {("urn:example:x", "flag"): "1", "id": "a"})

    def test_element_namespaces(self):
        """Stanzas take the content namespace; children their own or their parent's."""
        message = only("<message><body>x</body><x xmlns='urn:x'><y/></x>"
                       "<p:z xmlns:p='urn:p'/></message>")
        self.assertEqual(message.uri, "jabber:client")
        body, x, z = list(message.elements())
        self.assertEqual((body.uri, x.uri, z.uri), ("jabber:client", "urn:x", "urn:p"))
        self.assertEqual(next(x.elements()).uri, "urn:x")
        self.assertIs(body.parent, message)

    def test_entities(self):
        """Predefined entities and character references are decoded."""
        message = only("<message id='&apos;&quot;'><body>&lt;&gt;&amp;&#x263A;&#65;</body></message>")
        self.assertEqual(message["id"], "'\"")
        self.assertEqual(text_of(next(message.elements())), "<>&\u263aA")


class LimitTests(unittest.TestCase, StreamErrorAssertions):
    """What one peer can make the parser hold: depth and size of a stanza."""

    def nested(self, levels):
        return "<message>" + "<a>" * levels + "</a>" * levels + "</message>"

    def test_depth_within_limit(self):
        """Nesting down to max_depth (the stream root counts as level 1) is accepted."""
        message = only(self.nested(2), max_depth=4)
        self.assertEqual(next(next(message.elements()).elements()).name, "a")

    def test_depth_limit(self):
        """One level deeper than max_depth is a policy-violation."""
        error = self.assertStanzaError("policy-violation", self.nested(3), max_depth=4)
        self.assertEqual(error.text, "too deeply nested")

    def test_deep_nesting_attack(self):
        """Thousands of open tags fed in small pieces fail early, not when they close."""
        error = self.assertStanzaError("policy-violation", "<message>" + "<a>" * 5000, chunk=16)
        self.assertEqual(error.text, "too deeply nested")

    def big_message(self, size):
        return f"<message><body>{'x' * size}</body></message>"

    def test_stanza_size_limit_in_one_chunk(self):
        """A stanza larger than max_stanza_size is refused even when it arrives whole."""
        error = self.assertStanzaError("policy-violation", self.big_message(5000),
                                       max_stanza_size=1024)
        self.assertEqual(error.text, "stanza too large")

    def test_stanza_size_limit_in_small_chunks(self):
        """A large stanza sent in many small chunks is refused before it completes."""
        recorder = Recorder()
        parser = StreamParser(recorder, max_stanza_size=1024)
        parser.feed(HEADER.encode() + b"<message><body>")
        with self.assertRaises(StreamError) as raised:
            for _ in range(200):
                parser.feed(b"x" * 10)
        self.assertEqual(raised.exception.condition, "policy-violation")
        self.assertEqual(recorder.elements, [])

    def test_stanzas_are_measured_one_by_one(self):
        """Many stanzas each under the limit are fine, even if together they exceed it."""
        body = self.big_message(500) * 10
        self.assertEqual(len(stanzas(body, max_stanza_size=1024)), 10)
        self.assertEqual(len(stanzas(body, chunk=7, max_stanza_size=1024)), 10)

    def test_stanza_under_limit(self):
        """A stanza just under the limit is accepted."""
        self.assertEqual(len(stanzas(self.big_message(900), max_stanza_size=1024)), 1)


class RestrictedXMLTests(unittest.TestCase, StreamErrorAssertions):
    """RFC 6120 §11.1: no comments, processing instructions, DTDs or entity declarations."""

    def test_doctype_before_header(self):
        """A DOCTYPE is restricted-xml."""
        self.assertStreamError("restricted-xml", "<?xml version='1.0'?><!DOCTYPE stream:stream>"
                               + HEADER[len("<?xml version='1.0'?>"):])

    def test_entity_declaration(self):
        """An internal subset with an entity declaration is restricted-xml."""
        self.assertStreamError("restricted-xml", "<!DOCTYPE s [<!ENTITY e 'x'>]>" + HEADER[21:])

    def test_billion_laughs(self):
        """The billion-laughs document is refused at its DOCTYPE, before any expansion."""
        entities = "".join(f"<!ENTITY lol{i} '{('&lol%d;' % (i - 1)) * 10}'>" for i in range(1, 10))
        bomb = (f"<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY lol0 'lol'>{entities}]>"
                f"<stream:stream xmlns='jabber:client' xmlns:stream='{NS_STREAMS}'>"
                "<message><body>&lol9;</body></message>")
        self.assertStreamError("restricted-xml", bomb)

    def test_processing_instruction(self):
        """A processing instruction between stanzas or inside one is restricted-xml."""
        self.assertStanzaError("restricted-xml", "<?php echo 1; ?>")
        self.assertStanzaError("restricted-xml", "<message><?php echo 1; ?></message>")

    def test_comment(self):
        """A comment before the header, between stanzas or inside one is restricted-xml."""
        self.assertStreamError("restricted-xml", "<!-- hello -->" + HEADER[21:])
        self.assertStanzaError("restricted-xml", "<!-- hello -->")
        self.assertStanzaError("restricted-xml", "<message><body><!-- hi --></body></message>")

    def test_undefined_entity(self):
        """A reference to an entity that is not predefined is not-well-formed."""
        self.assertStanzaError("not-well-formed", "<message><body>&nbsp;</body></message>")

    def test_restricted_in_small_chunks(self):
        """A comment fed one byte at a time is still caught."""
        self.assertStanzaError("restricted-xml", "<message><!-- x --></message>", chunk=1)


class EncodingTests(unittest.TestCase, StreamErrorAssertions):
    """RFC 6120 §11.6: UTF-8 only."""

    def test_latin1_declaration(self):
        """An XML declaration naming another encoding is unsupported-encoding."""
        self.assertStreamError("unsupported-encoding",
                               "<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER[21:])

    def test_utf16_stream(self):
        """A UTF-16 encoded stream is unsupported-encoding."""
        data = ("<?xml version='1.0' encoding='UTF-16'?>" + HEADER[21:]).encode("utf-16")
        self.assertStreamError("unsupported-encoding", data)

    def test_utf8_declaration_accepted(self):
        """encoding='UTF-8' (any case) is fine."""
        for name in ("UTF-8", "utf-8"):
            recorder = parse(f"<?xml version='1.0' encoding='{name}'?>" + HEADER[21:])
            self.assertEqual(recorder.default_ns, "jabber:client")

    def test_invalid_utf8(self):
        """Bytes that are not UTF-8 are not-well-formed."""
        self.assertStanzaError("not-well-formed", b"<message><body>\xff\xfe</body></message>")


class MalformedTests(unittest.TestCase, StreamErrorAssertions):
    """Everything else that is not well-formed (RFC 6120 §11.3)."""

    def test_unbound_element_prefix(self):
        """An element with an undeclared prefix is bad-namespace-prefix."""
        self.assertStanzaError("bad-namespace-prefix", "<foo:message/>")

    def test_unbound_attribute_prefix(self):
        """An attribute with an undeclared prefix is bad-namespace-prefix."""
        self.assertStanzaError("bad-namespace-prefix", "<message foo:bar='1'/>")

    def test_mismatched_tags(self):
        """Mismatched end tags, duplicate attributes and stray '<' are not-well-formed."""
        for body in ("<message></iq>", "<message id='1' id='2'/>", "<message><</message>",
                     "<message><body>\x00</body></message>", "<message><body>&#1;</body></message>"):
            self.assertStanzaError("not-well-formed", body)

    def test_text_between_stanzas(self):
        """Character data at the stream level is not-well-formed."""
        error = self.assertStanzaError("not-well-formed", "hello<message/>")
        self.assertEqual(error.text, "text between stanzas")

    def test_nothing_after_failure(self):
        """After a stream error the parser ignores further data instead of raising again."""
        recorder = Recorder()
        parser = StreamParser(recorder)
        self.assertRaises(StreamError, parser.feed, HEADER.encode() + b"<message></iq>")
        parser.feed(b"<message/>")
        self.assertEqual(recorder.elements, [])


class SerializerTests(unittest.TestCase):
    """xmlwriter.serialize: escaping, namespaces, stanza namespaces."""

    def test_escape_text(self):
        """Text escapes &, < and >; quotes stay as they are."""
        self.assertEqual(escape_text("a<b>&'\""), "a&lt;b&gt;&amp;'\"")

    def test_escape_attribute(self):
        """Attribute values escape both quote characters too."""
        self.assertEqual(escape_attribute("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;")

    def test_escaped_element(self):
        """Text and attribute values are escaped in the output."""
        message = domish.Element(("jabber:client", "message"))
        message["id"] = "x'y\"<&>"
        message.addElement("body", content="</body><evil/>&amp;")
        self.assertEqual(serialize(message),
                         "<message id='x&apos;y&quot;&lt;&amp;&gt;'>"
                         "<body>&lt;/body&gt;&lt;evil/&gt;&amp;amp;</body></message>")

    def test_empty_element(self):
        """An element without children is self-closing."""
        self.assertEqual(serialize(domish.Element(("jabber:client", "presence"))), "<presence/>")

    def test_namespaces_declared_and_inherited(self):
        """A child in another namespace declares it; its descendants inherit it silently."""
        iq = domish.Element(("jabber:client", "iq"))
        query = iq.addElement(("jabber:iq:roster", "query"))
        query.addElement("item")["jid"] = "a@b"
        iq.addElement(("jabber:client", "error")).addElement(
            ("urn:ietf:params:xml:ns:xmpp-stanzas", "bad-request"))
        self.assertEqual(serialize(iq),
                         "<iq><query xmlns='jabber:iq:roster'><item jid='a@b'/></query>"
                         "<error><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")

    def test_no_namespace_inherits(self):
        """An element with no namespace (uri None) is written without xmlns."""
        message = domish.Element(("jabber:client", "message"))
        message.addChild(domish.Element((None, "error")))
        self.assertEqual(serialize(message), "<message><error/></message>")

    def test_stanza_namespaces_written_without_xmlns(self):
        """jabber:client and jabber:server stanzas go out without xmlns on either kind of
        stream, and so do their children in the stanza namespace."""
        for uri in ("jabber:client", "jabber:server"):
            message = domish.Element((uri, "message"))
            message.addElement("body", content="hi")
            for stream_ns in ("jabber:client", "jabber:server"):
                self.assertEqual(serialize(message, stream_ns), "<message><body>hi</body></message>")

    def test_stanza_inside_other_namespace(self):
        """A stanza wrapped in another namespace (forwarded, archived) declares jabber:client."""
        forwarded = domish.Element(("urn:xmpp:forward:0", "forwarded"))
        forwarded.addElement(("jabber:client", "message")).addElement("body", content="x")
        self.assertEqual(serialize(forwarded),
                         "<forwarded xmlns='urn:xmpp:forward:0'>"
                         "<message xmlns='jabber:client'><body>x</body></message></forwarded>")

    def test_namespaced_attributes(self):
        """xml:lang keeps its prefix; other namespaced attributes get a declared prefix."""
        message = domish.Element(("jabber:client", "message"))
        message[(NS_XML, "lang")] = "en"
        message[("urn:example:x", "flag")] = "1"
        text = serialize(message)
        self.assertIn(" xml:lang='en'", text)
        self.assertEqual(tree(only(text)), tree(message))

    def test_round_trip(self):
        """parse -> serialize -> parse gives the same tree, for a varied set of stanzas."""
        samples = [
            "<message to='bob@localhost/r' type='chat' id='1' xml:lang='en'>"
            "<body>a &lt; b &amp; c &gt; d 'q' \"dq\" \u263a</body>"
            "<html xmlns='http://jabber.org/protocol/xhtml-im'>"
            "<body xmlns='http://www.w3.org/1999/xhtml'><p style='a:&apos;b&apos;'>x</p></body></html>"
            "</message>",
            "<iq type='set' id='2'><query xmlns='jabber:iq:roster'>"
            "<item jid='a@b' name='&lt;A&gt;'><group>g</group></item></query></iq>",
            "<presence xmlns:x='urn:x' x:a='1'><show>dnd</show><priority>-1</priority>"
            "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>",
            "<message><forwarded xmlns='urn:xmpp:forward:0'>"
            "<message xmlns='jabber:client' from='a@b'><body>inner</body></message></forwarded></message>",
        ]
        for sample in samples:
            first = only(sample)
            second = only(serialize(first))
            self.assertEqual(tree(second), tree(first), sample)
            self.assertEqual(serialize(second), serialize(first))
