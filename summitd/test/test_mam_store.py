"""The archive store contract (summitd.plugins.mam.store.IArchiveStore), run on every backend:
the in-memory reference store and the SQL store on SQLite with FTS5."""

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from summitd.plugins.mam import fulltext
from summitd.plugins.mam.memory import MemoryArchiveStore
from summitd.plugins.mam.prefs import Prefs
from summitd.plugins.mam import sql as sql_store
from summitd.plugins.mam.sql import SQLArchiveStore
from summitd.plugins.mam.stanza_id import IdMaker
from summitd.plugins.mam.store import (
    ArchiveEntry, ArchiveFilter, IArchiveStore, PageRequest, UnknownArchiveId)
from summitd.storage.database import Database
from summitd.storage.engines import SQLiteEngine
from summitd.storage.schema import apply_migrations
from summitd.testing import result_of

HOST = "localhost"
SECOND = 1_000_000
MAKER = IdMaker(b"contract-test-key")


def aid(label):
    """The archive id of entry 'user-n' (what entry() writes); other text is left alone."""
    user, _, n = label.partition("-")
    return MAKER.make(f"{user}@{HOST}", int(n) * SECOND) if n.isdigit() else label


def entry(user, n, with_bare="bob@localhost", resource="phone", body=None):
    """Entry number n of user's archive: ts n seconds, labelled 'user-n'."""
    body = f"message {n}" if body is None else body
    return ArchiveEntry(HOST, user, aid(f"{user}-{n}"), n * SECOND, with_bare, resource,
                        f"<message xmlns='jabber:client'><body>{body}</body></message>", body)


def ids(page):
    """The labels of a page's items."""
    labels = {}
    for item in page.items:
        user = next(u for u in ("alice", "bob") if aid(f"{u}-{item.ts // SECOND}") == item.id)
        labels[item.id] = f"{user}-{item.ts // SECOND}"
    return [labels[item.id] for item in page.items]


