"""The hosted pubsub service at pubsub.localhost (XEP-0060): each use case the engine
implements and its errors, service discovery, limits and account deletion."""

from summitd.core import events
from summitd.plugins.pubsub.features import SERVICE_FEATURES
from summitd.plugins.pubsub.protocol import NS_META_DATA
from summitd.test.test_pubsub_support import (
    NS_PUBSUB, SERVICE, PubSubTestCase, drain, events_of, form, owner, pubsub)

ITEM = "<item id='{id}'><entry xmlns='urn:example:entry'>{text}</entry></item>"


def item(item_id, text="hello"):
    return ITEM.format(id=item_id, text=text)


class ServiceCase(PubSubTestCase):
    options = {"pubsub": {"max_nodes": 3, "max_item_size": 200, "max_results": 4, "max_items": 20}}

    def setUp(self):
        super().setUp()
        self.alice = self.login("alice")
        self.bob = self.login("bob")

    def ask_service(self, client, payload, type="set", iq_id="q"):
        return self.request(client, payload, SERVICE, type, iq_id)

    def create(self, name="news", config=None, client=None):
        body = f"<create node='{name}'/>"
        if config is not None:
            body += f"<configure>{form('submit', config)}</configure>"
        reply = self.ask_service(client or self.alice, pubsub(body))
        self.assertResult(reply)
        return reply

    def publish(self, node="news", item_id="i1", text="hello", client=None, options=None):
        extra = f"<publish-options>{form('submit', options, NS_PUBSUB + '#publish-options')}</publish-options>" \
            if options else ""
        return self.ask_service(client or self.alice,
                                pubsub(f"<publish node='{node}'>{item(item_id, text)}</publish>{extra}"))

    def subscribe(self, client, node="news", jid=None):
        jid = jid or client.jid
        return self.ask_service(client, pubsub(f"<subscribe node='{node}' jid='{jid}'/>"))

    def items(self, client, body, iq_id="q"):
        return self.ask_service(client, pubsub(body), "get", iq_id)

    def item_ids(self, reply):
        items = self.assertResult(reply).firstChildElement()
        return [i["id"] for i in items.elements(NS_PUBSUB, "item")]


