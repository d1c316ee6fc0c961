"""MIX-PAM (summitd.plugins.channels.pam, XEP-0405) through a whole server: the account's
features, client-join errors, the annotated roster, delivery to every client, archiving for
clients that were offline, and what is refused."""

from twisted.trial import unittest

from summitd.test.test_mix import CHANNEL, CORE, MESSAGES, PAM, MixCase, messages
from summitd.test.test_muc import drain, error_of
from summitd.testing import parse_xml, result_of

ROSTER_MIX = "urn:xmpp:mix:roster:0"


class PamCase(MixCase):
    def setUp(self):
        super().setUp()
        self.alice = self.client("alice")
        self.create(self.alice)
        self.join(self.alice, "hecate")


class FeatureTests(PamCase, unittest.TestCase):
    extensions = MixCase.extensions + ("disco",)

    def test_features(self):
        """The account advertises urn:xmpp:mix:pam:2 and #archive (the archive is on), and
        that its archive holds groupchat messages (XEP-0313 §8)."""
        info = self.iq(self.alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get",
                       to="alice@localhost")
        features = {f["var"] for f in info.firstChildElement().elements() if f.name == "feature"}
        self.assertTrue({PAM, PAM + "#archive", "urn:xmpp:mam:2#groupchat-available",
                         "urn:xmpp:mam:2#groupchat-field"} <= features, features)


class PamTests(PamCase, unittest.TestCase):
    def test_client_join_errors(self):
        """client-join for someone else's account: forbidden; no channel: jid-malformed; no
        <join/>: bad-request; a channel whose server cannot be reached: its error."""
        bob = self.client("bob")
        wrapped = f"<client-join xmlns='{PAM}' channel='{CHANNEL}'><join xmlns='{CORE}'/></client-join>"
        self.assertEqual(error_of(self.iq(bob, wrapped, to="alice@localhost")), "forbidden")
        no_channel = f"<client-join xmlns='{PAM}'><join xmlns='{CORE}'/></client-join>"
        self.assertEqual(error_of(self.iq(bob, no_channel, to="bob@localhost")), "jid-malformed")
        no_join = f"<client-join xmlns='{PAM}' channel='{CHANNEL}'/>"
        self.assertEqual(error_of(self.iq(bob, no_join, to="bob@localhost")), "bad-request")
        self.assertEqual(error_of(self.join(bob, "bob", channel="coven@mix.elsewhere.example")),
                         "remote-server-not-found")

    def test_annotated_roster(self):
        """A roster get with <annotate/> marks channels with their participant id; a plain
        get does not."""
        reply = self.iq(self.alice, f"<query xmlns='jabber:iq:roster'><annotate xmlns='{ROSTER_MIX}'/></query>",
                        "get", to="alice@localhost")
        item = reply.firstChildElement().firstChildElement()
        self.assertEqual(item["jid"], CHANNEL)
        self.assertEqual(len(next(item.elements(ROSTER_MIX, "channel"))["participant-id"]), 16)
        plain = self.iq(self.alice, "<query xmlns='jabber:iq:roster'/>", "get", to="alice@localhost")
        self.assertEqual(list(plain.firstChildElement().firstChildElement().elements()), [])

    def test_every_client_gets_channel_messages(self):
        """One join serves every available client: each gets the message addressed to its full
        JID, with the account's own stanza-id; a bound client without presence does not."""
        phone = self.client("alice", "phone")
        silent = self.client("alice", "silent", presence=False)
        bob = self.client("bob")
        self.join(bob, "bob")
        drain(self.alice), drain(phone)
        self.say(bob, "to all of you")
        for client, resource in ((self.alice, "desk"), (phone, "phone")):
            message = messages(drain(client))[0]
            self.assertEqual(message["to"], f"alice@localhost/{resource}")
            self.assertEqual([s["by"] for s in message.elements("urn:xmpp:sid:0", "stanza-id")],
                             [CHANNEL, "alice@localhost"])
        self.assertEqual(messages(drain(silent)), [])

    def test_offline_client_catches_up_from_the_archive(self):
        """Messages arriving while no client is online are archived; the next client finds
        them in its own archive filtered by the channel."""
        bob = self.client("bob")
        self.join(bob, "bob")
        self.alice.lose_connection()
        for n in (1, 2):
            self.say(bob, f"missed {n}")
        again = self.client("alice", "laptop")
        again.send("<iq type='set' id='mam'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>"
                   "<field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>"
                   f"<field var='with'><value>{CHANNEL}</value></field></x></query></iq>")
        results = [e for e in drain(again) if e.name == "message"]
        bodies = [str(c) for r in results
                  for c in next(r.firstChildElement().firstChildElement().elements("jabber:client", "message")).elements()
                  if c.name == "body"]
        self.assertEqual(bodies, ["missed 1", "missed 2"])

    def test_groupchat_from_other_channels_is_refused(self):
        """Groupchat to the bare JID from a channel the account did not join is bounced."""
        self.server.router.route(parse_xml(
            "<message from='other@mix.localhost/x' to='alice@localhost' type='groupchat' id='g'>"
            "<body>spam</body></message>"))
        self.assertEqual(messages(drain(self.alice)), [])

    def test_leave_through_pam(self):
        """client-leave leaves the channel: no more messages."""
        bob = self.client("bob")
        self.join(bob, "bob")
        self.leave(self.alice)
        self.say(bob, "gone?")
        self.assertEqual(messages(drain(self.alice)), [])

    def test_account_deletion_forgets_channels(self):
        """Deleting the account deletes what PAM kept for it."""
        result_of(self.server.account_manager.delete("alice@localhost"))
        rows = result_of(self.server.database.runInteraction(
            "t", lambda txn: txn.execute("SELECT COUNT(*) FROM mix_pam_channels").fetchone()[0]))
        self.assertEqual(rows, 0)


class MixClientsOnlyTests(PamCase, unittest.TestCase):
    options = {"mix_pam": {"deliver_to": "mix_clients"}}

    def test_only_mix_clients(self):
        """With deliver_to = "mix_clients", only clients that showed MIX support (annotated
        roster, or joining) get channel traffic."""
        plain = self.client("alice", "plain")
        bob = self.client("bob")
        self.join(bob, "bob")
        drain(self.alice)
        self.say(bob, "mix only")
        self.assertEqual(len(messages(drain(self.alice))), 1)
        self.assertEqual(messages(drain(plain)), [])


__all__ = ["PamCase", "MESSAGES"]
