"""The pubsub store contract (summitd.plugins.pubsub.store.IPubSubStore): one suite, run on
the memory reference backend and on the SQL backend (SQLite in memory), plus the shared
item selection (``select``) both use."""

from twisted.internet import task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from summitd.core.jid import parse_jid
from summitd.core.rsm import RSMRequest
from summitd.plugins.pubsub.memory import MemoryStore
from summitd.plugins.pubsub.sql import SQLStore
from summitd.plugins.pubsub.store import (
    IPubSubStore, Item, ItemNotFound, ItemQuery, Node, Subscription, select)
from summitd.storage.database import Database
from summitd.storage.engines import SQLiteEngine
from summitd.synchronous import result_of

ALICE = "alice@localhost"
BOB = "bob@localhost"
CONFIG = {"pubsub#max_items": 10, "pubsub#title": "t\u00efte"}


def item(item_id, text="x", publisher=ALICE):
    return Item(item_id, f"<p xmlns='urn:test'>{text}</p>", publisher)


class StoreContract:
    """What every IPubSubStore does; ``make_store()`` gives a fresh, set-up store."""

    def setUp(self):
        self.store = self.make_store()
        result_of(self.store.setup())

    def done(self, d):
        return result_of(d)

    def make_node(self, service=ALICE, name="n", affiliations=None):
        node = Node(name, dict(CONFIG), affiliations or {ALICE: "owner"})
        self.done(self.store.create_node(service, node))
        return node

    def publish(self, *ids, keep=10, service=ALICE, name="n"):
        dropped = []
        for item_id in ids:
            dropped += self.done(self.store.publish(service, name, item(item_id), keep))
        return dropped

    def ids(self, query=ItemQuery(), service=ALICE, name="n"):
        return [i.id for i in self.done(self.store.items(service, name, query)).items]

    def test_provides_the_interface(self):
        """The backend provides IPubSubStore."""
        self.assertTrue(verifyObject(IPubSubStore, self.store))

    def test_load_of_an_unknown_service_is_empty(self):
        """A service nobody used has no nodes."""
        self.assertEqual(self.done(self.store.load("nobody@localhost")), {})

    def test_created_node_loads_with_config_and_affiliations(self):
        """A created node comes back with its configuration (unicode kept) and affiliations."""
        self.make_node(affiliations={ALICE: "owner", BOB: "publisher"})
        nodes = self.done(self.store.load(ALICE))
        self.assertEqual(list(nodes), ["n"])
        self.assertEqual(nodes["n"].config, CONFIG)
        self.assertEqual(nodes["n"].affiliations, {ALICE: "owner", BOB: "publisher"})
        self.assertEqual(nodes["n"].subscriptions, {})

    def test_loaded_values_are_copies(self):
        """Changing what load returned does not change the store."""
        self.make_node()
        self.done(self.store.load(ALICE))["n"].config["pubsub#title"] = "changed"
        self.assertEqual(self.done(self.store.load(ALICE))["n"].config["pubsub#title"], "t\u00efte")

    def test_update_config(self):
        """update_config replaces the configuration."""
        self.make_node()
        self.done(self.store.update_config(ALICE, "n", {"pubsub#max_items": "max"}))
        self.assertEqual(self.done(self.store.load(ALICE))["n"].config, {"pubsub#max_items": "max"})

    def test_affiliations_set_and_removed(self):
        """set_affiliation adds, replaces, and with None removes."""
        self.make_node()
        self.done(self.store.set_affiliation(ALICE, "n", BOB, "member"))
        self.done(self.store.set_affiliation(ALICE, "n", BOB, "outcast"))
        self.assertEqual(self.done(self.store.load(ALICE))["n"].affiliations[BOB], "outcast")
        self.done(self.store.set_affiliation(ALICE, "n", BOB, None))
        self.assertNotIn(BOB, self.done(self.store.load(ALICE))["n"].affiliations)

    def test_subscriptions_set_replaced_and_deleted(self):
        """Subscriptions are keyed by (jid, subid): set replaces state and options."""
        self.make_node()
        self.done(self.store.set_subscription(ALICE, "n", Subscription(BOB + "/r", "s1", "pending")))
        self.done(self.store.set_subscription(ALICE, "n", Subscription(BOB + "/r", "s1", "subscribed",
                                                                      {"pubsub#deliver": False})))
        self.done(self.store.set_subscription(ALICE, "n", Subscription(BOB, "s2")))
        subscriptions = self.done(self.store.load(ALICE))["n"].subscriptions
        self.assertEqual(sorted(subscriptions), [(BOB, "s2"), (BOB + "/r", "s1")])
        self.assertEqual(subscriptions[BOB + "/r", "s1"].state, "subscribed")
        self.assertEqual(subscriptions[BOB + "/r", "s1"].options, {"pubsub#deliver": False})
        self.done(self.store.delete_subscription(ALICE, "n", BOB + "/r", "s1"))
        self.assertEqual(list(self.done(self.store.load(ALICE))["n"].subscriptions), [(BOB, "s2")])

    def test_items_in_publication_order_and_republish_moves_to_newest(self):
        """Items come oldest first; publishing an existing id replaces it as the newest."""
        self.make_node()
        self.publish("a", "b", "c")
        self.done(self.store.publish(ALICE, "n", item("a", "new"), 10))
        page = self.done(self.store.items(ALICE, "n", ItemQuery()))
        self.assertEqual([i.id for i in page.items], ["b", "c", "a"])
        self.assertEqual(page.items[-1].payload, "<p xmlns='urn:test'>new</p>")
        self.assertEqual(page.items[-1].publisher, ALICE)
        self.assertEqual((page.count, page.truncated), (3, False))

    def test_publish_drops_the_oldest_beyond_keep(self):
        """Publishing keeps the newest ``keep`` items and reports the dropped ids, oldest first."""
        self.make_node()
        self.assertEqual(self.publish("a", "b", "c", keep=3), [])
        self.assertEqual(self.publish("d", keep=2), ["a", "b"])
        self.assertEqual(self.ids(), ["c", "d"])

    def test_retract_reports_what_existed(self):
        """retract deletes the named items and fires with those that existed."""
        self.make_node()
        self.publish("a", "b")
        self.assertEqual(self.done(self.store.retract(ALICE, "n", ["b", "zz"])), ["b"])
        self.assertEqual(self.ids(), ["a"])

    def test_purge(self):
        """purge deletes every item and keeps the node."""
        self.make_node()
        self.publish("a", "b")
        self.done(self.store.purge(ALICE, "n"))
        self.assertEqual(self.ids(), [])
        self.assertIn("n", self.done(self.store.load(ALICE)))

    def test_items_by_id_and_newest(self):
        """Items by id come in node order; ``last`` gives the newest N, oldest first."""
        self.make_node()
        self.publish("a", "b", "c", "d")
        self.assertEqual(self.ids(ItemQuery(ids=("d", "b", "zz"))), ["b", "d"])
        self.assertEqual(self.ids(ItemQuery(last=2)), ["c", "d"])
        self.assertEqual(self.ids(ItemQuery(last=9)), ["a", "b", "c", "d"])

    def test_rsm_pages(self):
        """RSM: max from the start, after, before, the last page (empty before) and index;
        the page says where it starts and how many there are."""
        self.make_node()
        self.publish("a", "b", "c", "d", "e")
        page = self.done(self.store.items(ALICE, "n", ItemQuery(rsm=RSMRequest(max=2))))
        self.assertEqual(([i.id for i in page.items], page.first_index, page.count, page.truncated),
                         (["a", "b"], 0, 5, True))
        self.assertEqual(self.ids(ItemQuery(rsm=RSMRequest(max=2, after="b"))), ["c", "d"])
        self.assertEqual(self.ids(ItemQuery(rsm=RSMRequest(max=2, before="d"))), ["b", "c"])
        self.assertEqual(self.ids(ItemQuery(rsm=RSMRequest(max=2, before=""))), ["d", "e"])
        self.assertEqual(self.ids(ItemQuery(rsm=RSMRequest(max=3, index=3))), ["d", "e"])
        self.assertEqual(self.ids(ItemQuery(rsm=RSMRequest(max=0))), [])

    def test_rsm_unknown_anchor(self):
        """An RSM page after an item the node does not hold fails with ItemNotFound."""
        self.make_node()
        self.publish("a")
        self.assertRaises(ItemNotFound, self.done, self.store.items(ALICE, "n", ItemQuery(rsm=RSMRequest(after="x"))))

    def test_limit_truncates(self):
        """Without RSM, a retrieval returns at most ``limit`` items and says it was truncated."""
        self.make_node()
        self.publish("a", "b", "c")
        page = self.done(self.store.items(ALICE, "n", ItemQuery(limit=2)))
        self.assertEqual(([i.id for i in page.items], page.truncated, page.count), (["a", "b"], True, 3))

    def test_items_of_a_missing_node(self):
        """A node that does not exist holds no items."""
        self.assertEqual(self.ids(name="missing"), [])

    def test_delete_node_takes_everything(self):
        """delete_node removes the node, its items and subscriptions; others stay."""
        self.make_node()
        self.make_node(name="other")
        self.publish("a")
        self.done(self.store.set_subscription(ALICE, "n", Subscription(BOB, "s")))
        self.done(self.store.delete_node(ALICE, "n"))
        self.assertEqual(list(self.done(self.store.load(ALICE))), ["other"])
        self.make_node()
        self.assertEqual(self.ids(), [])
        self.assertEqual(self.done(self.store.load(ALICE))["n"].subscriptions, {})

    def test_services_are_separate(self):
        """The same node name at two services holds two sets of items."""
        self.make_node()
        self.make_node(service="pubsub.localhost")
        self.publish("a")
        self.publish("b", service="pubsub.localhost")
        self.assertEqual(self.ids(), ["a"])
        self.assertEqual(self.ids(service="pubsub.localhost"), ["b"])

    def test_delete_account(self):
        """delete_account removes the account's service and its subscriptions (bare and
        full JIDs) and affiliations everywhere, and nobody else's; items it published
        elsewhere stay, without its JID."""
        self.make_node(service=BOB, affiliations={BOB: "owner"})
        self.make_node(service="pubsub.localhost", affiliations={BOB: "owner", ALICE: "publisher"})
        for jid in (BOB, BOB + "/phone", "bobby@localhost"):
            self.done(self.store.set_subscription("pubsub.localhost", "n", Subscription(jid, "s")))
        self.done(self.store.publish("pubsub.localhost", "n", item("by-bob", publisher=BOB), 10))
        self.delete_account(BOB)
        self.assertEqual(self.done(self.store.load(BOB)), {})
        node = self.done(self.store.load("pubsub.localhost"))["n"]
        self.assertEqual(node.affiliations, {ALICE: "publisher"})
        self.assertEqual(list(node.subscriptions), [("bobby@localhost", "s")])
        [kept] = self.done(self.store.items("pubsub.localhost", "n", ItemQuery())).items
        self.assertEqual((kept.id, kept.publisher), ("by-bob", ""))