class DiscoveryTests(ServiceCase):
    def test_listed_in_the_domain_items(self):
        """The domain's disco#items lists the service (issue: 'listed in the server's disco#items')."""
        reply = self.request(self.alice, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "localhost", "get")
        jids = [i["jid"] for i in self.assertResult(reply).elements()]
        self.assertIn(SERVICE, jids)

    def test_service_info(self):
        """disco#info of the service: identity pubsub/service and exactly the engine's features."""
        reply = self.ask_service(self.alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get")
        query = self.assertResult(reply)
        identities = [(i["category"], i["type"]) for i in query.elements() if i.name == "identity"]
        features = {f["var"] for f in query.elements() if f.name == "feature"}
        self.assertEqual(identities, [("pubsub", "service")])
        self.assertEqual(features - {"http://jabber.org/protocol/disco#info",
                                     "http://jabber.org/protocol/disco#items"}, set(SERVICE_FEATURES))
        self.assertNotIn(NS_PUBSUB + "#auto-create", features)

    def test_node_info_and_items(self):
        """disco#info of a node: pubsub/leaf with the meta-data form; disco#items lists the
        nodes, and of a node its items."""
        self.create(config={"pubsub#title": "News"})
        self.publish()
        reply = self.ask_service(self.bob, "<query xmlns='http://jabber.org/protocol/disco#info' node='news'/>", "get")
        query = self.assertResult(reply)
        self.assertEqual([(i["category"], i["type"]) for i in query.elements() if i.name == "identity"],
                         [("pubsub", "leaf")])
        forms = [x for x in query.elements() if x.name == "x"]
        self.assertIn(NS_META_DATA, forms[0].toXml())
        reply = self.ask_service(self.bob, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get")
        self.assertEqual([(i["node"], i["name"]) for i in self.assertResult(reply).elements()], [("news", "News")])
        reply = self.ask_service(self.bob, "<query xmlns='http://jabber.org/protocol/disco#items' node='news'/>", "get")
        self.assertEqual([i["name"] for i in self.assertResult(reply).elements()], ["i1"])

    def test_hidden_nodes(self):
        """A whitelist node is neither listed nor described to an outsider."""
        self.create("secret", {"pubsub#access_model": "whitelist"})
        reply = self.ask_service(self.bob, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get")
        self.assertEqual(list(self.assertResult(reply).elements()), [])
        reply = self.ask_service(self.bob, "<query xmlns='http://jabber.org/protocol/disco#info' node='secret'/>", "get")
        self.assertStanzaError(reply, "item-not-found")


class RoutingTests(ServiceCase):
    def test_unknown_payload(self):
        """An IQ the service does not know gets service-unavailable."""
        reply = self.ask_service(self.alice, "<query xmlns='jabber:iq:version'/>", "get")
        self.assertStanzaError(reply, "service-unavailable")

    def test_jid_at_the_service(self):
        """An IQ to a JID at the service other than the service gets service-unavailable."""
        reply = self.request(self.alice, pubsub("<items node='news'/>"), "someone@" + SERVICE, "get")
        self.assertStanzaError(reply, "service-unavailable")

    def test_message_bounces(self):
        """A message to the service is answered with service-unavailable."""
        self.alice.send(f"<message to='{SERVICE}' id='m'><body>hi</body></message>")
        self.alice.expect(f"<message type='error' id='m' from='{SERVICE}'><error type='cancel'>"
                          "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")

    def test_federation_serves_it(self):
        """The service's domain answers LOCAL_SERVICE (peers' stanzas for it are accepted);
        other domains do not."""
        self.assertTrue(self.server.hooks.run(events.LOCAL_SERVICE, SERVICE))
        self.assertIsNone(self.server.hooks.run(events.LOCAL_SERVICE, "pubsub.elsewhere.example"))

    def test_unknown_verb(self):
        """A pubsub request with no verb we know gets feature-not-implemented."""
        reply = self.ask_service(self.alice, pubsub("<frobnicate node='x'/>"))
        self.assertStanzaError(reply, "feature-not-implemented")


class CreateTests(ServiceCase):
    def test_named(self):
        """Creating a named node returns an empty result; the creator is its owner."""
        self.create()
        reply = self.ask_service(self.alice, owner("<affiliations node='news'/>"), "get")
        affiliation = self.assertResult(reply).firstChildElement().firstChildElement()
        self.assertEqual((affiliation["jid"], affiliation["affiliation"]), ("alice@localhost", "owner"))

    def test_instant(self):
        """An instant node gets a generated id, returned in <create node=.../> (§8.1.2)."""
        reply = self.ask_service(self.alice, pubsub("<create/>"))
        name = self.assertResult(reply).firstChildElement()["node"]
        self.assertTrue(name)
        self.assertResult(self.publish(node=name))

    def test_exists(self):
        """Creating an existing node is a conflict."""
        self.create()
        self.assertStanzaError(self.ask_service(self.bob, pubsub("<create node='news'/>")), "conflict")

    def test_create_and_configure(self):
        """A configuration form with the create applies (§8.1.3)."""
        self.create(config={"pubsub#max_items": "1", "pubsub#title": "T"})
        reply = self.ask_service(self.alice, owner("<configure node='news'/>"), "get")
        text = self.assertResult(reply).toXml()
        self.assertIn("<field var='pubsub#max_items' type='text-single' label=", text)
        self.assertIn("<value>T</value>", text)

    def test_bad_configuration(self):
        """An invalid value in the create's form is not-acceptable; an access model we do not
        know says unsupported-access-model."""
        reply = self.ask_service(self.alice, pubsub(
            "<create node='n'/><configure>" + form("submit", {"pubsub#max_items": "many"}) + "</configure>"))
        self.assertStanzaError(reply, "not-acceptable")
        reply = self.ask_service(self.alice, pubsub(
            "<create node='n'/><configure>" + form("submit", {"pubsub#access_model": "friends"}) + "</configure>"))
        self.assertPubSubError(reply, "not-acceptable", "unsupported-access-model")

    def test_collections_unsupported(self):
        """Collection nodes are not supported: feature-not-implemented, unsupported collections."""
        reply = self.ask_service(self.alice, pubsub(
            "<create node='c'/><configure>" + form("submit", {"pubsub#node_type": "collection"}) + "</configure>"))
        self.assertPubSubError(reply, "feature-not-implemented", "unsupported")

    def test_node_limit(self):
        """An account owns at most max_nodes nodes: not-allowed with max-nodes-exceeded."""
        for name in ("a", "b", "c"):
            self.create(name)
        self.assertPubSubError(self.ask_service(self.alice, pubsub("<create node='d'/>")),
                               "not-allowed", "max-nodes-exceeded")
        self.create("d", client=self.bob)


class ConfigureTests(ServiceCase):
    def test_get_and_set(self):
        """The owner reads the node_config form and changes a field."""
        self.create()
        reply = self.ask_service(self.alice, owner(
            "<configure node='news'>" + form("submit", {"pubsub#title": "Renamed"}) + "</configure>"))
        self.assertResult(reply)
        reply = self.ask_service(self.alice, owner("<configure node='news'/>"), "get")
        self.assertIn("<value>Renamed</value>", self.assertResult(reply).toXml())

    def test_cancel(self):
        """A cancel form changes nothing and succeeds."""
        self.create()
        reply = self.ask_service(self.alice, owner(
            "<configure node='news'><x xmlns='jabber:x:data' type='cancel'/></configure>"))
        self.assertResult(reply)

    def test_errors(self):
        """Not the owner: forbidden; no node: item-not-found; no node id: nodeid-required."""
        self.create()
        self.assertStanzaError(self.ask_service(self.bob, owner("<configure node='news'/>"), "get"), "forbidden")
        self.assertStanzaError(self.ask_service(self.alice, owner("<configure node='nope'/>"), "get"),
                               "item-not-found")
        self.assertPubSubError(self.ask_service(self.alice, owner("<configure/>"), "get"),
                               "bad-request", "nodeid-required")

    def test_notify_config(self):
        """With notify_config, subscribers hear of the new configuration (§8.2.5.3)."""
        self.create(config={"pubsub#notify_config": "1"})
        self.assertResult(self.subscribe(self.bob))
        self.ask_service(self.alice, owner(
            "<configure node='news'>" + form("submit", {"pubsub#title": "New"}) + "</configure>"))
        [(_, event)] = events_of(drain(self.bob), "news")
        self.assertEqual(event.firstChildElement().name, "configuration")

    def test_whitelist_drops_outsiders(self):
        """Changing the access model to whitelist cancels subscriptions of the unaffiliated."""
        self.create()
        self.assertResult(self.subscribe(self.bob))
        self.ask_service(self.alice, owner(
            "<configure node='news'>" + form("submit", {"pubsub#access_model": "whitelist"}) + "</configure>"))
        reply = self.ask_service(self.alice, owner("<subscriptions node='news'/>"), "get")
        self.assertEqual(list(self.assertResult(reply).firstChildElement().elements()), [])

    def test_default(self):
        """The default node configuration is a node_config form (§8.3)."""
        reply = self.ask_service(self.alice, owner("<default/>"), "get")
        self.assertIn("pubsub#access_model", self.assertResult(reply).toXml())


class DeletePurgeTests(ServiceCase):
    def test_delete_notifies(self):
        """Deleting a node tells subscribers (<delete/>) and the node is gone."""
        self.create()
        self.assertResult(self.subscribe(self.bob))
        self.assertResult(self.ask_service(self.alice, owner("<delete node='news'/>")))
        [(_, event)] = events_of(drain(self.bob), "news")
        self.assertEqual(event.firstChildElement().name, "delete")
        self.assertStanzaError(self.items(self.alice, "<items node='news'/>"), "item-not-found")

    def test_delete_errors(self):
        """Deleting someone else's node is forbidden; a missing one item-not-found."""
        self.create()
        self.assertStanzaError(self.ask_service(self.bob, owner("<delete node='news'/>")), "forbidden")
        self.assertStanzaError(self.ask_service(self.alice, owner("<delete node='x'/>")), "item-not-found")

    def test_purge(self):
        """Purging removes every item and tells subscribers (<purge/>)."""
        self.create()
        self.publish()
        self.assertResult(self.subscribe(self.bob))
        drain(self.bob)
        self.assertResult(self.ask_service(self.alice, owner("<purge node='news'/>")))
        [(_, event)] = events_of(drain(self.bob), "news")
        self.assertEqual(event.firstChildElement().name, "purge")
        self.assertEqual(self.item_ids(self.items(self.alice, "<items node='news'/>")), [])

    def test_purge_errors(self):
        """Purging: forbidden for a non-owner; a node that persists nothing says
        unsupported persistent-items."""
        self.create()
        self.create("flash", {"pubsub#persist_items": "0"})
        self.assertStanzaError(self.ask_service(self.bob, owner("<purge node='news'/>")), "forbidden")
        self.assertPubSubError(self.ask_service(self.alice, owner("<purge node='flash'/>")),
                               "feature-not-implemented", "unsupported")


class PublishTests(ServiceCase):
    def test_publish_and_notify(self):
        """A publication returns the item id and reaches subscribers with the payload."""
        self.create()
        self.assertResult(self.subscribe(self.bob))
        reply = self.publish()
        self.assertEqual(self.assertResult(reply).firstChildElement().firstChildElement()["id"], "i1")
        [(message, event)] = events_of(drain(self.bob), "news")
        self.assertEqual((message["from"], message["type"]), (SERVICE, "headline"))
        self.assertIn("<entry xmlns='urn:example:entry'>hello</entry>", event.toXml())

    def test_generated_id(self):
        """An item without id gets one (§7.1.3.7 first rule)."""
        self.create()
        reply = self.ask_service(self.alice, pubsub(
            "<publish node='news'><item><entry xmlns='urn:example:entry'/></item></publish>"))
        self.assertTrue(self.assertResult(reply).firstChildElement().firstChildElement()["id"])

    def test_republish_replaces(self):
        """Re-publishing an id overwrites that item (§7.1.3 note)."""
        self.create()
        self.publish(text="one")
        self.publish(text="two")
        reply = self.items(self.alice, "<items node='news'/>")
        self.assertEqual(self.item_ids(reply), ["i1"])
        self.assertIn(">two<", reply.toXml())

    def test_no_such_node(self):
        """The service does not auto-create: item-not-found."""
        self.assertStanzaError(self.publish(node="nope"), "item-not-found")

    def test_forbidden(self):
        """Only publishers may publish under the default publish model."""
        self.create()
        self.assertStanzaError(self.publish(client=self.bob), "forbidden")

    def test_publish_models(self):
        """publish_model open lets anyone publish; subscribers lets subscribers."""
        self.create("open", {"pubsub#publish_model": "open"})
        self.create("subs", {"pubsub#publish_model": "subscribers"})
        self.assertResult(self.publish("open", client=self.bob))
        self.assertStanzaError(self.publish("subs", client=self.bob), "forbidden")
        self.assertResult(self.subscribe(self.bob, "subs"))
        self.assertResult(self.publish("subs", client=self.bob))

    def test_payload_errors(self):
        """No item: item-required; no payload: payload-required; two payloads or a payload
        of the wrong namespace: invalid-payload; two items: bad-request."""
        self.create(config={"pubsub#type": "urn:example:entry"})
        self.assertPubSubError(self.ask_service(self.alice, pubsub("<publish node='news'/>")),
                               "bad-request", "item-required")
        self.assertPubSubError(self.ask_service(self.alice, pubsub("<publish node='news'><item id='a'/></publish>")),
                               "bad-request", "payload-required")
        self.assertPubSubError(self.ask_service(self.alice, pubsub(
            "<publish node='news'><item id='a'><x xmlns='urn:a'/><y xmlns='urn:a'/></item></publish>")),
            "bad-request", "invalid-payload")
        self.assertPubSubError(self.ask_service(self.alice, pubsub(
            "<publish node='news'><item id='a'><x xmlns='urn:other'/></item></publish>")),
            "bad-request", "invalid-payload")
        self.assertStanzaError(self.ask_service(self.alice, pubsub(
            "<publish node='news'>" + item("a") + item("b") + "</publish>")), "bad-request")

    def test_payload_too_big(self):
        """A payload over max_item_size: not-acceptable with payload-too-big."""
        self.create()
        self.assertPubSubError(self.publish(text="x" * 300), "not-acceptable", "payload-too-big")

    def test_nodeid_required(self):
        """A publish naming no node: bad-request, nodeid-required."""
        self.assertPubSubError(self.ask_service(self.alice, pubsub("<publish>" + item("a") + "</publish>")),
                               "bad-request", "nodeid-required")

    def test_max_items_keeps_the_newest(self):
        """A node keeps its max_items newest items."""
        self.create(config={"pubsub#max_items": "2"})
        for n in range(3):
            self.publish(item_id=f"i{n}")
        self.assertEqual(self.item_ids(self.items(self.alice, "<items node='news'/>")), ["i1", "i2"])


class PublishOptionsTests(ServiceCase):
    def test_precondition_met(self):
        """Preconditions that match the node let the publication through ('max' included)."""
        self.create(config={"pubsub#max_items": "max"})
        self.assertResult(self.publish(options={"pubsub#access_model": "open", "pubsub#max_items": "20",
                                                "pubsub#persist_items": "true"}))

    def test_precondition_not_met(self):
        """A precondition the node does not meet: conflict with precondition-not-met."""
        self.create()
        self.assertPubSubError(self.publish(options={"pubsub#access_model": "whitelist"}),
                               "conflict", "precondition-not-met")

    def test_unknown_option_rejected(self):
        """An unknown field in publish-options is rejected (§7.1.5)."""
        self.create()
        self.assertPubSubError(self.publish(options={"pubsub#frobnicate": "1"}), "conflict", "precondition-not-met")

    def test_form_type_required(self):
        """publish-options without a publish-options form is a bad request."""
        self.create()
        reply = self.ask_service(self.alice, pubsub(
            "<publish node='news'>" + item("a") + "</publish><publish-options>" + form(
                "submit", {"pubsub#title": "x"}) + "</publish-options>"))
        self.assertStanzaError(reply, "bad-request")


class RetractTests(ServiceCase):
    def test_retract_with_notify(self):
        """A retraction with notify='true' tells subscribers (§7.2.2.1)."""
        self.create(config={"pubsub#notify_retract": "0"})
        self.publish()
        self.assertResult(self.subscribe(self.bob))
        drain(self.bob)
        reply = self.ask_service(self.alice, pubsub("<retract node='news' notify='true'><item id='i1'/></retract>"))
        self.assertResult(reply)
        [(_, event)] = events_of(drain(self.bob), "news")
        self.assertEqual(event.firstChildElement().firstChildElement()["id"], "i1")

    def test_retract_silently(self):
        """Without notify and with notify_retract off, nobody is told."""
        self.create(config={"pubsub#notify_retract": "0"})
        self.publish()
        self.assertResult(self.subscribe(self.bob))
        drain(self.bob)
        self.assertResult(self.ask_service(self.alice, pubsub("<retract node='news'><item id='i1'/></retract>")))
        self.assertEqual(events_of(drain(self.bob)), [])

    def test_errors(self):
        """Retracting: forbidden for others, item-not-found for a missing item, item-required
        without one."""
        self.create()
        self.publish()
        self.assertStanzaError(self.ask_service(self.bob, pubsub("<retract node='news'><item id='i1'/></retract>")),
                               "forbidden")
        self.assertStanzaError(self.ask_service(self.alice, pubsub("<retract node='news'><item id='x'/></retract>")),
                               "item-not-found")
        self.assertPubSubError(self.ask_service(self.alice, pubsub("<retract node='news'/>")),
                               "bad-request", "item-required")


class RetrieveTests(ServiceCase):
    def setUp(self):
        super().setUp()
        self.create()
        for n in range(6):
            self.publish(item_id=f"i{n}")

    def test_by_id(self):
        """Items by id; an id the node lacks is item-not-found."""
        reply = self.items(self.bob, "<items node='news'><item id='i4'/><item id='i1'/></items>")
        self.assertEqual(self.item_ids(reply), ["i1", "i4"])
        self.assertStanzaError(self.items(self.bob, "<items node='news'><item id='zz'/></items>"), "item-not-found")

    def test_most_recent(self):
        """max_items gives the N most recent (§6.5.7)."""
        self.assertEqual(self.item_ids(self.items(self.bob, "<items node='news' max_items='2'/>")), ["i4", "i5"])

    def test_bad_max_items(self):
        """A max_items that is not a positive integer is a bad request."""
        self.assertStanzaError(self.items(self.bob, "<items node='news' max_items='-1'/>"), "bad-request")

    def test_truncated_without_rsm(self):
        """More items than max_results: the first page, with an RSM <set/> (§6.5.4)."""
        reply = self.items(self.bob, "<items node='news'/>")
        self.assertEqual(self.item_ids(reply), ["i0", "i1", "i2", "i3"])
        self.assertIn("<count>6</count>", reply.toXml())

    def test_rsm_paging(self):
        """RSM max/after pages through the items; the reply names first and last."""
        rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max>{}</set>"
        reply = self.items(self.bob, "<items node='news'/>" + rsm.format("<after>i1</after>"))
        self.assertEqual(self.item_ids(reply), ["i2", "i3"])
        self.assertIn("<first index='2'>i2</first><last>i3</last><count>6</count>", reply.toXml())
        reply = self.items(self.bob, "<items node='news'/>" + rsm.format("<before/>"))
        self.assertEqual(self.item_ids(reply), ["i4", "i5"])
        reply = self.items(self.bob, "<items node='news'/>" + rsm.format("<after>gone</after>"))
        self.assertStanzaError(reply, "item-not-found")

    def test_no_node(self):
        """Items of a missing node: item-not-found."""
        self.assertStanzaError(self.items(self.bob, "<items node='none'/>"), "item-not-found")


class AccessTests(ServiceCase):
    def test_whitelist(self):
        """A whitelist node refuses outsiders (not-allowed, closed-node) and lets members in."""
        self.create(config={"pubsub#access_model": "whitelist"})
        self.publish()
        self.assertPubSubError(self.items(self.bob, "<items node='news'/>"), "not-allowed", "closed-node")
        self.assertPubSubError(self.subscribe(self.bob), "not-allowed", "closed-node")
        self.assertResult(self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='member'/></affiliations>")))
        self.assertEqual(self.item_ids(self.items(self.bob, "<items node='news'/>")), ["i1"])

    def test_authorize(self):
        """An authorize node: subscriptions are pending until the owner approves; retrieval
        needs an approved subscription (not-subscribed); approval notifies the subscriber."""
        self.create(config={"pubsub#access_model": "authorize"})
        self.publish()
        reply = self.subscribe(self.bob)
        self.assertEqual(self.assertResult(reply).firstChildElement()["subscription"], "pending")
        self.assertPubSubError(self.items(self.bob, "<items node='news'/>"), "not-authorized", "not-subscribed")
        reply = self.ask_service(self.alice, owner(
            f"<subscriptions node='news'><subscription jid='{self.bob.jid}' subscription='subscribed'/>"
            "</subscriptions>"))
        self.assertResult(reply)
        received = drain(self.bob)
        kinds = [event.firstChildElement().name for _, event in events_of(received)]
        self.assertEqual(kinds, ["subscription", "items"])
        self.assertEqual(self.item_ids(self.items(self.bob, "<items node='news'/>")), ["i1"])

    def test_presence_and_roster(self):
        """Presence and roster access follow the owner's roster: a stranger is refused with
        presence-subscription-required / not-in-roster-group; a contact in the group reads."""
        self.create("p", {"pubsub#access_model": "presence"})
        self.create("r", {"pubsub#access_model": "roster", "pubsub#roster_groups_allowed": "Friends"})
        self.assertPubSubError(self.items(self.bob, "<items node='p'/>"), "not-authorized",
                               "presence-subscription-required")
        self.assertPubSubError(self.items(self.bob, "<items node='r'/>"), "not-authorized", "not-in-roster-group")
        self.befriend("alice", "bob", groups=("Friends",))
        self.assertResult(self.items(self.bob, "<items node='p'/>"))
        self.assertResult(self.items(self.bob, "<items node='r'/>"))

    def test_outcast(self):
        """An outcast is forbidden even on an open node."""
        self.create()
        self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='outcast'/></affiliations>"))
        self.assertStanzaError(self.items(self.bob, "<items node='news'/>"), "forbidden")
        self.assertStanzaError(self.subscribe(self.bob), "forbidden")

    def test_publish_only_cannot_read(self):
        """The publish-only affiliation publishes but cannot retrieve."""
        self.create(config={"pubsub#access_model": "whitelist"})
        self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='publish-only'/></affiliations>"))
        self.assertResult(self.publish(client=self.bob))
        self.assertStanzaError(self.items(self.bob, "<items node='news'/>"), "forbidden")


class SubscribeTests(ServiceCase):
    def test_subscribe_gets_last_item(self):
        """Subscribing returns the subscription; on_sub sends the last item at once (§6.1.7)."""
        self.create()
        self.publish(item_id="old")
        self.publish(item_id="new")
        reply = self.subscribe(self.bob)
        subscription = self.assertResult(reply).firstChildElement()
        self.assertEqual((subscription["jid"], subscription["subscription"]), (self.bob.jid, "subscribed"))
        [(_, event)] = events_of(self.before_reply + drain(self.bob), "news")
        self.assertEqual(event.firstChildElement().firstChildElement()["id"], "new")

    def test_subscribe_twice(self):
        """Subscribing again returns the same subscription (no multi-subscribe)."""
        self.create()
        first = self.assertResult(self.subscribe(self.bob)).firstChildElement()["subid"]
        second = self.assertResult(self.subscribe(self.bob)).firstChildElement()["subid"]
        self.assertEqual(first, second)

    def test_errors(self):
        """Someone else's JID: invalid-jid; no node: item-not-found; subscriptions off:
        unsupported subscribe; no node id: nodeid-required."""
        self.create()
        self.create("quiet", {"pubsub#subscribe": "0"})
        self.assertPubSubError(self.subscribe(self.bob, jid="carol@localhost"), "bad-request", "invalid-jid")
        self.assertStanzaError(self.subscribe(self.bob, node="nope"), "item-not-found")
        self.assertPubSubError(self.subscribe(self.bob, node="quiet"), "feature-not-implemented", "unsupported")
        self.assertPubSubError(self.ask_service(self.bob, pubsub(f"<subscribe jid='{self.bob.jid}'/>")),
                               "bad-request", "nodeid-required")
        self.assertPubSubError(self.ask_service(self.bob, pubsub("<subscribe node='news'/>")),
                               "bad-request", "jid-required")

    def test_unsubscribe(self):
        """Unsubscribing ends notifications; errors: not-subscribed, forbidden, invalid-subid."""
        self.create()
        subid = self.assertResult(self.subscribe(self.bob)).firstChildElement()["subid"]
        self.assertPubSubError(self.ask_service(self.bob, pubsub(
            f"<unsubscribe node='news' jid='{self.bob.jid}' subid='wrong'/>")), "not-acceptable", "invalid-subid")
        self.assertStanzaError(self.ask_service(self.alice, pubsub(
            f"<unsubscribe node='news' jid='{self.bob.jid}'/>")), "forbidden")
        self.assertResult(self.ask_service(self.bob, pubsub(
            f"<unsubscribe node='news' jid='{self.bob.jid}' subid='{subid}'/>")))
        self.assertPubSubError(self.ask_service(self.bob, pubsub(
            f"<unsubscribe node='news' jid='{self.bob.jid}'/>")), "unexpected-request", "not-subscribed")
        drain(self.bob)
        self.publish()
        self.assertEqual(events_of(drain(self.bob)), [])

    def test_options(self):
        """Subscription options: read the form, turn delivery off (no more notifications);
        errors: invalid-options, not-subscribed."""
        self.create()
        self.assertResult(self.subscribe(self.bob))
        reply = self.ask_service(self.bob, pubsub(f"<options node='news' jid='{self.bob.jid}'/>"), "get")
        self.assertIn("pubsub#deliver", self.assertResult(reply).toXml())
        options = form("submit", {"pubsub#deliver": "false"}, NS_PUBSUB + "#subscribe_options")
        self.assertResult(self.ask_service(self.bob, pubsub(
            f"<options node='news' jid='{self.bob.jid}'>{options}</options>")))
        drain(self.bob)
        self.publish()
        self.assertEqual(events_of(drain(self.bob)), [])
        bad = form("submit", {"pubsub#digest": "1"}, NS_PUBSUB + "#subscribe_options")
        self.assertPubSubError(self.ask_service(self.bob, pubsub(
            f"<options node='news' jid='{self.bob.jid}'>{bad}</options>")), "bad-request", "invalid-options")
        self.assertPubSubError(self.ask_service(self.alice, pubsub(
            f"<options node='news' jid='{self.alice.jid}'/>"), "get"), "unexpected-request", "not-subscribed")

    def test_subscribe_with_options(self):
        """Options given with the subscription apply (§6.3.7)."""
        self.create()
        options = form("submit", {"pubsub#deliver": "0"}, NS_PUBSUB + "#subscribe_options")
        self.assertResult(self.ask_service(self.bob, pubsub(
            f"<subscribe node='news' jid='{self.bob.jid}'/><options>{options}</options>")))
        self.publish()
        self.assertEqual(events_of(drain(self.bob), "news"), [])

    def test_default_options(self):
        """The default subscription options form (§6.4); a missing node is item-not-found."""
        self.create()
        reply = self.ask_service(self.bob, pubsub("<default node='news'/>"), "get")
        self.assertIn("pubsub#deliver", self.assertResult(reply).toXml())
        self.assertStanzaError(self.ask_service(self.bob, pubsub("<default node='x'/>"), "get"), "item-not-found")

    def test_notify_sub(self):
        """With notify_sub, owners (at their bare JID: available resources) hear of new
        subscriptions."""
        self.create(config={"pubsub#notify_sub": "1"})
        self.alice.send("<presence/>")
        drain(self.alice)
        self.assertResult(self.subscribe(self.bob))
        [(message, event)] = events_of(drain(self.alice))
        self.assertEqual(event.firstChildElement()["jid"], self.bob.jid)
        self.assertEqual(message["to"], "alice@localhost")


class EntityListTests(ServiceCase):
    def test_own_subscriptions_and_affiliations(self):
        """An entity lists its subscriptions (§5.6) and affiliations (§5.7), optionally for
        one node."""
        self.create("a")
        self.create("b")
        self.subscribe(self.bob, "a")
        self.subscribe(self.bob, "b")
        reply = self.ask_service(self.bob, pubsub("<subscriptions/>"), "get")
        self.assertEqual([s["node"] for s in self.assertResult(reply).firstChildElement().elements()], ["a", "b"])
        reply = self.ask_service(self.bob, pubsub("<subscriptions node='b'/>"), "get")
        self.assertEqual([s["node"] for s in self.assertResult(reply).firstChildElement().elements()], ["b"])
        reply = self.ask_service(self.alice, pubsub("<affiliations/>"), "get")
        listed = [(a["node"], a["affiliation"]) for a in self.assertResult(reply).firstChildElement().elements()]
        self.assertEqual(listed, [("a", "owner"), ("b", "owner")])


class OwnerManagementTests(ServiceCase):
    def test_affiliations(self):
        """The owner lists and changes affiliations; 'none' removes one."""
        self.create()
        self.assertResult(self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='publisher'/></affiliations>")))
        self.assertResult(self.publish(client=self.bob))
        self.assertResult(self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='none'/></affiliations>")))
        reply = self.ask_service(self.alice, owner("<affiliations node='news'/>"), "get")
        self.assertEqual([a["jid"] for a in self.assertResult(reply).firstChildElement().elements()],
                         ["alice@localhost"])

    def test_affiliation_errors(self):
        """Non-owners are forbidden; an unknown affiliation is a bad request; the last owner
        cannot go (not-acceptable)."""
        self.create()
        self.assertStanzaError(self.ask_service(self.bob, owner("<affiliations node='news'/>"), "get"), "forbidden")
        self.assertStanzaError(self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='king'/></affiliations>")),
            "bad-request")
        self.assertStanzaError(self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='alice@localhost' affiliation='member'/></affiliations>")),
            "not-acceptable")

    def test_outcast_loses_subscription(self):
        """Making a subscriber an outcast cancels its subscription."""
        self.create()
        self.subscribe(self.bob)
        self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='outcast'/></affiliations>"))
        reply = self.ask_service(self.alice, owner("<subscriptions node='news'/>"), "get")
        self.assertEqual(list(self.assertResult(reply).firstChildElement().elements()), [])

    def test_subscriptions(self):
        """The owner lists subscriptions, subscribes someone and removes a subscription."""
        self.create()
        self.subscribe(self.bob)
        reply = self.ask_service(self.alice, owner("<subscriptions node='news'/>"), "get")
        [entry] = self.assertResult(reply).firstChildElement().elements()
        self.assertEqual((entry["jid"], entry["subscription"]), (self.bob.jid, "subscribed"))
        self.assertResult(self.ask_service(self.alice, owner(
            "<subscriptions node='news'><subscription jid='carol@localhost' subscription='subscribed'/>"
            f"<subscription jid='{self.bob.jid}' subscription='none'/></subscriptions>")))
        reply = self.ask_service(self.alice, owner("<subscriptions node='news'/>"), "get")
        self.assertEqual([e["jid"] for e in self.assertResult(reply).firstChildElement().elements()],
                         ["carol@localhost"])
        self.assertStanzaError(self.ask_service(self.bob, owner("<subscriptions node='news'/>"), "get"), "forbidden")
        self.assertStanzaError(self.ask_service(self.alice, owner(
            "<subscriptions node='news'><subscription jid='carol@localhost' subscription='maybe'/></subscriptions>")),
            "bad-request")


class AccountDeletionTests(ServiceCase):
    def test_subscriptions_and_affiliations_go(self):
        """Deleting an account removes its subscriptions and affiliations at the service."""
        self.create()
        self.subscribe(self.bob)
        self.ask_service(self.alice, owner(
            "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='publisher'/></affiliations>"))
        from summitd.synchronous import result_of
        self.assertTrue(result_of(self.server.account_manager.delete("bob@localhost")))
        reply = self.ask_service(self.alice, owner("<subscriptions node='news'/>"), "get")
        self.assertEqual(list(self.assertResult(reply).firstChildElement().elements()), [])
        reply = self.ask_service(self.alice, owner("<affiliations node='news'/>"), "get")
        self.assertEqual([a["jid"] for a in self.assertResult(reply).firstChildElement().elements()],
                         ["alice@localhost"])


class MemoryBackendTests(ServiceCase):
    options = {"pubsub": {"storage": "memory"}}

    def test_round_trip(self):
        """The memory store serves the service the same way."""
        self.create()
        self.publish()
        self.assertEqual(self.item_ids(self.items(self.bob, "<items node='news'/>")), ["i1"])


class TransientAndMalformedTests(ServiceCase):
    """The remaining error cases: nodes that persist nothing, malformed requests."""

    def test_transient_node(self):
        """A node with persist_items off notifies but keeps nothing: retrieval and retraction
        say unsupported persistent-items (§6.5.9.4, §7.2.3.5)."""
        self.create(config={"pubsub#persist_items": "0"})
        self.assertResult(self.subscribe(self.bob))
        self.assertResult(self.publish())
        self.assertEqual(len(events_of(drain(self.bob), "news")), 1)
        self.assertPubSubError(self.items(self.bob, "<items node='news'/>"), "feature-not-implemented", "unsupported")
        self.assertPubSubError(self.ask_service(self.alice, pubsub("<retract node='news'><item id='i1'/></retract>")),
                               "feature-not-implemented", "unsupported")

    def test_configure_without_form(self):
        """A configure set without a node_config form is a bad request."""
        self.create()
        self.assertStanzaError(self.ask_service(self.alice, owner("<configure node='news'/>")), "bad-request")

    def test_retract_without_node(self):
        """A retraction naming no node: bad-request, nodeid-required."""
        self.assertPubSubError(self.ask_service(self.alice, pubsub("<retract><item id='a'/></retract>")),
                               "bad-request", "nodeid-required")

    def test_bad_rsm(self):
        """An RSM set with both after and before is a bad request (XEP-0059)."""
        self.create()
        reply = self.items(self.bob, "<items node='news'/><set xmlns='http://jabber.org/protocol/rsm'>"
                                     "<after>a</after><before>b</before></set>")
        self.assertStanzaError(reply, "bad-request")

    def test_someone_elses_options(self):
        """Reading another entity's subscription options is forbidden (§6.3.4.1)."""
        self.create()
        self.assertResult(self.subscribe(self.bob))
        reply = self.ask_service(self.alice, pubsub(f"<options node='news' jid='{self.bob.jid}'/>"), "get")
        self.assertStanzaError(reply, "forbidden")