class ArchiveStoreContract:
    """The tests; subclasses provide make_store() and in_transaction(fn)."""

    def setUp(self):
        self.store = self.make_store()
        result_of(self.store.setup())

    def append(self, *entries):
        result_of(self.store.append(entries))

    def fill(self, user="alice", n=10, **kwargs):
        self.append(*(entry(user, i, **kwargs) for i in range(1, n + 1)))

    def query(self, archive_filter=None, user="alice", **page):
        page.setdefault("max", 100)
        return result_of(self.store.query(HOST, user, archive_filter or ArchiveFilter(),
                                          PageRequest(**page)))

    def assertUnknown(self, archive_filter=None, **page):
        page.setdefault("max", 100)
        d = self.store.query(HOST, "alice", archive_filter or ArchiveFilter(), PageRequest(**page))
        self.failureResultOf(d, UnknownArchiveId)

    def search(self, text, user="alice", **filter_fields):
        return self.query(ArchiveFilter(fulltext=fulltext.parse_search(text), **filter_fields),
                          user=user)

    # -- the interface ---------------------------------------------------------------

    def test_provides_interface(self):
        """The store provides IArchiveStore and says it can search."""
        self.assertTrue(verifyObject(IArchiveStore, self.store))
        self.assertTrue(self.store.supports_fulltext)

    def test_empty_archive(self):
        """An empty archive gives an empty, complete page with count 0."""
        page = self.query()
        self.assertEqual((page.items, page.count, page.first_index, page.complete),
                         ([], 0, None, True))

    # -- paging ------------------------------------------------------------------------

    def test_everything_in_order(self):
        """Entries come back in ts order whatever order they were written in."""
        self.append(entry("alice", 3), entry("alice", 1), entry("alice", 2))
        page = self.query()
        self.assertEqual(ids(page), ["alice-1", "alice-2", "alice-3"])
        self.assertEqual([i.ts for i in page.items], [SECOND, 2 * SECOND, 3 * SECOND])
        self.assertIn("<body>message 1</body>", page.items[0].stanza)
        self.assertEqual((page.count, page.first_index, page.complete), (3, 0, True))

    def test_forward_paging(self):
        """max limits the page, after continues it; complete only on the last page."""
        self.fill(n=5)
        first = self.query(max=2)
        self.assertEqual((ids(first), first.count, first.first_index, first.complete),
                         (["alice-1", "alice-2"], 5, 0, False))
        second = self.query(max=2, after=aid("alice-2"))
        self.assertEqual((ids(second), second.first_index, second.complete),
                         (["alice-3", "alice-4"], 2, False))
        last = self.query(max=2, after=aid("alice-4"))
        self.assertEqual((ids(last), last.first_index, last.complete), (["alice-5"], 4, True))
        beyond = self.query(max=2, after=aid("alice-5"))
        self.assertEqual((ids(beyond), beyond.count, beyond.complete), ([], 5, True))

    def test_exactly_full_page_is_complete(self):
        """A page holding exactly the remaining items is complete."""
        self.fill(n=4)
        page = self.query(max=2, after=aid("alice-2"))
        self.assertEqual((ids(page), page.complete), (["alice-3", "alice-4"], True))

    def test_backward_paging(self):
        """An empty before gives the last page; before an id pages back, in order."""
        self.fill(n=5)
        last = self.query(max=2, before="")
        self.assertEqual((ids(last), last.first_index, last.complete),
                         (["alice-4", "alice-5"], 3, False))
        previous = self.query(max=2, before=aid("alice-4"))
        self.assertEqual((ids(previous), previous.first_index, previous.complete),
                         (["alice-2", "alice-3"], 1, False))
        first = self.query(max=2, before=aid("alice-2"))
        self.assertEqual((ids(first), first.first_index, first.complete), (["alice-1"], 0, True))

    def test_newest_first_default_page(self):
        """newest_first makes the default page the newest items, still in order."""
        self.fill(n=5)
        page = self.query(max=2, newest_first=True)
        self.assertEqual((ids(page), page.first_index), (["alice-4", "alice-5"], 3))
        older = self.query(max=2, newest_first=True, before=aid("alice-4"))
        self.assertEqual(ids(older), ["alice-2", "alice-3"])

    def test_index(self):
        """A page can start at an index; beyond the end it is empty."""
        self.fill(n=5)
        page = self.query(max=2, index=3)
        self.assertEqual((ids(page), page.first_index, page.complete),
                         (["alice-4", "alice-5"], 3, True))
        self.assertEqual(ids(self.query(max=2, index=7)), [])

    def test_count_only(self):
        """max=0 returns no items but the count; complete only when there is nothing."""
        self.fill(n=3)
        page = self.query(max=0)
        self.assertEqual((page.items, page.count, page.complete), ([], 3, False))

    def test_unknown_rsm_ids(self):
        """An after or before id that is not in the archive is UnknownArchiveId."""
        self.fill(n=2)
        self.assertUnknown(after="nope")
        self.assertUnknown(before="nope")

    # -- filters -----------------------------------------------------------------------

    def test_with_bare_and_full(self):
        """A bare 'with' matches every resource, a full one only its resource."""
        self.append(entry("alice", 1, resource="phone"), entry("alice", 2, resource="laptop"),
                    entry("alice", 3, with_bare="carol@localhost", resource=""))
        self.assertEqual(ids(self.query(ArchiveFilter(with_bare="bob@localhost"))),
                         ["alice-1", "alice-2"])
        self.assertEqual(ids(self.query(ArchiveFilter(with_bare="bob@localhost",
                                                      with_resource="laptop"))), ["alice-2"])
        self.assertEqual(ids(self.query(ArchiveFilter(with_bare="carol@localhost"))), ["alice-3"])

    def test_start_and_end_inclusive(self):
        """start and end include messages exactly at their time."""
        self.fill(n=5)
        page = self.query(ArchiveFilter(start=2 * SECOND, end=4 * SECOND))
        self.assertEqual((ids(page), page.count), (["alice-2", "alice-3", "alice-4"], 3))
        self.assertEqual(ids(self.query(ArchiveFilter(start=6 * SECOND))), [])
        self.assertEqual(ids(self.query(ArchiveFilter(start=4 * SECOND, end=2 * SECOND))), [])

    def test_after_and_before_id_exclusive(self):
        """after-id and before-id exclude the named messages and set the result set."""
        self.fill(n=5)
        page = self.query(ArchiveFilter(after_id=aid("alice-1"), before_id=aid("alice-5")), max=2)
        self.assertEqual((ids(page), page.count, page.first_index), (["alice-2", "alice-3"], 3, 0))
        self.assertEqual(ids(self.query(ArchiveFilter(after_id=aid("alice-5")))), [])

    def test_unknown_filter_ids(self):
        """An unknown after-id, before-id or one of ids is UnknownArchiveId."""
        self.fill(n=2)
        self.assertUnknown(ArchiveFilter(after_id="nope"))
        self.assertUnknown(ArchiveFilter(before_id="nope"))
        self.assertUnknown(ArchiveFilter(ids=(aid("alice-1"), "nope")))

    def test_ids(self):
        """ids selects exactly those messages, in archive order."""
        self.fill(n=5)
        page = self.query(ArchiveFilter(ids=(aid("alice-4"), aid("alice-2"))))
        self.assertEqual((ids(page), page.count), (["alice-2", "alice-4"], 2))

    def test_archives_are_separate(self):
        """One owner's ids are unknown in another's archive and never returned."""
        self.fill("alice", n=2)
        self.fill("bob", n=3)
        self.assertEqual(self.query(user="bob").count, 3)
        self.assertEqual(ids(self.query()), ["alice-1", "alice-2"])
        self.assertUnknown(after=aid("bob-1"))

    # -- full-text search ----------------------------------------------------------------

    def fill_texts(self):
        texts = ["Meet at the Café tomorrow", "Holiday plans for August", "send me an e-mail",
                 "the cafe was closed", "holidays are over", "call me"]
        self.append(*(entry("alice", i, body=text, resource=f"r{i % 2}")
                      for i, text in enumerate(texts, start=1)))

    def test_fulltext_folds_case_and_diacritics(self):
        """A search ignores case and diacritics in both directions."""
        self.fill_texts()
        self.assertEqual(ids(self.search("CAFE")), ["alice-1", "alice-4"])
        self.assertEqual(ids(self.search("café")), ["alice-1", "alice-4"])

    def test_fulltext_prefix_phrase_and(self):
        """word* is a prefix, e-mail a phrase, several words must all match."""
        self.fill_texts()
        self.assertEqual(ids(self.search("holi*")), ["alice-2", "alice-5"])
        self.assertEqual(ids(self.search("holiday")), ["alice-2"])
        self.assertEqual(ids(self.search("e-mail")), ["alice-3"])
        self.assertEqual(ids(self.search("me call")), ["alice-6"])
        self.assertEqual(ids(self.search("zebra")), [])

    def test_fulltext_combines_with_filters(self):
        """A search is combined with with, start and end."""
        self.fill_texts()
        self.assertEqual(ids(self.search("cafe", start=2 * SECOND)), ["alice-4"])
        self.assertEqual(ids(self.search("cafe", end=2 * SECOND)), ["alice-1"])
        self.assertEqual(ids(self.search("holi*", with_bare="bob@localhost",
                                         with_resource="r1")), ["alice-5"])

    def test_fulltext_only_own_archive(self):
        """A search never finds another owner's messages, and matches bodies only (not, say,
        the owner's name)."""
        self.append(entry("bob", 1, body="secret word"), entry("alice", 2, body="alice wrote"),
                    entry("alice", 3, body="nothing"))
        self.assertEqual(ids(self.search("secret")), [])
        self.assertEqual(ids(self.search("alice")), ["alice-2"])

    # -- metadata, clock seed ----------------------------------------------------------

    def test_metadata(self):
        """metadata gives the first and last items, or (None, None) when empty."""
        self.assertEqual(result_of(self.store.metadata(HOST, "alice")), (None, None))
        self.fill(n=3)
        first, last = result_of(self.store.metadata(HOST, "alice"))
        self.assertEqual((first.id, first.ts, last.id, last.ts),
                         (aid("alice-1"), SECOND, aid("alice-3"), 3 * SECOND))

    def test_last_timestamp(self):
        """last_timestamp is the newest ts in any archive."""
        self.assertIsNone(result_of(self.store.last_timestamp()))
        self.fill("alice", n=2)
        self.fill("bob", n=4)
        self.assertEqual(result_of(self.store.last_timestamp()), 4 * SECOND)

    # -- deletion and retention ----------------------------------------------------------

    def test_delete_archive(self):
        """delete_archive removes the owner's messages (and search index) and prefs only."""
        self.fill("alice", n=3, body="findable")
        self.fill("bob", n=2)
        result_of(self.store.save_prefs(HOST, "alice", Prefs("never")))
        self.in_transaction(lambda txn: self.store.delete_archive(txn, HOST, "alice"))
        self.assertEqual(self.query().count, 0)
        self.assertEqual(ids(self.search("findable")), [])
        self.assertEqual(self.query(user="bob").count, 2)
        self.assertEqual(result_of(self.store.load_prefs()), {})

    def test_expire_by_age(self):
        """expire deletes what is older than the cutoff, oldest first, in batches (entries
        written in time order, as the archive clock makes them)."""
        self.append(*sorted([entry("alice", i) for i in range(1, 6)]
                            + [entry("bob", i) for i in range(1, 3)], key=lambda e: e.ts))
        deleted = result_of(self.store.expire(3 * SECOND, None, 2))
        self.assertEqual(deleted, 4)
        self.assertEqual(ids(self.query()), ["alice-3", "alice-4", "alice-5"])
        self.assertEqual(self.query(user="bob").count, 0)

    def test_expire_by_quota(self):
        """expire keeps the newest keep_per_user messages of each archive."""
        self.fill("alice", n=5, body="quota word")
        self.fill("bob", n=2)
        deleted = result_of(self.store.expire(None, 2, 2))
        self.assertEqual(deleted, 3)
        self.assertEqual(ids(self.query()), ["alice-4", "alice-5"])
        self.assertEqual(ids(self.search("quota")), ["alice-4", "alice-5"])
        self.assertEqual(self.query(user="bob").count, 2)

    def test_include_groupchat(self):
        """Entries written as groupchat are left out when the filter excludes them."""
        self.fill(n=3)
        self.append(entry("alice", 4)._replace(groupchat=True))
        self.assertEqual(self.query().count, 4)
        self.assertEqual(ids(self.query(ArchiveFilter(include_groupchat=False))),
                         ["alice-1", "alice-2", "alice-3"])
        self.assertEqual(self.search("message", include_groupchat=False).count, 3)

    # -- preferences ----------------------------------------------------------------------

    def test_prefs_round_trip(self):
        """Saved preferences load back; saving again replaces them."""
        prefs = Prefs("roster", frozenset({"bob@localhost"}), frozenset({"eve@evil.example/x"}))
        result_of(self.store.save_prefs(HOST, "alice", prefs))
        result_of(self.store.save_prefs(HOST, "carol", Prefs("always")))
        result_of(self.store.save_prefs(HOST, "carol", Prefs("never")))
        self.assertEqual(result_of(self.store.load_prefs()),
                         {(HOST, "alice"): prefs, (HOST, "carol"): Prefs("never")})


