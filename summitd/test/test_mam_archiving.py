"""What is archived, where, and with which stanza-id (XEP-0313 §3.4 and §6.1.1, XEP-0359,
XEP-0334), on a whole server with a fake clock."""

from twisted.internet import defer
from twisted.trial import unittest

from summitd.core.jid import parse_jid
from summitd.plugins.mam import archiving
from summitd.plugins.mam.stanza_id import ArchiveClock, IdMaker, timestamp_of
from summitd.plugins.mam.store import ArchiveEntry
from summitd.plugins.mam.writer import ArchiveWriter
from summitd.test.test_mam_helpers import MamHarness, child, stanza_ids
from summitd.testing import parse_xml, result_of

HINT = "<{0} xmlns='urn:xmpp:hints'/>"


class ArchivingTestCase(MamHarness, unittest.TestCase):
    def setUp(self):
        self.start()

    def archived(self, client, **fields):
        return self.query(client, fields or None, max=50).bodies

    # -- stanza-id -------------------------------------------------------------------------

    def test_stamped_with_recipient_archive_id(self):
        """A delivered message carries one stanza-id by the recipient's bare JID: the id of the
        recipient's archive entry."""
        received = self.chat(self.bob, "alice@localhost", "hi", receiver=self.alice)
        ((by, archive_id),) = stanza_ids(received)
        self.assertEqual(by, "alice@localhost")
        self.assertEqual(self.query(self.alice).ids, [archive_id])

    def test_sender_archive_has_own_id(self):
        """The sender's archive keeps the message under another id, which the recipient never
        sees."""
        received = self.chat(self.bob, "alice@localhost", "hi", receiver=self.alice)
        ((_, alice_id),) = stanza_ids(received)
        bob_answer = self.query(self.bob)
        self.assertEqual(bob_answer.bodies, ["hi"])
        self.assertNotEqual(bob_answer.ids, [alice_id])
        self.assertNotIn(bob_answer.ids[0], received.toXml())

    def test_ids_are_unique_and_sortable(self):
        """Ids of successive messages differ and sort in archive order."""
        for i in range(5):
            self.chat(self.bob, "alice@localhost", f"m{i}", receiver=self.alice)
        ids = self.query(self.alice).ids
        self.assertEqual(len(set(ids)), 5)
        self.assertEqual(ids, sorted(ids))

    def test_forged_stanza_ids_stripped_from_clients(self):
        """A client's stanza-ids claiming a local archive or domain are removed; a remote
        entity's is kept."""
        forged = ("<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='fake1'/>"
                  "<stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='fake2'/>"
                  "<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='fake3'/>"
                  "<stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example.org' id='remote'/>")
        received = self.chat(self.bob, "alice@localhost", "hi", extra=forged, receiver=self.alice)
        ids = stanza_ids(received)
        self.assertEqual(len(ids), 2)
        self.assertIn(("room@muc.example.org", "remote"), ids)
        self.assertNotIn("fake", received.toXml())

    def test_forged_stanza_ids_stripped_inbound(self):
        """A message routed to an account (as from a remote server) loses stanza-ids by local
        entities unless they are the archive's own genuine ids."""
        self.server.router.route(parse_xml(
            "<message from='mallory@evil.example/x' to='alice@localhost' type='chat'><body>x</body>"
            "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='0000000000000000000000aa'/>"
            "</message>"))
        received = self.alice.expect("<message/>")
        ((by, archive_id),) = stanza_ids(received)
        self.assertEqual(self.query(self.alice).ids, [archive_id])

    def test_rerouted_message_archived_once(self):
        """A stamped message routed again (stream management) is neither restamped nor archived
        twice, whether it is the same element or a copy read back from a spool."""
        received = self.chat(self.bob, "alice@localhost", "once", receiver=self.alice)
        self.server.router.route(received)
        self.server.router.route(parse_xml(received.toXml()))
        self.assertEqual(len(stanza_ids(self.alice.expect("<message/>"))), 1)
        self.assertEqual(len(stanza_ids(self.alice.expect("<message/>"))), 1)
        self.assertEqual(self.archived(self.alice), ["once"])

    # -- which messages ----------------------------------------------------------------------

    def test_eligible_messages(self):
        """chat and normal with a body, store hints and encrypted payloads are archived."""
        self.chat(self.bob, "alice@localhost", "chat", receiver=self.alice)
        self.chat(self.bob, "alice@localhost", "normal", type="normal", receiver=self.alice)
        self.tick()
        self.bob.send("<message to='alice@localhost' type='chat'><encrypted "
                      "xmlns='eu.siacs.conversations.axolotl'/></message>")
        self.tick()
        self.bob.send("<message to='alice@localhost'><x xmlns='urn:example'/>"
                      + HINT.format("store") + "</message>")
        self.alice.expect("<message/>")
        self.alice.expect("<message/>")
        self.assertEqual(self.query(self.alice).rsm("count"), "4")
        self.assertEqual(self.query(self.bob).rsm("count"), "4")

    def test_ineligible_messages(self):
        """headline, groupchat, error, state-only and no-store/no-permanent-store messages are
        not archived by either side."""
        self.chat(self.bob, "alice@localhost", "news", type="headline", receiver=self.alice)
        self.chat(self.bob, "alice@localhost", "hint", extra=HINT.format("no-permanent-store"),
                  receiver=self.alice)
        self.chat(self.bob, "alice@localhost", "hint", extra=HINT.format("no-store"),
                  receiver=self.alice)
        self.bob.send("<message to='alice@localhost/phone' type='groupchat'><body>g</body></message>")
        self.bob.send("<message to='alice@localhost/phone' type='error'><body>e</body></message>")
        self.bob.send("<message to='alice@localhost' type='chat'>"
                      "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        for _ in range(3):
            self.assertEqual(stanza_ids(self.alice.expect("<message/>")), [])
        self.assertEqual(self.archived(self.alice), [])
        self.assertEqual(self.archived(self.bob), [])

    def test_message_to_self_archived_once(self):
        """A message to the own bare JID is one entry, with 'with' the account itself."""
        self.chat(self.alice, "alice@localhost", "note to self", receiver=self.alice)
        self.assertEqual(self.archived(self.alice), ["note to self"])
        self.assertEqual(self.archived(self.alice, **{"with": "alice@localhost"}), ["note to self"])

    def test_outgoing_to_remote_archived(self):
        """A message to another server is archived in the sender's archive."""
        self.bob.send("<message to='juliet@capulet.example' type='chat'><body>far</body></message>")
        self.bob.expect("<message type='error'/>")       # no s2s here: bounced
        self.assertEqual(self.archived(self.bob, **{"with": "juliet@capulet.example"}), ["far"])

    def test_offline_recipient_archived(self):
        """An existing account with no session still gets the message in its archive."""
        self.chat(self.bob, "carol@localhost", "while away")
        carol = self.login("carol", "tablet")
        self.assertEqual(self.archived(carol), ["while away"])

    def test_missing_account_not_archived(self):
        """Nothing is written for an account that does not exist."""
        self.chat(self.bob, "nobody@localhost", "into the void")
        self.bob.expect("<message type='error'/>")
        self.assertEqual(self.archived(self.bob), ["into the void"])
        store = self.server.extensions.loaded["mam"][0].store
        self.assertEqual(result_of(store.metadata("localhost", "nobody")), (None, None))

    def test_account_deletion_deletes_archive(self):
        """Deleting an account deletes its archive and preferences, nobody else's."""
        self.chat(self.bob, "carol@localhost", "for carol")
        self.send_iq(self.bob, "set", "<prefs xmlns='urn:xmpp:mam:2' default='always'/>")
        result_of(self.server.account_manager.delete("carol@localhost"))
        result_of(self.server.account_manager.delete("bob@localhost"))
        store = self.server.extensions.loaded["mam"][0].store
        self.assertEqual(result_of(store.metadata("localhost", "carol")), (None, None))
        self.assertEqual(result_of(store.metadata("localhost", "bob")), (None, None))
        self.assertEqual(result_of(store.load_prefs()), {})

    def test_stored_stanza_without_own_stanza_id(self):
        """A message from another server is archived without the stanza-id we stamped on it
        (the result's id carries it), but with a remote entity's."""
        self.server.router.route(parse_xml(
            "<message from='juliet@capulet.example/x' to='alice@localhost' type='chat'>"
            "<body>o</body><stanza-id xmlns='urn:xmpp:sid:0' by='capulet.example' id='c1'/>"
            "</message>"))
        self.assertEqual(len(stanza_ids(self.alice.expect("<message/>"))), 2)
        forwarded = child(child(self.query(self.alice).results[0], "result"), "forwarded")
        self.assertEqual(stanza_ids(child(forwarded, "message")), [("capulet.example", "c1")])

    def test_stored_stanza_is_jabber_client(self):
        """The archived copy is the message as sent, in the jabber:client namespace."""
        self.chat(self.bob, "alice@localhost", "ns &lt;&amp;&gt; check", receiver=self.alice)
        result = child(self.query(self.alice).results[0], "result")
        original = child(child(result, "forwarded"), "message")
        self.assertEqual((original.uri, original["from"]), ("jabber:client", "bob@localhost/pc"))
        self.assertEqual(str(child(original, "body")), "ns <&> check")

    def test_sent_archive_id_for_carbons(self):
        """sent_archive_id tells the sender's archive id of a message a client sent."""
        seen = []
        from summitd.core import events
        from summitd.core.hooks import Priority
        self.server.hooks.add(events.STANZA_FROM_CLIENT,
                              lambda s, stanza: seen.append(archiving.sent_archive_id(stanza))
                              if stanza.name == "message" else None,
                              Priority.COPY)
        self.chat(self.bob, "alice@localhost", "carbon me", receiver=self.alice)
        self.assertEqual(seen, self.query(self.bob).ids)


class ArchiveRestartTests(unittest.TestCase):
    def test_clock_and_ids(self):
        """ArchiveClock never repeats or goes back; ids verify only for their archive and key."""
        clock = type("C", (), {"seconds": lambda self: 5.0})()
        archive_clock = ArchiveClock(clock)
        archive_clock.seed(7_000_000)
        first, second = archive_clock.next(), archive_clock.next()
        self.assertEqual((first, second), (7_000_001, 7_000_002))
        ids = IdMaker(b"k" * 32)
        made = ids.make("alice@localhost", first)
        self.assertEqual((len(made), timestamp_of(made)), (30, first))
        self.assertTrue(ids.verify("alice@localhost", made))
        self.assertFalse(ids.verify("bob@localhost", made))
        self.assertFalse(IdMaker(b"x" * 32).verify("alice@localhost", made))
        self.assertFalse(ids.verify("alice@localhost", "not hex!"))
        self.assertIsNone(timestamp_of("0" * 29 + "g"))
        self.assertLess(made, ids.make("alice@localhost", second))


class FailingStore:
    """A store whose appends fail ``failures`` times, then succeed."""

    def __init__(self, failures):
        self.failures = failures
        self.written = []

    def append(self, entries):
        if self.failures:
            self.failures -= 1
            return defer.fail(RuntimeError("disk on fire"))
        self.written.extend(map(ArchiveEntry._make, entries))
        return defer.succeed(None)


class FakeContext:
    def __init__(self, clock):
        from twisted.logger import Logger
        self.clock = clock
        self.log = Logger()
        self.tracked = []

    def track_write(self, d):
        self.tracked.append(d)
        return d

    def call_later(self, delay, fn, *args):
        return self.clock.callLater(delay, fn, *args)

    held = False

    def hold_client_intake(self, reason):
        self.held = True

    def release_client_intake(self, reason):
        self.held = False


def some_entry(n):
    return ArchiveEntry("localhost", "alice", f"id{n}", n, "bob@localhost", "", "<message/>", "")


class WriterTests(unittest.TestCase):
    def setUp(self):
        from twisted.internet import task
        self.clock = task.Clock()
        self.context = FakeContext(self.clock)

    def test_batches_while_busy(self):
        """Entries arriving while a batch is written go together in the next batch."""
        writer, pending = self.slow_writer()
        done = [writer.add(some_entry(i)) for i in range(3)]
        self.assertEqual([len(batch) for batch, _ in pending], [1])
        pending[0][1].callback(None)
        self.assertEqual([len(batch) for batch, _ in pending], [1, 2])
        self.assertTrue(done[0].called)
        self.assertFalse(done[2].called)
        pending[1][1].callback(None)
        self.assertTrue(all(d.called for d in done))
        self.assertEqual(len(self.context.tracked), 2)

    def slow_writer(self, **options):
        pending = []

        class SlowStore:
            def append(self, entries):
                pending.append(([ArchiveEntry._make(e) for e in entries], defer.Deferred()))
                return pending[-1][1]

        options.setdefault("delay", 0)
        return ArchiveWriter(SlowStore(), self.context, **options), pending

    def test_delay_gathers_a_batch(self):
        """An idle writer waits its delay, then writes everything queued at once; flush() does
        not wait; entries of an account being deleted are not written."""
        store = FailingStore(failures=0)
        writer = ArchiveWriter(store, self.context, delay=0.02)
        done = [writer.add(some_entry(i)) for i in range(3)]
        self.assertEqual((store.written, done[0].called), ([], False))
        self.clock.advance(0.02)
        self.assertEqual([e.id for e in store.written], ["id0", "id1", "id2"])
        self.assertTrue(all(d.called for d in done))
        writer.add(some_entry(3))
        writer.forget("localhost", "alice")
        writer.add(some_entry(4))
        writer.flush()
        self.assertEqual(len(store.written), 3)
        writer.remember("localhost", "alice")
        writer.add(some_entry(5))
        writer.flush()
        self.assertEqual(store.written[-1].id, "id5")

    def test_batch_size_bound(self):
        """A queue longer than max_batch is written in several transactions, in order."""
        writer, pending = self.slow_writer(max_batch=2)
        done = [writer.add(some_entry(i)) for i in range(4)]
        pending[0][1].callback(None)
        self.assertEqual([[e.id for e in batch] for batch, _ in pending],
                         [["id0"], ["id1", "id2"]])
        pending[1][1].callback(None)
        self.assertFalse(done[1].called)        # its queue's Deferred waits for id3 too
        pending[2][1].callback(None)
        self.assertEqual([e.id for e in pending[2][0]], ["id3"])
        self.assertTrue(all(d.called for d in done))

    def test_full_queue_drops(self):
        """Past max_queued, entries are not archived (and their Deferred fires at once)."""
        writer, pending = self.slow_writer(max_queued=2)
        done = [writer.add(some_entry(i)) for i in range(4)]
        self.assertTrue(done[3].called)
        self.assertFalse(done[2].called)
        pending[0][1].callback(None)
        self.assertEqual([e.id for e in pending[1][0]], ["id1", "id2"])

    def test_retries_then_succeeds(self):
        """A failed batch is retried later; meanwhile results are unstable."""
        store = FailingStore(failures=2)
        writer = ArchiveWriter(store, self.context, delay=0)
        done = writer.add(some_entry(1))
        self.assertFalse(writer.stable)
        self.clock.advance(1)
        self.assertFalse(writer.stable)
        self.clock.advance(5)
        self.assertEqual([e.id for e in store.written], ["id1"])
        self.assertTrue(writer.stable)
        self.assertTrue(done.called)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_gives_up(self):
        """After the last retry the batch is dropped and logged; the writer goes on."""
        store = FailingStore(failures=4)
        writer = ArchiveWriter(store, self.context, delay=0)
        done = writer.add(some_entry(1))
        self.clock.pump([1, 5, 30])
        self.assertTrue(done.called)
        self.assertTrue(writer.stable)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 4)
        writer.add(some_entry(2))
        self.assertEqual([e.id for e in store.written], ["id2"])