class MemoryStoreTests(StoreContract, unittest.TestCase):
    def make_store(self):
        return MemoryStore()

    def delete_account(self, jid):
        self.store.delete_account(None, parse_jid(jid))


class SQLStoreTests(StoreContract, unittest.TestCase):
    def make_store(self):
        self.database = Database(SQLiteEngine(":memory:"), task.Clock(), synchronous=True)
        return SQLStore(self.database)

    def delete_account(self, jid):
        result_of(self.database.runInteraction("delete", self.store.delete_account, parse_jid(jid)))

    def test_setup_twice(self):
        """Applying the migrations again (both extensions share the tables) changes nothing."""
        self.make_node()
        result_of(self.store.setup())
        self.assertEqual(list(self.done(self.store.load(ALICE))), ["n"])


class SelectTests(unittest.TestCase):
    """The item selection both backends share."""

    def test_ids_keep_node_order(self):
        """Requested ids come in node order, unknown ones left out, no page."""
        self.assertEqual(select(["a", "b", "c"], ItemQuery(ids=("c", "a", "x"))), (["a", "c"], 3, None, False))

    def test_before_empty_on_a_short_node(self):
        """The last page of a node smaller than the page is the whole node from index 0."""
        self.assertEqual(select(["a", "b"], ItemQuery(rsm=RSMRequest(max=5, before=""))), (["a", "b"], 2, 0, True))

    def test_limit_caps_rsm_max(self):
        """An RSM max above the limit is cut to the limit."""
        chosen, _, _, _ = select(list("abcdef"), ItemQuery(rsm=RSMRequest(max=100), limit=4))
        self.assertEqual(chosen, list("abcd"))
