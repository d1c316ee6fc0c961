"""vcard-temp (XEP-0054): each account's vCard, kept by the server and served on its behalf.

* A get to one's own account (no 'to', or one's bare JID) returns the stored vCard, or an
  empty ``<vCard/>`` when there is none: §3.1 allows that or ``item-not-found``, and an
  empty vCard is what clients can use as it is.
* A get to another account's bare JID is answered by the server (§3.3). With no vCard, and
  equally with no such account, the answer is ``service-unavailable``: the same error in
  both cases so that vCards cannot be used to harvest the account directory (§3.3,
  RFC 6121 §8.5.1).
* A set changes one's own vCard only (another's: ``forbidden``, §3.2) and replaces it whole.
  A vCard of more than ``max_size`` octets (option, default 64 KiB) is refused with
  ``not-acceptable`` and a text saying the limit (RFC 6120 §8.3.3.9, whose example is a
  stanza that is too large).

vCards are stored serialised in the keyval store "vcard", which account deletion empties.
"""

from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core.errors import StanzaError
from summitd.core.iq import ACCOUNT
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.xmlstream import parse_element
from summitd.core.xmlwriter import serialize
from summitd.extensions.base import Extension

NS_VCARD = "vcard-temp"
KEY = "vcard"
DEFAULT_MAX_SIZE = 64 * 1024


def parse_config(raw, path):
    """[extensions.vcard]: ``max_size``, the largest vCard in octets (>= 1024)."""
    unknown = [(f"{path}.{key}", "unknown option") for key in raw if key != "max_size"]
    max_size = raw.get("max_size", DEFAULT_MAX_SIZE)
    valid = isinstance(max_size, int) and not isinstance(max_size, bool) and max_size >= 1024
    if unknown or not valid:
        raise ConfigError(unknown + ([] if valid else [(f"{path}.max_size", "must be an integer >= 1024")]))
    return max_size


def _is_owner(iq, to_jid):
    try:
        return parse_jid(iq.getAttribute("from", "")).userhostJID() == to_jid
    except InvalidJID:
        return False


class VCards(Extension):
    def __init__(self, context, max_size):
        super().__init__(context)
        self.max_size = max_size
        self.store = context.keyval("vcard")
        context.iq("get", ACCOUNT, NS_VCARD, "vCard", self._get)
        context.iq("set", ACCOUNT, NS_VCARD, "vCard", self._set)
        context.add_feature(NS_VCARD)

    def start(self):
        return self.store.setup()

    def _get(self, iq, to_jid):
        owner = _is_owner(iq, to_jid)

        def answer(xml):
            if xml is not None:
                return parse_element(xml)
            if owner:
                return domish.Element((NS_VCARD, "vCard"))
            raise StanzaError("service-unavailable")

        return self.store.get(to_jid.host, to_jid.user, KEY).addCallback(answer)

    def _set(self, iq, to_jid):
        if not _is_owner(iq, to_jid):
            raise StanzaError("forbidden", "only the account itself can change its vCard")
        xml = serialize(iq.firstChildElement())
        if len(xml.encode("utf-8")) > self.max_size:
            raise StanzaError("not-acceptable", f"a vCard may have at most {self.max_size} octets")
        return self.store.set(to_jid.host, to_jid.user, KEY, xml).addCallback(lambda _: None)


def build(context, config):
    return VCards(context, config or DEFAULT_MAX_SIZE)