class EligibilityTests(unittest.TestCase):
    def test_rules(self):
        """archivable() by type, body, payload and hint."""
        cases = {
            "<message type='chat'><body>x</body></message>": True,
            "<message><body>x</body></message>": True,
            "<message type='normal'/>": False,
            "<message type='headline'><body>x</body></message>": False,
            "<message type='groupchat'><body>x</body></message>": False,
            "<message type='error'><body>x</body></message>": False,
            "<message type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>": False,
            "<message type='chat'><store xmlns='urn:xmpp:hints'/></message>": True,
            "<message type='chat'><reactions xmlns='urn:xmpp:reactions:0' id='1'/></message>": True,
            "<message type='chat'><received xmlns='urn:xmpp:carbons:2'/></message>": False,
            "<message type='chat'><body xmlns='urn:example'>x</body></message>": False,
        }
        for xml, expected in cases.items():
            self.assertEqual(archiving.archivable(parse_xml(xml)), expected, xml)

    def test_body_text(self):
        """Every body is indexed, one per line."""
        stanza = parse_xml("<message><body>one</body><body xml:lang='de'>eins</body></message>")
        self.assertEqual(archiving.body_text(stanza), "one\neins")

    def test_stored_xml_namespace(self):
        """A jabber:server stanza is stored in jabber:client."""
        stanza = parse_xml("<message to='a@b'><body>x</body></message>", "jabber:server")
        self.assertTrue(archiving.stored_xml(stanza).startswith("<message xmlns='jabber:client' to="))
        self.assertEqual(parse_jid("a@b").host, "b")


