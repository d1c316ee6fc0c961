"""What the server stores for an account: private XML (XEP-0049) and vcard-temp (XEP-0054),
their access rules, size limits and deletion with the account."""

from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.plugins import private, vcard
from summitd.test.service_helpers import ServiceTestCase
from summitd.testing import result_of

NS_PRIVATE = "jabber:iq:private"
BOOKMARKS = "<storage xmlns='storage:bookmarks'><conference jid='room@muc.example' name='Room'/></storage>"
NOTES = "<notes xmlns='urn:example:notes'>remember the milk</notes>"
VCARD = "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>alice</NICKNAME></vCard>"


def private_query(*children):
    return f"<query xmlns='{NS_PRIVATE}'>{''.join(children)}</query>"


class StorageTestCase(ServiceTestCase):
    extensions = ("private", "vcard")
    options = {"private": {"max_size": 2048}, "vcard": {"max_size": 1024}}

    def setUp(self):
        super().setUp()
        self.alice = self.login("alice")
        self.bob = self.login("bob")

    def rows_of(self, user):
        """Every stored row naming ``user``: private XML and keyval (vCards)."""
        return result_of(self.server.database.runQuery(
            "SELECT 'private', namespace FROM private_xml WHERE username = ?"
            " UNION ALL SELECT store, key_name FROM keyval WHERE username = ?", (user, user)))


class PrivateStorageTests(StorageTestCase):
    def test_store_and_read(self):
        """A set stores every child of a namespace; a get of that namespace returns them."""
        second = "<storage xmlns='storage:bookmarks'><url url='https://example.org/'/></storage>"
        self.assertIsNone(self.assertResult(self.ask(self.alice, private_query(BOOKMARKS, second, NOTES),
                                                     type="set")))
        query = self.assertResult(self.ask(self.alice, private_query("<storage xmlns='storage:bookmarks'/>")))
        self.assertEqual([(c.uri, c.name) for c in query.elements()],
                         [("storage:bookmarks", "storage"), ("storage:bookmarks", "storage")])
        self.assertEqual(next(query.elements()).firstChildElement()["name"], "Room")
        notes = self.assertResult(self.ask(self.alice, private_query("<notes xmlns='urn:example:notes'/>")))
        self.assertEqual(str(notes.firstChildElement()), "remember the milk")

    def test_set_replaces_a_namespace(self):
        """A second set of a namespace replaces the first, and leaves others alone."""
        self.ask(self.alice, private_query(BOOKMARKS, NOTES), type="set")
        self.ask(self.alice, private_query("<storage xmlns='storage:bookmarks'/>"), type="set", iq_id="2")
        query = self.assertResult(self.ask(self.alice, private_query("<storage xmlns='storage:bookmarks'/>")))
        self.assertEqual(list(next(query.elements()).elements()), [])
        self.assertEqual(sorted(ns for _, ns in self.rows_of("alice")),
                         ["storage:bookmarks", "urn:example:notes"])

    def test_nothing_stored(self):
        """A namespace never stored comes back as the empty element asked for."""
        query = self.assertResult(self.ask(self.alice, private_query("<prefs xmlns='urn:example:prefs'/>")))
        self.assertEqual([(c.uri, c.name, list(c.elements())) for c in query.elements()],
                         [("urn:example:prefs", "prefs", [])])

    def test_only_the_owner(self):
        """Another account's storage is forbidden, to read and to write (§3); to one's own
        bare JID it works."""
        self.ask(self.alice, private_query(NOTES), type="set")
        self.assertStanzaError(self.ask(self.bob, private_query("<notes xmlns='urn:example:notes'/>"),
                                        to="alice@localhost"), "forbidden")
        self.assertStanzaError(self.ask(self.bob, private_query(NOTES), to="alice@localhost", type="set"),
                               "forbidden")
        self.assertResult(self.ask(self.alice, private_query("<notes xmlns='urn:example:notes'/>"),
                                   to="alice@localhost"))

    def test_reserved_namespaces(self):
        """jabber:*, http://jabber.org/*, vcard-temp and a child without a namespace of its
        own are refused with not-acceptable, for get and set."""
        for child in ("<query xmlns='jabber:iq:roster'/>", "<x xmlns='http://jabber.org/protocol/muc'/>",
                      "<vCard xmlns='vcard-temp'/>", "<mine/>"):
            for type in ("get", "set"):
                self.assertStanzaError(self.ask(self.alice, private_query(child), type=type), "not-acceptable")
        self.assertEqual(self.rows_of("alice"), [])

    def test_malformed_requests(self):
        """A get without a child or with two namespaces is bad-request (§3's "Bad Format");
        a set without a child is not-acceptable (§3)."""
        self.assertStanzaError(self.ask(self.alice, private_query()), "bad-request")
        self.assertStanzaError(self.ask(self.alice, private_query("<a xmlns='urn:a'/>", "<b xmlns='urn:b'/>")),
                               "bad-request")
        self.assertStanzaError(self.ask(self.alice, private_query(), type="set"), "not-acceptable")

    def test_size_limit(self):
        """An account stores at most max_size octets in all; replacing a namespace frees
        its old size; the refusal says the limit."""
        def blob(namespace, octets):
            return f"<blob xmlns='{namespace}'>{'x' * octets}</blob>"

        self.assertResult(self.ask(self.alice, private_query(blob("urn:a", 1000)), type="set"))
        self.assertResult(self.ask(self.alice, private_query(blob("urn:a", 1000)), type="set"))   # replaces
        self.assertResult(self.ask(self.alice, private_query(blob("urn:b", 900)), type="set"))
        text = self.assertStanzaError(self.ask(self.alice, private_query(blob("urn:c", 100)), type="set"),
                                      "not-acceptable")
        self.assertIn("2048", text)
        self.assertEqual(sorted(ns for _, ns in self.rows_of("alice")), ["urn:a", "urn:b"])

    def test_deleted_with_the_account(self):
        """Deleting alice deletes her private XML, not bob's."""
        self.ask(self.alice, private_query(NOTES), type="set")
        self.ask(self.bob, private_query(NOTES), type="set")
        result_of(self.server.account_manager.delete("alice@localhost"))
        self.assertEqual(self.rows_of("alice"), [])
        self.assertEqual(self.rows_of("bob"), [("private", "urn:example:notes")])


