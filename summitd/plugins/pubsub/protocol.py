"""The pubsub wire format (XEP-0060): namespaces, errors, request parsing and the elements
the service sends.

Requests are parsed by wokkel's ``PubSubRequest`` (through summitd's compat shim), adapted:

* JIDs are parsed by summitd's RFC 7622 parser, never wokkel's ``internJID`` (a Twisted
  stringprep JID kept forever in a global cache: unbounded on a server);
* what wokkel does not read is read here: publish-options (§7.1.5), the RSM ``<set/>`` of an
  items request (XEP-0059), the ``notify`` attribute of a retraction (§7.2.2.1), the node
  filter of the entity subscriptions and affiliations requests (§5.6, §5.7), the owner's
  subscription changes (§8.8.2) and the default subscription options request (§6.4);
* ``max_items`` must be a positive integer (wokkel accepts "-3");
* wokkel's errors (Twisted StanzaErrors) become summitd's ``StanzaError``.

Payloads are kept as XML text, serialised so that they declare their own namespace; event
and item elements carry that text as raw XML, so a stored item is never parsed again to be
sent.
"""

from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.xish import domish
from wokkel import data_form
from wokkel.pubsub import PubSubRequest

from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.rsm import parse_rsm
from summitd.core.xmlwriter import serialize

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = NS_PUBSUB + "#owner"
NS_PUBSUB_EVENT = NS_PUBSUB + "#event"
NS_PUBSUB_ERRORS = NS_PUBSUB + "#errors"
NS_NODE_CONFIG = NS_PUBSUB + "#node_config"
NS_META_DATA = NS_PUBSUB + "#meta-data"
NS_SUBSCRIBE_OPTIONS = NS_PUBSUB + "#subscribe_options"
NS_PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"
NS_X_DATA = "jabber:x:data"

SUBSCRIPTION_STATES = frozenset({"none", "pending", "subscribed", "unconfigured"})
MAX_ITEMS_REQUEST = 10 ** 6     # a max_items beyond this is nonsense for any node we keep
MAX_ID_LENGTH = 1023            # octets of a node or item id (the JID part limit, RFC 7622)


def error(condition, pubsub_condition=None, text=None, feature=None):
    """A StanzaError with a pubsub#errors application condition (XEP-0060 §7, §11)."""
    app = None
    if pubsub_condition is not None:
        app = domish.Element((NS_PUBSUB_ERRORS, pubsub_condition))
        if feature is not None:
            app["feature"] = feature
    return StanzaError(condition, text, app_condition=app)


def unsupported(feature, text=None):
    """feature-not-implemented with <unsupported feature=.../> (XEP-0060 §11)."""
    return error("feature-not-implemented", "unsupported", text, feature)


def parse_address(text):
    """A JID from an attribute; jid-malformed when it is none."""
    try:
        return parse_jid(text)
    except InvalidJID:
        raise StanzaError("jid-malformed", f"{text!r} is not a JID") from None


def check_id(value, what):
    """A node or item id must be non-empty and of bounded length."""
    if not value or len(value.encode("utf-8")) > MAX_ID_LENGTH:
        raise StanzaError("bad-request", f"a {what} id is 1 to {MAX_ID_LENGTH} octets")
    return value