class MemoryStoreTests(ArchiveStoreContract, unittest.TestCase):
    def make_store(self):
        return MemoryArchiveStore()

    def in_transaction(self, fn):
        fn(None)


class SQLStoreTests(ArchiveStoreContract, unittest.TestCase):
    def make_store(self):
        self.database = Database(SQLiteEngine(":memory:"), synchronous=True)
        self.addCleanup(self.database.close)
        return SQLArchiveStore(self.database)

    def in_transaction(self, fn):
        result_of(self.database.runInteraction("test", fn))

    def test_setup_is_idempotent(self):
        """A second setup (a restart) changes nothing and keeps the data."""
        self.fill(n=2)
        result_of(SQLArchiveStore(self.database).setup())
        self.assertEqual(self.query().count, 2)

    # -- the SQL layout: texts shared between archives -------------------------------------

    def table_count(self, table):
        counted = []
        self.in_transaction(
            lambda txn: counted.append(txn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]))
        return counted[0]

    def indexed(self, word):
        """Texts the full-text index finds for a word, whoever's."""
        found = []
        self.in_transaction(lambda txn: found.extend(txn.execute(
            "SELECT rowid FROM mam_search WHERE mam_search MATCH ?", (word,)).fetchall()))
        return len(found)

    def test_one_text_for_both_archives(self):
        """Entries written together with the same ts and stanza (both archives of one
        message) share one text row and one index entry; the text goes with the last."""
        self.append(entry("alice", 1, body="shared word"), entry("bob", 1, body="shared word",
                                                                  with_bare="alice@localhost"))
        self.assertEqual((self.table_count("mam_texts"), self.table_count("mam_entries")), (1, 2))
        self.assertEqual(self.indexed("shared"), 1)
        self.in_transaction(lambda txn: self.store.delete_archive(txn, HOST, "alice"))
        self.assertEqual(self.query().count, 0)
        self.assertEqual(ids(self.search("shared", user="bob")), ["bob-1"])
        self.assertEqual(self.table_count("mam_texts"), 1)
        self.in_transaction(lambda txn: self.store.delete_archive(txn, HOST, "bob"))
        for table in ("mam_texts", "mam_entries", "mam_archives", "mam_conversations"):
            self.assertEqual(self.table_count(table), 0, table)
        self.assertEqual(self.indexed("shared"), 0)

    def test_quota_keeps_the_other_archives_copy(self):
        """Trimming one archive to its quota leaves a shared text to the other archive."""
        self.append(entry("alice", 1, body="first"), entry("bob", 1, body="first"))
        self.append(entry("alice", 2, body="second"))
        self.assertEqual(result_of(self.store.expire(None, 1, 10)), 1)
        self.assertEqual(ids(self.query()), ["alice-2"])
        self.assertEqual(ids(self.search("first", user="bob")), ["bob-1"])
        self.assertEqual(self.search("first").count, 0)

    def test_same_ts_other_stanza_is_another_text(self):
        """Sharing needs the same ts and the same stanza: different text, different row."""
        self.append(entry("alice", 1, body="one"), entry("bob", 1, body="two"))
        self.assertEqual(self.table_count("mam_texts"), 2)
        self.assertEqual(ids(self.search("two", user="bob")), ["bob-1"])
        self.assertEqual(self.search("two").count, 0)

    def test_account_deleted_by_another_process(self):
        """Another process (summitctl) deletes the archive and the name registers again:
        account_created forgets the cached id, so the new archive survives a restart."""
        self.fill(n=1)
        other_process = SQLArchiveStore(self.database)
        self.in_transaction(lambda txn: other_process.delete_archive(txn, HOST, "alice"))
        result_of(self.store.account_created(HOST, "alice"))
        self.append(entry("alice", 2))
        restarted = SQLArchiveStore(self.database)
        page = result_of(restarted.query(HOST, "alice", ArchiveFilter(), PageRequest(max=10)))
        self.assertEqual(ids(page), ["alice-2"])

    def test_last_timestamp_looks_at_the_latest_texts(self):
        """The newest ts comes from the latest texts, also when an older one came last."""
        self.patch(sql_store, "RECENT_TEXTS", 2)
        self.fill("alice", n=3)
        self.append(entry("bob", 1))                 # a retried batch: older ts, newer seq
        self.assertEqual(result_of(self.store.last_timestamp()), 3 * SECOND)

    def test_upgrade_from_first_layout(self):
        """A database of the first layout (one row per entry, versions 1 and 2) upgrades:
        the same ids, the same results, searchable, the old tables gone."""
        database = Database(SQLiteEngine(":memory:"), synchronous=True)
        self.addCleanup(database.close)
        result_of(apply_migrations(database, "mam", (sql_store._V1_TABLES,
                                                     sql_store._V2_SQLITE_FTS)))
        old = [entry("alice", n, body=f"old message {n}") for n in (1, 2, 3)]
        channel = entry("alice", 5, with_bare="room@mix.localhost", body="from a channel")
        old.append(channel._replace(stanza=channel.stanza.replace(
            "<message ", "<message type='groupchat' ")))

        def write_old(txn):
            for e in old:
                txn.execute("INSERT INTO mam_messages (host, username, id, ts, with_bare,"
                            " with_resource, stanza, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (e.host, e.user, e.id, e.ts, e.with_bare, e.with_resource, e.stanza,
                             e.body))

        result_of(database.runInteraction("old rows", write_old))
        self.patch(sql_store, "_convert_v2_rows",
                   lambda index, convert=sql_store._convert_v2_rows: convert(index, chunk=3))
        self.store = SQLArchiveStore(database)
        self.database = database
        result_of(self.store.setup())
        self.assertEqual(ids(self.query()), ["alice-1", "alice-2", "alice-3", "alice-5"])
        self.assertEqual(ids(self.query(ArchiveFilter(include_groupchat=False))),
                         ["alice-1", "alice-2", "alice-3"])
        self.assertEqual(ids(self.search("old 2")), ["alice-2"])
        self.assertEqual(ids(self.query(ArchiveFilter(with_bare="bob@localhost"))),
                         ["alice-1", "alice-2", "alice-3"])
        tables = []
        self.in_transaction(lambda txn: tables.extend(row[0] for row in txn.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'mam_messages%'"
            " OR name LIKE 'mam_fts%'").fetchall()))
        self.assertEqual(tables, [])
        self.append(entry("alice", 6))
        self.assertEqual(self.query().count, 5)