class WriterPacingTests(unittest.TestCase):
    """One batch per delay at most: entries that arrive while a batch is written wait until
    the delay has passed since that batch started, unless max_batch are queued or a query
    flushes."""

    def setUp(self):
        from twisted.internet import task
        self.context = FakeContext(task.Clock())

    slow_writer = WriterTests.slow_writer

    def test_next_batch_waits_for_the_delay(self):
        writer, pending = self.slow_writer(delay=0.1)
        writer.add(some_entry(0))
        self.context.clock.advance(0.1)
        self.assertEqual(len(pending), 1)
        writer.add(some_entry(1))
        writer.add(some_entry(2))
        self.context.clock.advance(0.03)
        pending[0][1].callback(None)            # written after 30 ms: 70 ms still to wait
        self.assertEqual(len(pending), 1)
        self.context.clock.advance(0.069)
        self.assertEqual(len(pending), 1)
        self.context.clock.advance(0.001)
        self.assertEqual([len(batch) for batch, _ in pending], [1, 2])

    def test_slow_write_submits_at_once(self):
        writer, pending = self.slow_writer(delay=0.1)
        writer.add(some_entry(0))
        self.context.clock.advance(0.1)
        writer.add(some_entry(1))
        self.context.clock.advance(0.5)         # the write took longer than the delay
        pending[0][1].callback(None)
        self.assertEqual([len(batch) for batch, _ in pending], [1, 1])

    def test_full_batch_does_not_wait(self):
        writer, pending = self.slow_writer(delay=0.1, max_batch=3)
        writer.add(some_entry(0))
        self.context.clock.advance(0.1)
        for i in range(1, 4):
            writer.add(some_entry(i))
        pending[0][1].callback(None)
        self.assertEqual([len(batch) for batch, _ in pending], [1, 3])

    def test_flush_does_not_wait(self):
        writer, pending = self.slow_writer(delay=0.1)
        writer.add(some_entry(0))
        self.context.clock.advance(0.1)
        writer.add(some_entry(1))
        writer.flush()
        self.assertEqual([len(batch) for batch, _ in pending], [1, 1])


