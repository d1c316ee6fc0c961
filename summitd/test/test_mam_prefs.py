"""Archiving preferences (XEP-0441 in urn:xmpp:mam:2): the IQs and how they decide archiving,
'roster' with and without the roster extension."""

from twisted.trial import unittest

from summitd.plugins.mam.prefs import Prefs, build_prefs
from summitd.test.test_mam_helpers import MamHarness, child, error_condition, stanza_ids

PREFS = "<prefs xmlns='urn:xmpp:mam:2'{attrs}>{body}</prefs>"


def prefs_xml(default=None, always=(), never=()):
    attrs = f" default='{default}'" if default else ""
    body = ""
    for name, jids in (("always", always), ("never", never)):
        if jids:
            body += f"<{name}>" + "".join(f"<jid>{j}</jid>" for j in jids) + f"</{name}>"
    return PREFS.format(attrs=attrs, body=body)


class PrefsTestCase(MamHarness, unittest.TestCase):
    extensions = ("mam",)
    options = {}

    def setUp(self):
        self.start(self.extensions, **self.options)

    def set_prefs(self, client, **prefs):
        _, reply = self.send_iq(client, "set", prefs_xml(**prefs))
        return reply

    def get_prefs(self, client):
        _, reply = self.send_iq(client, "get", prefs_xml())
        prefs = child(reply, "prefs", "urn:xmpp:mam:2")
        lists = {name: [str(j) for j in child(prefs, name).elements()] for name in ("always", "never")}
        return prefs["default"], lists["always"], lists["never"]

    def archived_from(self, sender, receiver, body):
        """Send body; whether alice's archive got it and whether it was stamped."""
        received = self.chat(sender, "alice@localhost", body, receiver=receiver)
        return body in self.query(self.alice, max=50).bodies, bool(stanza_ids(received))


class PrefsProtocolTests(PrefsTestCase):
    def test_default_prefs(self):
        """Without preferences the server default is reported, with empty lists."""
        self.assertEqual(self.get_prefs(self.alice), ("always", [], []))

    def test_set_and_get(self):
        """Setting preferences answers with them (JIDs normalised) and they stick."""
        reply = self.set_prefs(self.alice, default="roster", always=["Bob@LocalHost"],
                               never=["eve@evil.example/x"])
        self.assertEqual(reply["type"], "result")
        self.assertEqual(child(reply, "prefs")["default"], "roster")
        self.assertEqual(self.get_prefs(self.alice),
                         ("roster", ["bob@localhost"], ["eve@evil.example/x"]))
        self.assertEqual(self.get_prefs(self.bob), ("always", [], []))

    def test_bad_prefs(self):
        """A missing or unknown default is bad-request; a bad JID jid-malformed; too many JIDs
        not-acceptable; nothing is changed."""
        self.assertEqual(error_condition(self.set_prefs(self.alice)), "bad-request")
        self.assertEqual(error_condition(self.set_prefs(self.alice, default="sometimes")), "bad-request")
        self.assertEqual(error_condition(self.set_prefs(self.alice, default="never", always=["@x"])),
                         "jid-malformed")
        many = [f"u{i}@localhost" for i in range(4)]
        self.assertEqual(error_condition(self.set_prefs(self.alice, default="never", never=many)),
                         "not-acceptable")
        self.assertEqual(self.get_prefs(self.alice), ("always", [], []))

    options = {"max_prefs_jids": 3}


class PrefsDecisionTests(PrefsTestCase):
    def setUp(self):
        super().setUp()
        self.carol = self.login("carol", "tablet")

    def test_never_default_with_always_list(self):
        """default never: nothing archived or stamped, except JIDs in 'always'."""
        self.set_prefs(self.alice, default="never", always=["bob@localhost"])
        self.assertEqual(self.archived_from(self.carol, self.alice, "from carol"), (False, False))
        self.assertEqual(self.archived_from(self.bob, self.alice, "from bob"), (True, True))

    def test_never_list_wins(self):
        """A JID in 'never' is not archived, even if also in 'always'; full JIDs match only that
        resource."""
        self.set_prefs(self.alice, default="always", always=["bob@localhost"],
                       never=["bob@localhost", "carol@localhost/other"])
        self.assertEqual(self.archived_from(self.bob, self.alice, "from bob"), (False, False))
        self.assertEqual(self.archived_from(self.carol, self.alice, "from carol"), (True, True))

    def test_sender_prefs_apply_to_sent_messages(self):
        """The sender's own preferences decide the sender's archive."""
        self.set_prefs(self.bob, default="never")
        self.archived_from(self.bob, self.alice, "hello")
        self.assertEqual(self.query(self.bob).results, [])
        self.assertEqual(self.query(self.alice).bodies, ["hello"])

    def test_roster_without_roster_extension(self):
        """'roster' without the roster extension archives nobody (but the always list)."""
        self.set_prefs(self.alice, default="roster", always=["carol@localhost"])
        self.assertFalse(self.archived_from(self.bob, self.alice, "from bob")[0])
        self.assertTrue(self.archived_from(self.carol, self.alice, "from carol")[0])


class RosterPrefsTests(PrefsTestCase):
    extensions = ("mam", "roster")
    options = {"default_preference": "roster"}

    def test_roster_decides(self):
        """default 'roster' (the server default here): contacts on the roster are archived,
        strangers are not."""
        _, reply = self.send_iq(self.alice, "set", "<query xmlns='jabber:iq:roster'>"
                                "<item jid='bob@localhost'/></query>")
        self.assertEqual(reply["type"], "result")
        carol = self.login("carol", "tablet")
        self.assertEqual(self.archived_from(self.bob, self.alice, "from bob")[0], True)
        self.assertEqual(self.archived_from(carol, self.alice, "from carol")[0], False)
        self.assertEqual(self.get_prefs(self.alice)[0], "roster")


class BuildPrefsTests(unittest.TestCase):
    def test_lists_always_present(self):
        """The prefs element always has both lists, sorted."""
        element = build_prefs(Prefs("always", frozenset({"b@x", "a@x"})))
        self.assertEqual([c.name for c in element.elements()], ["always", "never"])
        self.assertEqual([str(j) for j in child(element, "always").elements()], ["a@x", "b@x"])