class Request(PubSubRequest):
    """One parsed request; ``verb`` names it (wokkel's verbs plus ``defaultSubscription``)."""

    publish_options = None      # the publish-options form (wokkel data_form.Form) or None
    rsm = None                  # summitd.core.rsm.RSMRequest or None
    notify = False              # a retraction asked for notifications
    subscription_changes = None  # [(JID, state, subid)] of an owner's subscriptions set

    _requestVerbMap = dict(PubSubRequest._requestVerbMap)
    _requestVerbMap[("get", NS_PUBSUB, "default")] = "defaultSubscription"
    _parameters = dict(
        PubSubRequest._parameters,
        publish=["node", "items", "publishOptions"],
        items=["node", "maxItems", "itemIdentifiers", "subidOrNone", "rsm"],
        retract=["node", "itemIdentifiers", "notify"],
        subscriptions=["nodeOrNone"],
        affiliations=["nodeOrNone"],
        subscriptionsSet=["nodeOrEmpty", "subscriptionChanges"],
        defaultSubscription=["nodeOrNone"],
    )

    def _parse_jid(self, verb):
        text = verb.getAttribute("jid")
        if not text:
            raise error("bad-request", "jid-required")
        self.subscriber = parse_address(text)

    def _parse_maxItems(self, verb):
        text = verb.getAttribute("max_items")
        if text is None:
            return
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_ITEMS_REQUEST:
            raise StanzaError("bad-request", "max_items must be a positive integer")
        self.maxItems = int(text)

    def _parse_affiliations(self, verb):
        self.affiliations = {}
        for element in verb.elements(NS_PUBSUB_OWNER, "affiliation"):
            entity = parse_address(element.getAttribute("jid") or "").bare
            affiliation = element.getAttribute("affiliation")
            if affiliation is None:
                raise StanzaError("bad-request", "an affiliation needs an 'affiliation' attribute")
            if entity in self.affiliations:
                raise StanzaError("bad-request", f"{entity.full()} is listed twice")
            self.affiliations[entity] = affiliation

    def _parse_publishOptions(self, verb):
        for child in verb.parent.elements(NS_PUBSUB, "publish-options"):
            form = data_form.findForm(child, NS_PUBLISH_OPTIONS)
            if form is None:
                if any(True for _ in child.elements()):
                    raise StanzaError("bad-request", f"publish-options needs a form of FORM_TYPE {NS_PUBLISH_OPTIONS}")
                continue    # an empty <publish-options/> asks for nothing
            if form.formType != "submit":
                raise StanzaError("bad-request", "publish-options is a form of type 'submit'")
            self.publish_options = form

    def _parse_rsm(self, verb):
        self.rsm = parse_rsm(verb.parent)

    def _parse_notify(self, verb):
        self.notify = verb.getAttribute("notify") in ("1", "true")

    def _parse_subscriptionChanges(self, verb):
        changes = []
        for element in verb.elements(NS_PUBSUB_OWNER, "subscription"):
            state = element.getAttribute("subscription")
            if state not in SUBSCRIPTION_STATES:
                raise StanzaError("bad-request", f"no subscription state {state!r}")
            jid = parse_address(element.getAttribute("jid") or "")
            changes.append((jid, state, element.getAttribute("subid")))
        self.subscription_changes = changes


def parse_request(iq):
    """The Request an IQ carries; StanzaError for a malformed one, NotImplementedError
    (feature-not-implemented) for a verb we do not know."""
    # wokkel strips the stanza's namespace and interns its addresses: give it a shell
    # holding only the type and the payload, never the stanza itself.
    shell = domish.Element((None, "iq"))
    shell["type"] = iq.getAttribute("type")
    shell.children = list(iq.elements())
    try:
        return Request.fromElement(shell)
    except jabber_error.StanzaError as e:
        raise StanzaError(e.condition, e.text, app_condition=e.appCondition) from None


# -- payloads --------------------------------------------------------------------------

def payload_text(element):
    """A payload element as XML text that declares its own namespace wherever it is put."""
    if not element.uri:
        raise error("bad-request", "invalid-payload", "the payload element needs a namespace")
    return serialize(element, "")


def item_element(item, uri=NS_PUBSUB, payload=True, publisher=False):
    """An <item/> (in ``uri``) for a stored Item, with its payload unless told otherwise."""
    element = domish.Element((uri, "item"))
    element["id"] = item.id
    if publisher and item.publisher:
        element["publisher"] = item.publisher
    if payload and item.payload:
        element.addRawXml(item.payload)
    return element


def pubsub_element(uri=NS_PUBSUB):
    return domish.Element((uri, "pubsub"))


def publish_result(node, item_id):
    """The <pubsub><publish node><item id/></publish></pubsub> answer to a publish (XEP-0060 §7.1.2)."""
    pubsub = pubsub_element()
    publish = pubsub.addElement("publish")
    publish["node"] = node
    publish.addElement("item")["id"] = item_id
    return pubsub


def event_element():
    return domish.Element((NS_PUBSUB_EVENT, "event"))


def form_element(form_type, namespace, fields):
    """A data form (XEP-0004) built directly: ``fields`` are (var, type, values, label,
    options) tuples; values and options are lists of strings."""
    form = domish.Element((NS_X_DATA, "x"))
    form["type"] = form_type
    hidden = form.addElement("field")
    hidden["var"], hidden["type"] = "FORM_TYPE", "hidden"
    hidden.addElement("value", content=namespace)
    for var, type, values, label, options in fields:
        field = form.addElement("field")
        field["var"] = var
        if type is not None and form_type != "submit":
            field["type"] = type
        if label and form_type == "form":
            field["label"] = label
        for value in values:
            field.addElement("value", content=value)
        if form_type == "form":
            for option in options:
                field.addElement("option").addElement("value", content=option)
    return form


def form_values(form):
    """{var: [values]} of a submitted wokkel Form, FORM_TYPE left out."""
    return {var: [str(v) for v in field.values] for var, field in form.fields.items() if var != "FORM_TYPE"}
