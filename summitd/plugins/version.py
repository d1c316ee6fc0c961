"""Software Version (XEP-0092): the server says its name and version when asked.

The OS is not disclosed (XEP-0092 §4 makes it optional, and it helps attackers).
"""

from twisted.words.xish import domish

from summitd.core.iq import SERVER
from summitd.extensions.base import Extension
from summitd.version import NAME, VERSION

NS_VERSION = "jabber:iq:version"


def _version(iq, to_jid):
    query = domish.Element((NS_VERSION, "query"))
    query.addElement("name", content=NAME)
    query.addElement("version", content=VERSION)
    return query


def build(context, config):
    context.iq("get", SERVER, NS_VERSION, "query", _version)
    context.add_feature(NS_VERSION)
    return Extension(context)
