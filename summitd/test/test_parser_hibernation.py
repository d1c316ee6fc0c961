"""Tests for what a live stream's parser does to stay small (summitd.core.xmlstream): it
hibernates when its stream is quiet at a stanza boundary and wakes up in the same namespace
context, and it unlinks handled messages so that reference counting frees them."""

import gc
import weakref

from twisted.internet import task
from twisted.trial import unittest

from summitd.core import xmlstream
from summitd.core.errors import NS_STREAMS, StreamError
from summitd.core.xmlstream import HIBERNATE_AFTER, StreamParser
from summitd.core.xmlwriter import serialize
from summitd.test.test_xmlstream import HEADER, Recorder


def live_parser(**limits):
    """(parser, recorder, clock) for a stream that has sent its header."""
    clock = task.Clock()
    recorder = Recorder()
    parser = StreamParser(recorder, clock=clock, keep_parents=False, **limits)
    parser.feed(HEADER.encode("utf-8"))
    return parser, recorder, clock


def quiet(clock, periods=2):
    """Let the stream stay quiet for long enough to hibernate."""
    for _ in range(periods):
        clock.advance(HIBERNATE_AFTER)


class HibernationTests(unittest.TestCase):

    def test_quiet_stream_hibernates(self):
        """After two quiet intervals at a stanza boundary the expat parser is gone."""
        parser, recorder, clock = live_parser()
        parser.feed(b"<message to='a@b'><body>hi</body></message>  ")
        self.assertIsNotNone(parser._parser)
        quiet(clock)
        self.assertIsNone(parser._parser)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_wakes_up_in_the_same_namespaces(self):
        """A stanza after hibernation parses as before: default namespace, header prefixes."""
        clock = task.Clock()
        recorder = Recorder()
        parser = StreamParser(recorder, clock=clock, keep_parents=False)
        parser.feed(f"<s:stream xmlns='jabber:client' xmlns:s='{NS_STREAMS}' "
                    "xmlns:x='urn:example:x' to='localhost' version='1.0'>".encode("utf-8"))
        parser.feed(b"<presence/>")
        quiet(clock)
        self.assertIsNone(parser._parser)
        parser.feed(b"<message x:flag='1'><x:y/><body>&amp;</body></message><s:error/>")
        message, error = recorder.elements[1:]
        self.assertEqual((message.uri, message.attributes), ("jabber:client", {("urn:example:x", "flag"): "1"}))
        self.assertEqual([c.uri for c in message.elements()], ["urn:example:x", "jabber:client"])
        self.assertEqual(str(message.body), "&")
        self.assertEqual((error.uri, error.name), (NS_STREAMS, "error"))
        self.assertEqual(recorder.header["to"], "localhost")

    def test_header_is_not_reported_again(self):
        """Waking up replays the header without a second stream_started."""
        parser, recorder, clock = live_parser()
        recorder.header = None
        parser.feed(b"<presence/>")
        quiet(clock)
        parser.feed(b"<presence/>")
        self.assertIsNone(recorder.header)
        self.assertEqual(len(recorder.elements), 2)

    def test_not_inside_a_stanza(self):
        """A stream quiet in the middle of a stanza keeps its parser."""
        parser, recorder, clock = live_parser()
        parser.feed(b"<message><body>half")
        quiet(clock, 3)
        self.assertIsNotNone(parser._parser)
        parser.feed(b" done</body></message>")
        body = recorder.elements[0].body
        self.assertEqual("".join(c for c in body.children if isinstance(c, str)), "half done")

    def test_not_after_a_partial_tag(self):
        """A complete stanza followed by the beginning of the next (even one whose attribute
        holds '>') is no boundary."""
        for tail in (b"<mess", b"<iq a='>'", b"<iq a='>' "):
            parser, recorder, clock = live_parser()
            parser.feed(b"<presence/>" + tail)
            quiet(clock)
            self.assertIsNotNone(parser._parser, tail)

    def test_end_tag_split_over_chunks(self):
        """A stanza whose end tag began in an earlier chunk is not taken for a boundary."""
        parser, recorder, clock = live_parser()
        parser.feed(b"<message><body>x</body></mess")
        parser.feed(b"age>")
        quiet(clock)
        self.assertIsNotNone(parser._parser)
        self.assertEqual(len(recorder.elements), 1)

    def test_activity_keeps_it_awake(self):
        """A stream that receives something in every interval is never put to sleep."""
        parser, recorder, clock = live_parser()
        for _ in range(5):
            parser.feed(b"<presence/>")
            clock.advance(HIBERNATE_AFTER * 0.9)
            self.assertIsNotNone(parser._parser)

    def test_size_limit_after_waking_up(self):
        """The stanza size limit still counts the stanza's own bytes after a wake-up."""
        parser, recorder, clock = live_parser(max_stanza_size=100)
        parser.feed(b"<presence/>")
        quiet(clock)
        parser.feed(b"<message><body>" + b"a" * 60 + b"</body></message>")
        self.assertEqual(len(recorder.elements), 2)
        quiet(clock)
        with self.assertRaises(StreamError) as caught:
            parser.feed(b"<message><body>" + b"a" * 100 + b"</body></message>")
        self.assertEqual(caught.exception.condition, "policy-violation")

    def test_restricted_xml_after_waking_up(self):
        """The RFC 6120 restrictions apply to the new parser too."""
        parser, recorder, clock = live_parser()
        parser.feed(b"<presence/>")
        quiet(clock)
        with self.assertRaises(StreamError) as caught:
            parser.feed(b"<!-- no -->")
        self.assertEqual(caught.exception.condition, "restricted-xml")

    def test_stream_end_after_waking_up(self):
        """The stream's close tag reaches the handler after a wake-up."""
        parser, recorder, clock = live_parser()
        parser.feed(b"<presence/>")
        quiet(clock)
        parser.feed(b"</stream:stream>")
        self.assertTrue(recorder.ended)

    def test_close_ignores_the_rest_and_leaves_no_timer(self):
        """A closed parser ignores what follows, and its pending hibernation is cancelled."""
        parser, recorder, clock = live_parser()
        parser.feed(b"<presence/>")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        parser.close()
        parser.feed(b"<message/>")
        self.assertEqual(len(recorder.elements), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_memory_given_back_after_many(self):
        """Once TRIM_AFTER parsers have gone to sleep, freed memory is given back (once)."""
        trims = []
        self.patch(xmlstream, "TRIM_AFTER", 3)
        self.patch(xmlstream, "_malloc_trim", lambda: trims.append(1))
        clock = task.Clock()
        for _ in range(4):
            parser = StreamParser(Recorder(), clock=clock, keep_parents=False)
            parser.feed((HEADER + "<presence/>").encode("utf-8"))
        quiet(clock)
        self.assertEqual(trims, [1])

    def test_without_a_clock_never_hibernates(self):
        """Parsers of documents (no clock) keep their state."""
        recorder = Recorder()
        parser = StreamParser(recorder)
        parser.feed((HEADER + "<presence/>").encode("utf-8"))
        self.assertIsNotNone(parser._parser)


class UnlinkTests(unittest.TestCase):

    def test_handled_message_is_acyclic(self):
        """A message's descendants lose their parent links once handled (the handler saw
        them), so reference counting frees it: no cycle is left for the collector."""
        seen, kept = [], []

        class Handler(Recorder):
            def element_received(self, element):
                seen.append(element.body.parent is element)
                kept.append(weakref.ref(element))

        parser = StreamParser(Handler(), clock=task.Clock(), keep_parents=False)
        gc.disable()
        self.addCleanup(gc.enable)
        parser.feed((HEADER + "<message><body>x</body><x xmlns='urn:x'><y/></x></message>").encode())
        self.assertEqual(seen, [True])
        self.assertIsNone(kept[0]())

    def test_handled_message_serializes_the_same(self):
        """Unlinking leaves the tree itself whole."""
        recorder = Recorder()
        parser = StreamParser(recorder, clock=task.Clock(), keep_parents=False)
        parser.feed((HEADER + "<message><body>x</body><x xmlns='urn:x'><y/></x></message>").encode())
        message = recorder.elements[0]
        self.assertEqual([c.parent for c in message.elements()], [None, None])
        self.assertEqual(serialize(message), "<message><body>x</body><x xmlns='urn:x'><y/></x></message>")

    def test_iq_keeps_its_links(self):
        """IQ payloads keep their parent links (wokkel's pubsub parsing reads them later)."""
        recorder = Recorder()
        parser = StreamParser(recorder, clock=task.Clock(), keep_parents=False)
        parser.feed((HEADER + "<iq type='get' id='1'><query xmlns='urn:q'><item/></query></iq>").encode())
        iq = recorder.elements[0]
        query = next(iq.elements())
        self.assertIs(query.parent, iq)
        self.assertIs(next(query.elements()).parent, query)

    def test_default_keeps_links(self):
        """Without keep_parents=False, messages keep their links too."""
        recorder = Recorder()
        parser = StreamParser(recorder)
        parser.feed((HEADER + "<message><body>x</body></message>").encode())
        message = recorder.elements[0]
        self.assertIs(message.body.parent, message)
