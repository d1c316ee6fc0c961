"""XMPP Ping (XEP-0199): the server answers pings addressed to it or to an account.

Pinging idle clients and dropping dead ones builds on this in the IM core.
"""

from summitd.core.iq import ACCOUNT, SERVER
from summitd.extensions.base import Extension

NS_PING = "urn:xmpp:ping"


def _pong(iq, to_jid):
    return None     # an empty result is the pong


def build(context, config):
    context.iq("get", SERVER, NS_PING, "ping", _pong)
    context.iq("get", ACCOUNT, NS_PING, "ping", _pong)
    context.add_feature(NS_PING)
    return Extension(context)
