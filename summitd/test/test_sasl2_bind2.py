"""Bind 2 (XEP-0386) inside SASL2: TAG/SUFFIX resources, the same client replacing its old
session, carbons, stream management and client state enabled inline, inline resumption
(XEP-0198 §inline), archive metadata and the unread summary in <bound/>, and nothing
reaching the client before its <success/>."""

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core.jid import parse_jid
from summitd.plugins.mam import IArchiveMetadata
from summitd.plugins.pubsub import IPersonalEventing
from summitd.test.service_helpers import registering
from summitd.test.test_sasl2_support import (
    AGENT, NS_BIND2, NS_SASL2, NS_SM, OTHER_AGENT, Sasl2TestCase, child, text_of)

NS_MAM = "urn:xmpp:mam:2"
NS_UNREAD = "urn:summitd:unread:0"
NS_SID = "urn:xmpp:sid:0"
EVERYTHING = ("sasl2", "stream_management", "csi", "carbons", "delivery", "mam")


def _message(to, body, message_id):
    return f"<message to='{to}' type='chat' id='{message_id}'><body>{body}</body></message>"


class BindTests(Sasl2TestCase):
    extensions = EVERYTHING

    def session(self, jid):
        return self.server.router.session(parse_jid(jid))

    def test_resource_is_tag_slash_suffix(self):
        """The resource is the client's tag, '/', and a random part; the session is bound and
        the features after <success/> offer no legacy binding."""
        client, success, jid = self.bound(tag="AwesomeXMPP")
        user, _, resource = jid.partition("/")
        self.assertEqual(user, "alice@localhost")
        tag, _, suffix = resource.partition("/")
        self.assertEqual(tag, "AwesomeXMPP")
        self.assertGreaterEqual(len(suffix), 6)
        self.assertIsNotNone(self.session(jid))
        self.assertIsNotNone(child(success, NS_BIND2, "bound"))

    def test_two_devices_with_one_tag_do_not_collide(self):
        """Two installations with the same tag get different resources and both stay."""
        first, _, jid1 = self.bound(tag="Conversations", agent=AGENT)
        second, _, jid2 = self.bound(tag="Conversations", agent=OTHER_AGENT)
        self.assertNotEqual(jid1, jid2)
        self.assertIsNotNone(self.session(jid1))
        self.assertIsNotNone(self.session(jid2))
        first.expect_nothing()

    def test_same_client_replaces_its_old_session(self):
        """A new session with the same user-agent id ends the old one (conflict)."""
        first, _, jid1 = self.bound(agent=AGENT)
        _, _, jid2 = self.bound(agent=AGENT)
        first.expect_stream_error("conflict")
        self.assertIsNone(self.session(jid1))
        self.assertIsNotNone(self.session(jid2))

    def test_invalid_tag_is_dropped(self):
        """A tag that cannot be part of a resource is left out; the bind still happens."""
        _, _, jid = self.bound(tag="x" * 65)
        resource = parse_jid(jid).resource
        self.assertNotIn("/", resource)

    def test_failed_login_binds_nothing(self):
        """With a wrong password the bind request is not processed (XEP-0386 §bind-request)."""
        client = self.client()
        client.open()
        outcome = client.scram_login("alice", "wrong", inline=f"<bind xmlns='{NS_BIND2}'><tag>t</tag></bind>")
        self.assertFailure(outcome, "not-authorized")
        self.assertEqual(self.server.router.sessions(parse_jid("alice@localhost")), [])

    def test_inline_carbons(self):
        """<enable xmlns='urn:xmpp:carbons:2'/> in <bind/>: a message to the user's other
        resource is copied to this one."""
        phone, _, phone_jid = self.bound(tag="phone", agent=AGENT,
                                         features="<enable xmlns='urn:xmpp:carbons:2'/>")
        laptop, _, laptop_jid = self.bound(tag="laptop", agent=OTHER_AGENT)
        bob = self.login("bob", "desk")
        bob.send(_message(laptop_jid, "hi laptop", "m1"))
        laptop.expect(f"<message from='bob@localhost/desk' to='{laptop_jid}'/>")
        carbon = phone.expect(f"<message to='{phone_jid}'><received xmlns='urn:xmpp:carbons:2'/></message>")
        self.assertIsNotNone(carbon)

    def test_inline_stream_management(self):
        """<enable xmlns='urn:xmpp:sm:3' resume='true'/>: <bound/> holds <enabled/> with an
        id, and the server asks for acknowledgements of what it sends."""
        client, success, jid = self.bound(features=f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = child(child(success, NS_BIND2, "bound"), NS_SM, "enabled")
        self.assertEqual(enabled.getAttribute("resume"), "true")
        self.assertTrue(enabled.getAttribute("id"))
        self.login("bob", "desk").send(_message(jid, "hello", "m1"))
        client.expect("<message/>")
        client.expect(f"<r xmlns='{NS_SM}'/>")

    def test_inline_client_state(self):
        """<inactive xmlns='urn:xmpp:csi:0'/>: the session starts inactive, presence is held."""
        client, _, jid = self.bound(features="<inactive xmlns='urn:xmpp:csi:0'/>")
        self.assertIsNotNone(self.session(jid).stream.outbound_hold)
        bob = self.login("bob", "desk")
        bob.send(f"<presence to='{jid}'/>")
        client.expect_nothing()

    def _broken_session(self):
        """alice with resumable stream management, one unacknowledged message, then cut."""
        client, success, jid = self.bound(features=f"<enable xmlns='{NS_SM}' resume='true'/>")
        previd = child(child(success, NS_BIND2, "bound"), NS_SM, "enabled")["id"]
        self.login("bob", "desk").send(_message(jid, "are you there?", "m1"))
        client.expect("<message/>")
        client.lose_connection()
        return jid, previd

    def test_inline_resumption(self):
        """<resume/> in <authenticate/>: <success/> holds <resumed/> and the old full JID, the
        bind request is ignored, no features follow, and the unacknowledged message is sent
        again after <success/>."""
        jid, previd = self._broken_session()
        client = self.client()
        client.open()
        success = client.scram_login("alice", inline=f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>"
                                     f"<bind xmlns='{NS_BIND2}'><tag>phone</tag></bind>")
        self.assertEqual(success.name, "success")
        self.assertEqual(text_of(success, NS_SASL2, "authorization-identifier"), jid)
        self.assertEqual(child(success, NS_SM, "resumed")["previd"], previd)
        self.assertIsNone(child(success, NS_BIND2, "bound"))
        message = client.expect("<message><body>are you there?</body></message>")
        self.assertEqual(message["to"], jid)
        self.assertEqual(self.session(jid).stream, client.stream)

    def test_failed_resumption_binds_anew(self):
        """An unknown previd: <failed/> in <success/>, and the bind goes ahead."""
        client = self.client()
        client.open()
        success = client.scram_login("alice", inline=f"<resume xmlns='{NS_SM}' previd='gone' h='3'/>"
                                     f"<bind xmlns='{NS_BIND2}'><tag>phone</tag></bind>")
        failed = child(success, NS_SM, "failed")
        self.assertIsNotNone(child(failed, "urn:ietf:params:xml:ns:xmpp-stanzas", "item-not-found"))
        self.assertIsNotNone(child(success, NS_BIND2, "bound"))
        client.expect("<features xmlns='http://etherx.jabber.org/streams'/>")

    def test_archive_metadata(self):
        """<bound/> carries the archive's metadata: the last stanza-id is the one of the
        message that arrived before the login."""
        bob = self.login("bob", "desk")
        bob.send(_message("alice@localhost", "while you were away", "m1"))
        _, success, _ = self.bound()
        metadata = child(child(success, NS_BIND2, "bound"), NS_MAM, "metadata")
        end = child(metadata, NS_MAM, "end")
        self.assertTrue(end.getAttribute("id"))
        self.assertTrue(end.getAttribute("timestamp").endswith("Z"))


class UnreadTests(Sasl2TestCase):
    extensions = ("sasl2", "delivery", "mam", "fakepep")
    mds_items = []

    def extra_factories(self):
        test = self

        class FakePep:
            def get_items(self, owner, node):
                test.asked = (owner, node)
                return defer.succeed(list(test.mds_items))

        return [registering("fakepep", lambda context: context.provide(IPersonalEventing, FakePep()))]

    def unread(self, user="alice"):
        """{peer: (count, stanza-id)} of the summary in a fresh Bind 2 login."""
        _, success, _ = self.bound(user, agent=None)
        unread = child(child(success, NS_BIND2, "bound"), NS_UNREAD, "unread")
        return {c["jid"]: (int(c["count"]), child(c, NS_SID, "stanza-id")["id"])
                for c in unread.elements(NS_UNREAD, "conversation")}

    def send_three(self):
        bob = self.login("bob", "desk")
        for n in (1, 2, 3):
            bob.send(_message("alice@localhost", f"message {n}", f"m{n}"))
        return bob

    def test_counts_messages_and_names_the_last(self):
        """Three messages from bob: count 3, and the stanza-id of the third (the archive's)."""
        self.send_three()
        unread = self.unread()
        count, stanza_id = unread["bob@localhost"]
        self.assertEqual(count, 3)
        self.assertEqual(self.asked, (parse_jid("alice@localhost"), "urn:xmpp:mds:displayed:0"))
        self.assertTrue(stanza_id)

    def test_displayed_marker_reads_up_to_it(self):
        """A XEP-0333 <displayed/> for message 2 from any of alice's clients leaves one unread."""
        self.send_three()
        alice = self.login("alice", "desk")
        alice.send("<message to='bob@localhost' type='chat'>"
                   "<displayed xmlns='urn:xmpp:chat-markers:0' id='m2'/></message>")
        self.assertEqual(self.unread()["bob@localhost"][0], 1)

    def test_mds_reads_up_to_its_stanza_id(self):
        """A XEP-0490 displayed state naming the last stanza-id leaves nothing unread."""
        self.send_three()
        last = self.unread()["bob@localhost"][1]
        displayed = domish.Element(("urn:xmpp:mds:displayed:0", "displayed"))
        marker = displayed.addElement((NS_SID, "stanza-id"))
        marker["by"], marker["id"] = "alice@localhost", last
        self.mds_items.append(("bob@localhost", displayed))
        self.addCleanup(self.mds_items.clear)
        self.assertEqual(self.unread(), {})

    def test_own_messages_and_chat_states_do_not_count(self):
        """Messages without a body, and messages to oneself, are not unread."""
        bob = self.login("bob", "desk")
        bob.send("<message to='alice@localhost' type='chat'>"
                 "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        self.login("alice", "desk").send(_message("alice@localhost", "note to self", "n1"))
        self.assertEqual(self.unread(), {})


class CappedUnreadTests(Sasl2TestCase):
    extensions = ("sasl2", "delivery")
    options = {"sasl2": {"unread_per_conversation": 2}}

    def test_count_saturates(self):
        """At most unread_per_conversation messages are counted per conversation; without
        an archive there is no stanza-id."""
        bob = self.login("bob", "desk")
        for n in range(4):
            bob.send(_message("alice@localhost", f"message {n}", f"m{n}"))
        _, success, _ = self.bound()
        conversation = child(child(child(success, NS_BIND2, "bound"), NS_UNREAD, "unread"),
                             NS_UNREAD, "conversation")
        self.assertEqual(conversation["count"], "2")
        self.assertIsNone(child(conversation, NS_SID, "stanza-id"))


class HeldUntilSuccessTests(Sasl2TestCase):
    """An archive whose metadata answers late: what reaches the new session meanwhile waits."""

    extensions = ("sasl2", "delivery", "slowmam")

    def extra_factories(self):
        test = self
        test.pending = []

        class SlowArchive:
            def metadata_element(self, host, user):
                d = defer.Deferred()
                test.pending.append(d)
                return d

        return [registering("slowmam", lambda context: context.provide(IArchiveMetadata, SlowArchive()))]

    def test_message_waits_for_success(self):
        """A message routed to the session between binding and <success/> is sent after it."""
        client = self.client()
        client.open()
        self.assertIsNone(client.scram_send("alice", inline=f"<bind xmlns='{NS_BIND2}'><tag>t</tag></bind>"))
        self.assertEqual(len(self.pending), 1)
        jid = self.server.router.sessions(parse_jid("alice@localhost"))[0].jid.full()
        self.login("bob", "desk").send(_message(jid, "early bird", "m1"))
        client.expect_nothing()
        self.pending[0].callback(domish.Element((NS_MAM, "metadata")))
        success = client.expect(f"<success xmlns='{NS_SASL2}'/>")
        self.assertIsNotNone(child(child(success, NS_BIND2, "bound"), NS_MAM, "metadata"))
        client.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        client.expect("<message><body>early bird</body></message>")
