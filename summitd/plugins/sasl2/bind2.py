"""Bind 2 (XEP-0386, urn:xmpp:bind:0) and inline stream resumption (XEP-0198 §inline):
the session a SASL2 login asks for, set up before <success/> is sent.

Resumption first: a <resume/> in <authenticate/> that succeeds takes the old session over
and the bind request is ignored; one that fails puts <failed/> in <success/> and the bind
goes ahead (XEP-0198 §inline-resume). Binding:

- the resource is ``TAG/SUFFIX``: the client's <tag/> (its stable, human-readable name,
  at most 64 characters) and a short random part the server picks so that two devices
  never collide (XEP-0386 §identifiers);
- an earlier session with the same <user-agent id/> is ended (XEP-0386 §bind-request),
  a hibernating one included;
- features asked for inside <bind/> are enabled before <success/> is written, atomically:
  Message Carbons (XEP-0280), stream management (XEP-0198, its <enabled/> goes into
  <bound/>), and client state (XEP-0352 <active/>/<inactive/>);
- <bound/> carries the archive's metadata at the moment of binding (XEP-0313 §5, from the
  mam extension when it runs) and our unread summary (``unread``).

Everything routed to the new session before <success/> is written is held back and sent
right after it, so nothing a client receives precedes the answer to its login and the
archive metadata marks exactly where live delivery begins. Offline messages are not
deleted at binding, unlike XEP-0386 asks: other clients of the account that do not sync
the archive still rely on them; clients deduplicate by stanza-id.
"""

import secrets

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core.errors import StreamError
from summitd.core.jid import JID, InvalidJID, prepare_resource
from summitd.extensions.context import MissingProvider
from summitd.plugins.carbons import enable_carbons
from summitd.plugins.mam import IArchiveMetadata
from summitd.plugins.stream_management import IStreamManagement, MODULUS
from summitd.transports.c2s import NONZA
from summitd.plugins.sasl2.authenticate import SESSION_KEY, Part

NS_BIND2 = "urn:xmpp:bind:0"
NS_SM = "urn:xmpp:sm:3"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_CSI = "urn:xmpp:csi:0"
MAX_TAG = 64
#: inline features offered when the extension of that name runs
INLINE = (("carbons", NS_CARBONS), ("csi", NS_CSI))


def provider(context, interface):
    try:
        return context.need(interface)
    except MissingProvider:
        return None


class Hold:
    """The stream's outbound_hold until <success/> is written: keeps every stanza."""

    def __init__(self):
        self.held = []

    def __call__(self, stanza):
        self.held.append(stanza)
        return True


class SessionSetup(Part):
    def __init__(self, context, core, unread):
        self.context = context
        self.core = core
        self.unread = unread

    def inline(self, stream, cb):
        loaded = {name for name, _ in self.context.loaded_extensions()}
        bind = domish.Element((NS_BIND2, "bind"))
        features = bind.addElement("inline")
        sm = provider(self.context, IStreamManagement)
        offered = [var for name, var in INLINE if name in loaded] + ([NS_SM] if sm is not None else [])
        for var in offered:
            features.addElement("feature")["var"] = var
        return [bind] if sm is None else [bind, domish.Element((NS_SM, "sm"))]

    def finish(self, exchange):
        elements = []
        resume = exchange.child(NS_SM, "resume")
        sm = provider(self.context, IStreamManagement)
        if resume is not None and sm is not None:
            element, then = sm.resume_inline(exchange.stream, resume.getAttribute("previd", ""), _h(resume))
            elements.append(element)
            if then is not None:
                session = exchange.stream.session
                session.data[SESSION_KEY] = self.core.authenticated.get(exchange.stream)
                exchange.resumed = True
                exchange.full_jid = session.jid.full()
                exchange.after.append(then)
                return elements
        request = exchange.child(NS_BIND2, "bind")
        if request is None:
            return elements
        d = self._bind(exchange, request, sm)
        d.addCallback(lambda bound: elements + [bound])
        return d

    # -- binding -------------------------------------------------------------------------------

    def _bind(self, exchange, request, sm):
        stream = exchange.stream
        hold = stream.outbound_hold = Hold()
        session = stream.bind_resource(self._resource(stream, _tag(request)))
        exchange.full_jid = session.jid.full()
        self._end_same_agent(session, exchange.agent.id)
        loaded = {name for name, _ in self.context.loaded_extensions()}
        bound = domish.Element((NS_BIND2, "bound"))
        state = None
        for child in request.elements():
            if child.uri == NS_CARBONS and child.name == "enable" and "carbons" in loaded:
                enable_carbons(session)
            elif child.uri == NS_SM and child.name == "enable" and sm is not None:
                bound.addChild(sm.enable_inline(stream, child.getAttribute("resume") in ("true", "1")))
            elif child.uri == NS_CSI and child.name in ("active", "inactive") and "csi" in loaded:
                state = child
        exchange.after.append(lambda: self._release(stream, hold, state))
        d = self._about(session.jid.userhostJID())
        d.addCallback(_fill, bound)
        return d

    def _resource(self, stream, tag):
        """``TAG/SUFFIX`` (or ``SUFFIX``), free for this account."""
        for _ in range(8):
            suffix = secrets.token_urlsafe(6)
            try:
                resource = prepare_resource(f"{tag}/{suffix}" if tag else suffix)
            except InvalidJID:
                tag = None      # a tag that cannot be part of a resource is dropped
                continue
            if self.context.session(JID.from_prepared(stream.username, stream.host, resource)) is None:
                return resource
        return prepare_resource(secrets.token_urlsafe(12))

    def _end_same_agent(self, session, agent):
        if agent is None:
            return
        for other in self.context.sessions(session.jid):
            info = other.data.get(SESSION_KEY)
            if other is session or info is None or info.agent != agent:
                continue
            self.context.log.info("{new} replaces {old} (same client)", new=session.jid.full(),
                                  old=other.jid.full())
            if other.stream.state == "closed":
                other.stream.end_session()      # hibernating (stream management)
            else:
                other.stream.close(StreamError("conflict", "replaced by a new session of the same client"))

    def _about(self, account):
        """The archive metadata and the unread summary, whichever can be had."""
        calls = [self.unread.summary(account)]
        mam = provider(self.context, IArchiveMetadata)
        if mam is not None:
            calls.insert(0, mam.metadata_element(account.host, account.user))
        d = defer.DeferredList(calls, consumeErrors=True)
        d.addCallback(self._successes)
        return d

    def _successes(self, results):
        children = []
        for ok, value in results:
            if ok:
                children.append(value)
            else:
                self.context.log.failure("Bind 2: <bound/> goes without some data", value)
        return children

    def _release(self, stream, hold, state):
        """After <success/>: client state as asked, then what was held back."""
        if stream.outbound_hold is hold:
            stream.outbound_hold = None
        if stream.state == "closed":
            for stanza in hold.held:
                if stanza.name == "message":
                    self.context.route(stanza)      # the session ended before it began
            return
        if state is not None:
            self.context.run(NONZA, stream, state)  # the csi extension's own handling
        for stanza in hold.held:
            stream.send(stanza)


def _fill(children, element):
    for child in children:
        element.addChild(child)
    return element


def _tag(request):
    for child in request.elements():
        if child.uri == NS_BIND2 and child.name == "tag":
            text = str(child).strip()
            return text if 0 < len(text) <= MAX_TAG else None
    return None


def _h(element):
    try:
        h = int(element.getAttribute("h", ""))
    except ValueError:
        return None
    return h if 0 <= h < MODULUS else None
