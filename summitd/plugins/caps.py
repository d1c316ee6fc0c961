"""Entity Capabilities (XEP-0115) of the server itself, offered as a stream feature (§6.3).

The verification string is the XEP-0115 §5.1 hash of the server's disco#info: identities,
features and XEP-0128 forms (so the XEP-0232 software version is part of it). Computing it
collects from every extension, so it is cached per domain and recomputed only when an
extension loads or unloads (the tuple of loaded extensions is the cache key). The caps node
``CAPS_NODE#ver`` answers disco#info with the same information (§6.2), through disco's
node event.

``verification_string`` reads any disco#info ``<query/>``, so checking the caps that
clients announce (for PEP notifications) can reuse it.
"""

import base64
import hashlib

from twisted.words.xish import domish

from summitd.core import events
from summitd.core.xmlstream import NS_XML
from summitd.extensions.base import Extension
from summitd.plugins.disco import NS_DISCO_INFO, NS_X_DATA, IServiceDiscovery, form_type, info_element

NS_CAPS = "http://jabber.org/protocol/caps"
CAPS_NODE = "https://summitd.example/caps"
CAPS_HASH = "sha-1"     # XEP-0115 §9.1: SHA-1 is mandatory to implement, so every client has it

#: IANA "Hash Function Textual Names" (XEP-0115 §9.1) -> hashlib constructors.
HASHES = {"sha-1": hashlib.sha1, "sha-224": hashlib.sha224, "sha-256": hashlib.sha256,
          "sha-384": hashlib.sha384, "sha-512": hashlib.sha512}


def verification_string(query, hash_name=CAPS_HASH):
    """XEP-0115 §5.1: the 'ver' of a disco#info ``<query/>`` element.

    Sorting is by code point, which for UTF-8 is the "i;octet" order the XEP asks for.
    Forms without a hidden FORM_TYPE are left out (§5.4, step 3.6)."""
    identities, features, forms = [], [], []
    for child in query.elements():
        if child.uri == NS_DISCO_INFO and child.name == "identity":
            identities.append(tuple(child.getAttribute(key, "")
                                    for key in ("category", "type", (NS_XML, "lang"), "name")))
        elif child.uri == NS_DISCO_INFO and child.name == "feature":
            features.append(child.getAttribute("var", ""))
        elif child.uri == NS_X_DATA and child.name == "x":
            kind = form_type(child)
            if kind is not None:
                forms.append((kind, sorted(_fields(child))))
    text = []
    text.extend("/".join(identity) + "<" for identity in sorted(identities))
    text.extend(feature + "<" for feature in sorted(features))
    for kind, fields in sorted(forms):
        text.append(kind + "<")
        for var, values in fields:
            text.append(var + "<")
            text.extend(value + "<" for value in sorted(values))
    digest = HASHES[hash_name]("".join(text).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def _fields(form):
    """(var, [values]) of a form's fields other than FORM_TYPE."""
    for field in form.elements(NS_X_DATA, "field"):
        var = field.getAttribute("var")
        if var is not None and var != "FORM_TYPE":
            yield var, [str(value) for value in field.elements(NS_X_DATA, "value")]


class Capabilities(Extension):
    """Puts the server's caps in every <stream:features/> and answers the caps node."""

    def __init__(self, context):
        super().__init__(context)
        self._disco = None
        self._cache = {}    # host -> (loaded extensions, ver)
        context.add_feature(NS_CAPS)
        context.hook(events.STREAM_FEATURES, self._stream_features)
        context.hook(events.DISCO_INFO_NODE, self._node_info)

    def start(self):
        self._disco = self.context.need(IServiceDiscovery)

    def ver(self, host):
        """The server's verification string for ``host`` (cached, see the module doc)."""
        loaded = self.context.loaded_extensions()
        cached = self._cache.get(host)
        if cached is None or cached[0] != loaded:
            query = info_element(self._disco.server_info(host))
            cached = self._cache[host] = (loaded, verification_string(query))
        return cached[1]

    def _stream_features(self, stream):
        if stream.host is None:
            return None
        c = domish.Element((NS_CAPS, "c"))
        c["hash"] = CAPS_HASH
        c["node"] = CAPS_NODE
        c["ver"] = self.ver(stream.host)
        return (c,)

    def _node_info(self, to_jid, node, requester):
        if to_jid.user is not None or not node.startswith(CAPS_NODE + "#"):
            return None
        if node != f"{CAPS_NODE}#{self.ver(to_jid.host)}":
            return None     # an older 'ver': item-not-found
        return self._disco.server_info(to_jid.host)


def build(context, config):
    return Capabilities(context)
