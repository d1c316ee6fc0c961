"""MAM queries end to end (XEP-0313 §4-§5, XEP-0059, XEP-0431): every query form, paging in both
directions, the errors, the query form and the metadata, on a whole server with a fake clock."""

from twisted.trial import unittest

from summitd.core.jid import parse_jid
from summitd.core.rsm import NS_RSM
from summitd.plugins.mam.query import FULLTEXT_FIELD, NS_MAM, format_datetime, parse_datetime
from summitd.test.test_mam_helpers import MamHarness, child
from summitd.testing import parse_xml

SECOND = 1_000_000
#: Both archives of a message get the same timestamp: the recipient's copy is not later.
RECEIVED = 0


class QueryTestCase(MamHarness, unittest.TestCase):
    """Alice has ten messages from bob ("message 1".."message 10") and one from carol."""

    def setUp(self):
        self.start(max_page_size=5, default_page_size=3)
        for i in range(1, 11):
            self.chat(self.bob, "alice@localhost", f"message {i}", receiver=self.alice)
        carol = self.login("carol", "tablet")
        self.chat(carol, "alice@localhost", "hello from carol", receiver=self.alice)

    # -- results -------------------------------------------------------------------------

    def test_result_format(self):
        """Each result is a message from the archive with queryid, id, delay and the original."""
        answer = self.query(self.alice, {"with": "carol@localhost"})
        self.assertEqual(len(answer.results), 1)
        message = answer.results[0]
        self.assertEqual((message["from"], message["to"]), ("alice@localhost", "alice@localhost/phone"))
        result = child(message, "result", NS_MAM)
        self.assertEqual(result["queryid"], "q1")
        forwarded = child(result, "forwarded", "urn:xmpp:forward:0")
        delay = child(forwarded, "delay", "urn:xmpp:delay")
        self.assertEqual(delay["stamp"], format_datetime(11 * SECOND + RECEIVED))
        original = child(forwarded, "message", "jabber:client")
        self.assertEqual(original["from"], "carol@localhost/tablet")
        self.assertEqual(str(child(original, "body")), "hello from carol")
        self.assertEqual((answer.rsm("first"), answer.rsm("last"), answer.rsm("count")),
                         (result["id"], result["id"], "1"))
        self.assertTrue(answer.complete)

    def test_default_page_and_cap(self):
        """Without max the default page size applies; a max over the cap is clamped and the
        fin is not complete, with the full count."""
        default = self.query(self.alice)
        self.assertEqual((len(default.results), default.complete, default.rsm("count")),
                         (3, False, "11"))
        clamped = self.query(self.alice, max=1000)
        self.assertEqual((len(clamped.results), clamped.complete, clamped.rsm("count")),
                         (5, False, "11"))
        self.assertEqual(clamped.first_index, "0")

    def test_forward_paging_to_the_end(self):
        """Paging with after walks the whole archive once, in order; the last page is complete."""
        seen, after = [], None
        for _ in range(5):
            answer = self.query(self.alice, {"with": "bob@localhost"}, max=4, after=after)
            seen += answer.bodies
            if answer.complete:
                break
            after = answer.rsm("last")
        self.assertEqual(seen, [f"message {i}" for i in range(1, 11)])
        self.assertTrue(answer.complete)

    def test_backward_paging_from_the_last_page(self):
        """An empty before gives the newest page; before the first id pages back; pages are
        in chronological order; the first page is complete."""
        last = self.query(self.alice, {"with": "bob@localhost"}, max=4, before="")
        self.assertEqual(last.bodies, [f"message {i}" for i in (7, 8, 9, 10)])
        self.assertEqual((last.first_index, last.complete), ("6", False))
        previous = self.query(self.alice, {"with": "bob@localhost"}, max=4, before=last.rsm("first"))
        self.assertEqual(previous.bodies, [f"message {i}" for i in (3, 4, 5, 6)])
        first = self.query(self.alice, {"with": "bob@localhost"}, max=4, before=previous.rsm("first"))
        self.assertEqual((first.bodies, first.complete), (["message 1", "message 2"], True))

    def test_flip_page(self):
        """flip-page reverses the order the page is sent in, not what it holds."""
        plain = self.query(self.alice, max=4, before="")
        flipped = self.query(self.alice, max=4, before="", flip=True)
        self.assertEqual(flipped.ids, list(reversed(plain.ids)))
        self.assertEqual((flipped.rsm("first"), flipped.rsm("last")), (plain.rsm("first"), plain.rsm("last")))

    def test_count_only(self):
        """max 0 gives no results, only the count."""
        answer = self.query(self.alice, max=0)
        self.assertEqual((answer.results, answer.rsm("count"), answer.rsm("first")), ([], "11", None))

    def test_index(self):
        """An RSM index starts the page there."""
        answer = self.query(self.alice, {"with": "bob@localhost"}, max=2, index=8)
        self.assertEqual((answer.bodies, answer.first_index, answer.complete),
                         (["message 9", "message 10"], "8", True))

    # -- filters -------------------------------------------------------------------------

    def test_start_end(self):
        """start and end are inclusive timestamps, any XEP-0082 zone."""
        answer = self.query(self.alice, {"start": format_datetime(3 * SECOND),
                                         "end": "1970-01-01T01:00:05.5+01:00"})
        self.assertEqual(answer.bodies, ["message 3", "message 4", "message 5"])

    def test_with_full_jid(self):
        """A full JID in 'with' matches only that resource."""
        self.assertEqual(len(self.query(self.alice, {"with": "bob@localhost/pc"}, max=5).results), 5)
        self.assertEqual(self.query(self.alice, {"with": "bob@localhost/other"}).results, [])

    def test_after_id_before_id_ids(self):
        """after-id/before-id bound the result set (exclusive); ids fetches exactly those."""
        ids = self.query(self.alice, {"with": "bob@localhost"}, max=5).ids
        between = self.query(self.alice, {"after-id": ids[0], "before-id": ids[4]})
        self.assertEqual((between.bodies, between.rsm("count")),
                         (["message 2", "message 3", "message 4"], "3"))
        chosen = self.query(self.alice, {"ids": [ids[3], ids[1]]})
        self.assertEqual(chosen.bodies, ["message 2", "message 4"])

    def test_fulltext(self):
        """The fulltext field finds by word, newest first by default, combined with 'with'."""
        found = self.search(self.alice, "MESSAGE")
        self.assertEqual(found.bodies, ["message 8", "message 9", "message 10"])
        self.assertEqual((found.rsm("count"), found.first_index), ("10", "7"))
        self.assertEqual(self.search(self.alice, "hel*").bodies, ["hello from carol"])
        self.assertEqual(self.search(self.alice, "hello", **{"with": "bob@localhost"}).bodies, [])
        older = self.query(self.alice, {FULLTEXT_FIELD: "message"}, max=3, before=found.rsm("first"))
        self.assertEqual(older.bodies, ["message 5", "message 6", "message 7"])

    def test_include_groupchat(self):
        """A groupchat message in the archive (MIX-PAM puts channel messages there) is left
        out with include-groupchat false, and in with true or without the field."""
        self.tick()
        mam = self.server.extensions.loaded["mam"][0]
        stanza = parse_xml("<message xmlns='jabber:client' from='room@mix.localhost'"
                           " to='alice@localhost' type='groupchat'><body>in the channel</body>"
                           "</message>")
        self.assertIsNotNone(mam.archive_received(stanza, parse_jid("alice@localhost")))
        for value, expected in (("false", 11), ("0", 11), ("true", 12), (None, 12)):
            fields = {"include-groupchat": value} if value is not None else None
            answer = self.query(self.alice, fields, max=5, before="")
            self.assertEqual(answer.rsm("count"), str(expected), value)
        newest = self.query(self.alice, {"include-groupchat": "false"}, max=1, before="")
        self.assertEqual(newest.bodies, ["hello from carol"])

    # -- errors --------------------------------------------------------------------------

    def assertError(self, condition, fields=None, **kwargs):
        answer = self.query(self.alice, fields, **kwargs)
        self.assertEqual(answer.error, condition, answer.reply.toXml())
        self.assertEqual(answer.results, [])

    def test_unknown_field(self):
        """A field the form does not define is bad-request."""
        self.assertError("bad-request", {"{urn:example}colour": "red"})

    def test_malformed_fields(self):
        """Malformed dates, a bad JID, two values, a bad boolean or search, a wrong FORM_TYPE."""
        self.assertError("bad-request", {"start": "yesterday"})
        self.assertError("bad-request", {"end": "2010-13-40T25:00:00Z"})
        self.assertError("bad-request", {"with": "@nobody"})
        self.assertError("bad-request", {"with": ["bob@localhost", "carol@localhost"]})
        self.assertError("bad-request", {"include-groupchat": "maybe"})
        self.assertError("bad-request", {FULLTEXT_FIELD: "!!!"})
        self.assertError("bad-request", {"FORM_TYPE": "urn:xmpp:mam:1"})

    def test_malformed_rsm(self):
        """A non-numeric max, or after with before, is bad-request."""
        self.assertError("bad-request", max="ten")
        self.assertError("bad-request", after="a", before="b")

    def test_unknown_ids(self):
        """Unknown after-id, before-id, ids, RSM after or before are item-not-found."""
        self.assertError("item-not-found", {"after-id": "nope"})
        self.assertError("item-not-found", {"before-id": "nope"})
        self.assertError("item-not-found", {"ids": "nope"})
        self.assertError("item-not-found", after="nope")
        self.assertError("item-not-found", before="nope")

    def test_other_users_archive(self):
        """Querying, reading the form, metadata or prefs of another account is forbidden, and
        nothing of that archive is sent."""
        self.assertError("forbidden", to="bob@localhost")
        for name in ("query", "metadata", "prefs"):
            results, reply = self.send_iq(self.alice, "get", f"<{name} xmlns='{NS_MAM}'/>", "bob@localhost")
            self.assertEqual((results, reply["type"]), ([], "error"))

    def test_node_is_not_a_user_archive(self):
        """A pubsub node attribute on a user archive query is item-not-found."""
        results, reply = self.send_iq(self.alice, "set", f"<query xmlns='{NS_MAM}' node='x'/>")
        self.assertEqual(reply["type"], "error")

    # -- form and metadata ----------------------------------------------------------------

    def test_query_form(self):
        """An IQ get of the query lists every supported field, ids with an open validate."""
        _, reply = self.send_iq(self.alice, "get", f"<query xmlns='{NS_MAM}'/>")
        form = child(child(reply, "query", NS_MAM), "x", "jabber:x:data")
        self.assertEqual(form["type"], "form")
        fields = {f["var"]: f for f in form.elements() if f.name == "field"}
        self.assertEqual(set(fields), {"FORM_TYPE", "with", "start", "end", "before-id", "after-id",
                                       "ids", "include-groupchat", FULLTEXT_FIELD})
        self.assertEqual(fields["with"]["type"], "jid-single")
        validate = child(fields["ids"], "validate", "http://jabber.org/protocol/xdata-validate")
        self.assertIsNotNone(child(validate, "open"))
        self.assertFalse(any(child(f, "required") for f in fields.values()))

    def test_metadata(self):
        """metadata gives the first and last id and time; an empty archive an empty element."""
        ids = self.query(self.alice, max=5).ids
        _, reply = self.send_iq(self.alice, "get", f"<metadata xmlns='{NS_MAM}'/>")
        metadata = child(reply, "metadata", NS_MAM)
        start, end = child(metadata, "start"), child(metadata, "end")
        self.assertEqual((start["id"], start["timestamp"]), (ids[0], format_datetime(SECOND + RECEIVED)))
        self.assertEqual(end["timestamp"], format_datetime(11 * SECOND + RECEIVED))
        dave = self.login("dave", "laptop")
        _, reply = self.send_iq(dave, "get", f"<metadata xmlns='{NS_MAM}'/>")
        self.assertEqual(list(child(reply, "metadata", NS_MAM).elements()), [])

    def test_fin_set_namespace(self):
        """The fin carries an RSM set in the RSM namespace."""
        answer = self.query(self.alice)
        self.assertEqual(child(answer.fin, "set").uri, NS_RSM)


class DateTimeTests(unittest.TestCase):
    def test_round_trip(self):
        """format_datetime and parse_datetime agree, to the microsecond."""
        for ts in (0, 1, 1_278_803_305_123_456):
            self.assertEqual(parse_datetime(format_datetime(ts)), ts)

    def test_zones_and_fractions(self):
        """Offsets convert to UTC; fractions of any length are read to the microsecond."""
        self.assertEqual(parse_datetime("1970-01-01T01:00:00+01:00"), 0)
        self.assertEqual(parse_datetime("1970-01-01T00:00:00.5Z"), 500_000)
        self.assertEqual(parse_datetime("1970-01-01T00:00:00.1234567Z"), 123_456)

    def test_malformed(self):
        """Missing zone, bad ranges and stray text are refused."""
        for text in ("2010-07-10T23:08:25", "2010-07-10 23:08:25Z", "2010-02-30T00:00:00Z",
                     "2010-07-10T23:08:25+25:00", "x2010-07-10T23:08:25Z", "٢٠١٠-07-10T23:08:25Z"):
            self.assertRaises(ValueError, parse_datetime, text)
