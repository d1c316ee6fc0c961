"""The channel store contract (summitd.plugins.channels.store.IChannelStore), run on both
backends: the in-memory reference store and the SQL store on SQLite."""

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from summitd.plugins.channels.memory import MemoryChannelStore
from summitd.plugins.channels.model import ChannelConfig, Member, Subject
from summitd.plugins.channels.sql import SQLChannelStore
from summitd.plugins.channels.store import ChannelExists, ChannelRecord, IChannelStore, Retraction
from summitd.storage.database import Database
from summitd.storage.engines import SQLiteEngine
from summitd.testing import result_of

HOST = "localhost"
ALICE, BOB = "alice@localhost", "bob@example.org"


def record(channel="coven", **config):
    return ChannelRecord(HOST, channel, ChannelConfig(**config), None, 1_000_000)


class ChannelStoreContract:
    """The tests; subclasses provide make_store() and in_transaction(fn)."""

    def setUp(self):
        self.store = self.make_store()
        result_of(self.store.setup())

    def loaded(self):
        """{name: (record, {jid: member})} of what load_all returns."""
        return {r.name: (r, {m.jid: m for m in members}) for r, members in result_of(self.store.load_all())}

    def test_provides_interface(self):
        """The store provides IChannelStore."""
        self.assertTrue(verifyObject(IChannelStore, self.store))

    def test_empty(self):
        """A new store holds no channel."""
        self.assertEqual(result_of(self.store.load_all()), [])

    def test_create_and_load(self):
        """A created channel comes back with its configuration, no subject and no members."""
        result_of(self.store.create(record(name="Witches", contact=(ALICE,), max_users=5)))
        found, members = self.loaded()["coven"]
        self.assertEqual(found.config, ChannelConfig(name="Witches", contact=(ALICE,), max_users=5))
        self.assertEqual((found.subject, found.created, members), (None, 1_000_000, {}))

    def test_create_twice_conflicts(self):
        """Creating a name twice fails with ChannelExists; the first stays."""
        result_of(self.store.create(record(name="first")))
        self.failureResultOf(self.store.create(record(name="second")), ChannelExists)
        self.assertEqual(self.loaded()["coven"][0].config.name, "first")

    def test_same_name_other_host(self):
        """Names are per host."""
        result_of(self.store.create(record()))
        result_of(self.store.create(ChannelRecord("example.org", "coven")))
        self.assertEqual(len(result_of(self.store.load_all())), 2)

    def test_update_config_and_subject(self):
        """update replaces the configuration and the subject."""
        result_of(self.store.create(record()))
        subject = Subject("Brewing", "hecate", ALICE, 42)
        result_of(self.store.update(ChannelRecord(HOST, "coven", ChannelConfig(members_only=True), subject, 1)))
        found = self.loaded()["coven"][0]
        self.assertEqual((found.config.members_only, found.subject), (True, subject))
        self.assertEqual(found.created, 1_000_000)

    def test_members(self):
        """set_member stores, replaces and (when nothing is left to keep) deletes a member."""
        result_of(self.store.create(record()))
        result_of(self.store.set_member(HOST, "coven", Member(ALICE, "owner")))
        result_of(self.store.set_member(HOST, "coven", Member(BOB, "none", "bobby", True)))
        members = self.loaded()["coven"][1]
        self.assertEqual(members, {ALICE: Member(ALICE, "owner"), BOB: Member(BOB, "none", "bobby", True)})
        result_of(self.store.set_member(HOST, "coven", Member(BOB, "member", "bob")))
        self.assertEqual(self.loaded()["coven"][1][BOB], Member(BOB, "member", "bob", False))
        result_of(self.store.set_member(HOST, "coven", Member(BOB)))
        self.assertNotIn(BOB, self.loaded()["coven"][1])

    def test_member_of_missing_channel_is_ignored(self):
        """A member of a channel that does not exist is not stored."""
        result_of(self.store.set_member(HOST, "nowhere", Member(ALICE, "owner")))
        self.assertEqual(result_of(self.store.load_all()), [])

    def test_delete(self):
        """delete removes the channel, its members and its tombstones; a re-created channel
        starts empty."""
        result_of(self.store.create(record()))
        result_of(self.store.set_member(HOST, "coven", Member(ALICE, "owner")))
        result_of(self.store.retract(HOST, "coven", Retraction("id1")))
        result_of(self.store.delete(HOST, "coven"))
        self.assertEqual(result_of(self.store.load_all()), [])
        result_of(self.store.create(record()))
        self.assertEqual(self.loaded()["coven"][1], {})
        self.assertEqual(result_of(self.store.retractions(HOST, "coven", ["id1"])), {})

    def test_retractions(self):
        """retractions returns the tombstones of the ids asked that have one."""
        result_of(self.store.create(record()))
        first = Retraction("id1", "hecate", ALICE, "spam", 7, True)
        result_of(self.store.retract(HOST, "coven", first))
        result_of(self.store.retract(HOST, "coven", Retraction("id2", "bob", BOB, "", 8, False)))
        found = result_of(self.store.retractions(HOST, "coven", ["id1", "id3"]))
        self.assertEqual(found, {"id1": first})
        many = result_of(self.store.retractions(HOST, "coven", [f"x{i}" for i in range(450)] + ["id2"]))
        self.assertEqual(list(many), ["id2"])

    def test_delete_account(self):
        """delete_account removes the JID's memberships in every channel, nobody else's."""
        for name in ("one", "two"):
            result_of(self.store.create(record(name)))
            result_of(self.store.set_member(HOST, name, Member(ALICE, "owner")))
            result_of(self.store.set_member(HOST, name, Member(BOB, "member")))
        self.in_transaction(lambda txn: self.store.delete_account(txn, BOB))
        loaded = self.loaded()
        self.assertEqual({name: set(loaded[name][1]) for name in loaded}, {"one": {ALICE}, "two": {ALICE}})

    def test_config_round_trip_of_every_field(self):
        """Every configuration field survives storage, tuples included."""
        config = ChannelConfig(
            name="n", description="d", contact=(ALICE, BOB), persistent=True, public=False,
            members_only=True, moderated=True, password="pw", whois="anyone", max_users=9,
            change_subject=True, allow_invites=True, allow_pm="none", archive=False,
            mandatory_nicks=False, open_presence=True, messages_subscription="anyone",
            info_rights="owners", user_retraction=True, admin_retraction="admins", last_change_by=ALICE)
        result_of(self.store.create(ChannelRecord(HOST, "coven", config)))
        self.assertEqual(self.loaded()["coven"][0].config, config)


class MemoryChannelStoreTests(ChannelStoreContract, unittest.TestCase):
    def make_store(self):
        return MemoryChannelStore()

    def in_transaction(self, fn):
        fn(None)


class SQLChannelStoreTests(ChannelStoreContract, unittest.TestCase):
    def make_store(self):
        self.database = Database(SQLiteEngine(":memory:"), synchronous=True)
        self.addCleanup(self.database.close)
        return SQLChannelStore(self.database)

    def in_transaction(self, fn):
        result_of(self.database.runInteraction("test", fn))

    def test_setup_is_idempotent(self):
        """A second setup (a restart) keeps the data."""
        result_of(self.store.create(record()))
        result_of(SQLChannelStore(self.database).setup())
        self.assertEqual(len(result_of(self.store.load_all())), 1)

    def test_unknown_config_keys_are_ignored(self):
        """A configuration stored by a newer version (an unknown key) still loads."""
        result_of(self.store.create(record()))
        self.in_transaction(lambda txn: txn.execute(
            "UPDATE channels SET config = ? WHERE name = 'coven'", ('{"name": "x", "future": 1}',)))
        self.assertEqual(self.loaded()["coven"][0].config, ChannelConfig(name="x"))