class VCardTests(StorageTestCase):
    def test_own_vcard(self):
        """Before any set, one's own vCard is empty (§3.1); after it, the stored one."""
        empty = self.assertResult(self.ask(self.alice, "<vCard xmlns='vcard-temp'/>"))
        self.assertEqual((empty.uri, empty.name, list(empty.elements())), ("vcard-temp", "vCard", []))
        self.assertIsNone(self.assertResult(self.ask(self.alice, VCARD, type="set")))
        stored = self.assertResult(self.ask(self.alice, "<vCard xmlns='vcard-temp'/>", to="alice@localhost"))
        self.assertEqual(str(next(stored.elements("vcard-temp", "FN"))), "Alice Liddell")

    def test_anothers_vcard(self):
        """Others read a vCard through the server, from the bare JID (§3.3)."""
        self.ask(self.alice, VCARD, type="set")
        reply = self.ask(self.bob, "<vCard xmlns='vcard-temp'/>", to="alice@localhost")
        self.assertEqual(reply["from"], "alice@localhost")
        self.assertEqual(str(next(self.assertResult(reply).elements("vcard-temp", "NICKNAME"))), "alice")

    def test_none_and_no_account_look_alike(self):
        """No vCard and no account both get service-unavailable (§3.3)."""
        for to in ("alice@localhost", "nobody@localhost"):
            reply = self.ask(self.bob, "<vCard xmlns='vcard-temp'/>", to=to)
            self.assertStanzaError(reply, "service-unavailable")

    def test_set_anothers_vcard(self):
        """Setting another account's vCard is forbidden (§3.2), and changes nothing."""
        self.assertStanzaError(self.ask(self.bob, VCARD, to="alice@localhost", type="set"), "forbidden")
        self.assertEqual(self.rows_of("alice"), [])

    def test_size_limit(self):
        """A vCard over max_size is refused with not-acceptable and the limit in the text;
        the stored one stays."""
        self.ask(self.alice, VCARD, type="set")
        big = f"<vCard xmlns='vcard-temp'><DESC>{'x' * 1024}</DESC></vCard>"
        text = self.assertStanzaError(self.ask(self.alice, big, type="set"), "not-acceptable")
        self.assertIn("1024", text)
        stored = self.assertResult(self.ask(self.alice, "<vCard xmlns='vcard-temp'/>"))
        self.assertEqual(str(next(stored.elements("vcard-temp", "FN"))), "Alice Liddell")

    def test_deleted_with_the_account(self):
        """Deleting alice deletes her vCard, not bob's."""
        self.ask(self.alice, VCARD, type="set")
        self.ask(self.bob, VCARD, type="set")
        result_of(self.server.account_manager.delete("alice@localhost"))
        self.assertEqual(self.rows_of("alice"), [])
        self.assertEqual(self.rows_of("bob"), [("vcard", "vcard")])


class StorageConfigTests(unittest.TestCase):
    """[extensions.private] and [extensions.vcard]: max_size, an integer of at least 1024."""

    def test_defaults(self):
        """128 KiB of private XML, 64 KiB per vCard."""
        self.assertEqual(private.parse_config({}, "extensions.private"), 128 * 1024)
        self.assertEqual(vcard.parse_config({}, "extensions.vcard"), 64 * 1024)

    def test_bad_options(self):
        """Too small, not an integer, or unknown: reported at the key."""
        for module, name in ((private, "private"), (vcard, "vcard")):
            for raw, bad in (({"max_size": 10}, "max_size"), ({"max_size": True}, "max_size"),
                             ({"max_size": "1k"}, "max_size"), ({"limit": 5}, "limit")):
                error = self.assertRaises(ConfigError, module.parse_config, raw, f"extensions.{name}")
                self.assertEqual([path for path, _ in error.errors], [f"extensions.{name}.{bad}"])