class WriterIntakeTests(unittest.TestCase):
    """A tenth of the queue bound waiting: the client intake is held until a fiftieth are
    left; not while the database fails (retries), when the bound drops entries instead."""

    def setUp(self):
        from twisted.internet import task
        self.context = FakeContext(task.Clock())

    slow_writer = WriterTests.slow_writer

    def test_holds_and_releases(self):
        writer, pending = self.slow_writer(max_queued=100, max_batch=4)
        for i in range(9):
            writer.add(some_entry(i))
        self.assertFalse(self.context.held)          # 1 written, 8 queued
        writer.add(some_entry(9))
        writer.add(some_entry(10))
        self.assertTrue(self.context.held)           # 10 queued: a tenth of 100
        for _ in range(2):
            pending[-1][1].callback(None)
        self.assertTrue(self.context.held)           # 6 were waiting: more than a fiftieth
        pending[-1][1].callback(None)
        self.assertFalse(self.context.held)          # 2 were waiting: a fiftieth
        self.assertEqual(sum(len(batch) for batch, _ in pending), 11)

    def test_no_pacing_while_held(self):
        """While the intake is held, the next batch goes as soon as the last one is written."""
        writer, pending = self.slow_writer(max_queued=100, max_batch=8, delay=0.1)
        for i in range(11):
            writer.add(some_entry(i))
        self.context.clock.advance(0.1)             # the first batch: 8 entries
        for i in range(11, 22):
            writer.add(some_entry(i))
        self.assertTrue(self.context.held)          # 14 waiting
        pending[0][1].callback(None)
        pending[1][1].callback(None)                # 6 waiting: more than a fiftieth
        self.assertEqual([len(batch) for batch, _ in pending], [8, 8, 6])

    def test_failing_database_releases(self):
        writer, pending = self.slow_writer(max_queued=20)
        for i in range(3):
            writer.add(some_entry(i))
        self.assertTrue(self.context.held)
        pending[0][1].errback(RuntimeError("disk full"))
        self.assertFalse(self.context.held)
        for i in range(3, 30):
            writer.add(some_entry(i))
        self.assertFalse(self.context.held)         # past the bound: dropped, not held
        self.flushLoggedErrors(RuntimeError)

    def test_drain_releases(self):
        writer, pending = self.slow_writer(max_queued=20)
        for i in range(3):
            writer.add(some_entry(i))
        self.assertTrue(self.context.held)
        writer.drain()
        self.assertFalse(self.context.held)


class WriterQueueGCTests(unittest.TestCase):
    def test_queued_entries_leave_the_cycle_collector(self):
        """Queued entries are plain tuples the collector stops tracking: waiting entries must
        not grow the oldest generation (its full collections stall the reactor)."""
        import gc
        from twisted.internet import task
        writer = ArchiveWriter(FailingStore(failures=0), FakeContext(task.Clock()), delay=1)
        writer.add(some_entry(0))
        gc.collect()
        self.assertFalse(gc.is_tracked(writer._queue[0]))
