"""What the pubsub and PEP tests share (no tests here): a server with the extensions, IQ
helpers, roster relations set up directly in the roster store, and clients that announce
entity capabilities (XEP-0115) and answer the server's disco#info query for them."""

from twisted.words.xish import domish

from summitd.core.jid import parse_jid
from summitd.plugins.caps import NS_CAPS, verification_string
from summitd.plugins.disco import NS_DISCO_INFO
from summitd.plugins.pubsub.protocol import NS_PUBSUB, NS_PUBSUB_ERRORS, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER
from summitd.plugins.roster_store import IRoster, RosterItem
from summitd.synchronous import result_of
from summitd.test.service_helpers import ServiceTestCase
from summitd.test.test_roster import drain

CAPS_NODE = "https://client.example/caps"
SERVICE = "pubsub.localhost"

__all__ = ["PubSubTestCase", "NS_PUBSUB", "NS_PUBSUB_OWNER", "NS_PUBSUB_EVENT", "NS_PUBSUB_ERRORS",
           "SERVICE", "drain", "pubsub", "owner", "form", "events_of", "caps_query"]


def pubsub(body, namespace=NS_PUBSUB):
    return f"<pubsub xmlns='{namespace}'>{body}</pubsub>"


def owner(body):
    return pubsub(body, NS_PUBSUB_OWNER)


def form(form_type, fields, form_namespace="http://jabber.org/protocol/pubsub#node_config", type="submit"):
    """A data form: ``fields`` maps var to a value or a list of values."""
    parts = [f"<field var='FORM_TYPE' type='hidden'><value>{form_namespace}</value></field>"]
    for var, values in fields.items():
        values = values if isinstance(values, list) else [values]
        parts.append(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>")
    return f"<x xmlns='jabber:x:data' type='{type}'>{''.join(parts)}</x>"


def events_of(elements, node=None):
    """The <event/> children of the messages among ``elements`` (for ``node`` if given),
    as (message, event) pairs."""
    found = []
    for element in elements:
        if element.name != "message":
            continue
        for event in element.elements(NS_PUBSUB_EVENT, "event"):
            names = [c.getAttribute("node") for c in event.elements()]
            if node is None or node in names:
                found.append((element, event))
    return found


def caps_query(features, identities=(("client", "pc", "test"),)):
    """A disco#info <query/> with these features (and its XEP-0115 verification string)."""
    query = domish.Element((NS_DISCO_INFO, "query"))
    for category, type, name in identities:
        identity = query.addElement("identity")
        identity["category"], identity["type"], identity["name"] = category, type, name
    for var in features:
        query.addElement("feature")["var"] = var
    return query, verification_string(query, "sha-1")


class PubSubTestCase(ServiceTestCase):
    """A server with disco, roster, presence, pep and pubsub and the accounts alice, bob,
    carol (no tests of its own)."""

    extensions = ("disco", "roster", "presence", "pep", "pubsub")
    users = ("alice", "bob", "carol")

    def request(self, client, payload, to=None, type="set", iq_id="q"):
        """Send an IQ; returns the reply (notifications that came first are kept in
        ``self.before_reply``)."""
        address = f" to='{to}'" if to is not None else ""
        client.send(f"<iq type='{type}' id='{iq_id}'{address}>{payload}</iq>")
        self.before_reply = []
        for element in drain(client):
            if element.name == "iq" and element.getAttribute("id") == iq_id:
                return element
            self.before_reply.append(element)
        raise AssertionError(f"no reply to {iq_id}: {[e.toXml() for e in self.before_reply]}")

    def assertPubSubError(self, reply, condition, pubsub_condition=None, iq_id="q"):
        """An IQ error with ``condition`` and, when given, the pubsub#errors condition."""
        self.assertStanzaError(reply, condition, iq_id)
        error = next(child for child in reply.elements() if child.name == "error")
        found = [child.name for child in error.elements() if child.uri == NS_PUBSUB_ERRORS]
        self.assertEqual(found, [pubsub_condition] if pubsub_condition else [], reply.toXml())

    def befriend(self, user, contact, groups=(), both=True):
        """``contact`` gets a presence subscription to ``user`` (and back when ``both``),
        written straight into the roster store; ``groups`` are the user's groups for it."""
        roster = self.server.providers[IRoster]
        user_jid, contact_jid = parse_jid(f"{user}@localhost"), parse_jid(f"{contact}@localhost")
        for owner_jid, other, kind, in_groups in ((user_jid, contact_jid, "both" if both else "from", groups),
                                                  (contact_jid, user_jid, "both" if both else "to", ())):
            item = RosterItem(contact=other.full(), subscription=kind, groups=tuple(in_groups))
            result_of(roster.update(owner_jid, other, lambda before, item=item: item))

    def online(self, user, resource="desk", features=(), befriended_by=()):
        """Log in and send initial presence announcing caps with ``features`` (none: no caps),
        answering the server's disco#info query; returns the client, what arrived is in
        ``self.arrived[(user, resource)]``."""
        client = self.login(user, resource)
        if features:
            query, ver = caps_query(features)
            client.send(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='{CAPS_NODE}' ver='{ver}'/></presence>")
        else:
            query = None
            client.send("<presence/>")
        self.arrived = getattr(self, "arrived", {})
        self.arrived[user, resource] = self.answer_caps(client, query)
        return client

    def answer_caps(self, client, query):
        """Answer every disco#info query the server sent ``client`` with ``query``; returns
        the other elements received (including what the answers set off)."""
        others = []
        pending = drain(client)
        while pending:
            element = pending.pop(0)
            payload = element.firstChildElement() if element.name == "iq" else None
            if element.getAttribute("type") == "get" and payload is not None and payload.uri == NS_DISCO_INFO:
                reply = domish.Element((None, "iq"))
                reply["type"], reply["id"], reply["to"] = "result", element["id"], element["from"]
                if query is not None:
                    answer = query if query.parent is None else _copy(query)
                    answer["node"] = payload.getAttribute("node")
                    reply.addChild(answer)
                client.send(reply.toXml())
                pending.extend(drain(client))
            else:
                others.append(element)
        return others


def _copy(query):
    return caps_query([f["var"] for f in query.elements(NS_DISCO_INFO, "feature")])[0]
