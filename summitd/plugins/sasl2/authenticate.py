"""The SASL2 exchange (XEP-0388, urn:xmpp:sasl:2): one authentication from <authenticate/>
to <success/> or <failure/>, beside the RFC 6120 SASL that c2s keeps for older clients.

Why a second profile: RFC 6120 SASL ends in a stream restart, knows only success or
failure, and leaves binding, stream management and the rest to later round trips.
SASL2 drops the restart, adds <continue/> tasks (a second factor, XEP-0400; credential
upgrades, XEP-0480) and carries requests for the new session inside <authenticate/>
(Bind 2, XEP-0386; stream resumption, XEP-0198; FAST tokens, XEP-0484), so a login is
one or two round trips after the stream header.

The exchange itself knows none of those features. Each is a ``Part`` that may name
mechanisms, add elements to the <authentication/> feature and to its <inline/>, create
the mechanism the client chose, contribute tasks once the mechanism succeeded, and add
elements to <success/> (processing the inline requests). A failure at any point before
<success/> leaves the stream unauthenticated and the inline requests unprocessed
(XEP-0388 §failure); after five failures the stream is closed, as for RFC 6120 SASL.

SASL2 is offered where c2s offers SASL: after TLS, or on plain text when the operator
allowed it (``c2s.require_encryption = false``, which the unit tests use). While an
exchange is in progress the client may send only SASL2 elements (XEP-0388 §challenges);
anything else closes the stream.
"""

import base64
import binascii
import datetime
import uuid
import weakref
from dataclasses import dataclass
from typing import NamedTuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StreamError
from summitd.core.hooks import Priority
from summitd.core.xmlwriter import escape_text, serialize
from summitd.sasl.channel_binding import available_channel_bindings
from summitd.sasl.mechanism import Challenge, Failure, SASLContext, Success
from summitd.transports.c2s import NONZA

NS_SASL2 = "urn:xmpp:sasl:2"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
MAX_FAILURES = 5            # per stream, as c2s allows for RFC 6120 SASL
MAX_AGENT_TEXT = 256        # characters kept of <software/> and <device/>
SESSION_KEY = "sasl2"       # session.data: the SessionInfo of a session SASL2 authenticated
PASSWORD = "password"       # the origin of a login with the account password

log = Logger()


@dataclass(frozen=True)
class UserAgent:
    """The client installation (XEP-0388 §initiation): a UUID, and texts for the user."""

    id: str | None
    software: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class SessionInfo:
    """What authenticated a session: kept in ``session.data[SESSION_KEY]`` so that
    revoking a credential can find the sessions it opened. ``origin`` is ``PASSWORD`` or
    ``"app:<id>"`` (an app password; a FAST token inherits the origin it was issued to)."""

    agent: str | None
    origin: str
    mechanism: str


class TaskData(NamedTuple):
    """A task wants another exchange: send ``element`` inside <task-data/>."""

    element: object


class TaskDone(NamedTuple):
    """A task completed; ``element`` (optional) goes into the next <success/>."""

    element: object = None


class AuthFailure(Exception):
    """Raised by a part to fail the exchange with a SASL condition (RFC 6120 §6.5)."""

    def __init__(self, condition, text=None):
        super().__init__(condition, text)
        self.condition = condition
        self.text = text


class Part:
    """One feature plugged into the exchange; every method is optional.

    ``cb`` is the stream's channel bindings ({type: data getter}); methods that may do
    I/O return a list or a Deferred of one."""

    def mechanisms(self, stream, cb):
        """Mechanism names for <authentication/>."""
        return ()

    def advertise(self, stream, cb):
        """Elements for <authentication/> beside the mechanisms (XEP-0480 <upgrade/>)."""
        return ()

    def inline(self, stream, cb):
        """Elements for <authentication><inline/>."""
        return ()

    def mechanism(self, name, exchange):
        """The ISASLMechanism for ``name`` if this part provides it, else None."""
        return None

    def tasks(self, exchange):
        """Tasks to run after the mechanism succeeded (objects with ``name``, ``text``,
        ``start(exchange, next_element)`` and ``step(exchange, task_data_element)``, each
        returning TaskData, TaskDone or a sasl Failure, or a Deferred of one)."""
        return ()

    def finish(self, exchange):
        """Elements for <success/>: process the inline requests. The stream is
        authenticated by now; errors here are logged and cost only this part's elements."""
        return ()


class Exchange:
    """One authentication in progress on one stream."""

    def __init__(self, stream, request, agent, channel_bindings, advertised):
        self.stream = stream
        self.request = request              # the <authenticate/> element
        self.agent = agent                  # UserAgent
        self.channel_bindings = channel_bindings
        self.advertised = advertised        # the mechanism names offered (XEP-0474)
        self.mechanism_name = request.getAttribute("mechanism", "")
        self.mechanism = None
        self.username = None
        self.origin = PASSWORD
        self.via_fast = False               # authenticated with a FAST token
        self.additional_data = None
        self.tasks = []                     # pending tasks, the first one offered next
        self.task = None                    # the task the client started
        self.offered = None                 # the task offered in the last <continue/>
        self.task_results = []
        self.continued = False              # a <continue/> was sent
        self.busy = False
        self.full_jid = None                # set by binding or resumption
        self.resumed = False
        self.after = []                     # callables run once <success/> is written

    @property
    def bare_jid(self):
        return f"{self.username}@{self.stream.host}"

    def child(self, uri, name):
        """The first child of <authenticate/> named {uri}name, or None."""
        for element in self.request.elements():
            if element.name == name and element.uri == uri:
                return element
        return None

    def children(self, uri, name):
        return [e for e in self.request.elements() if e.name == name and e.uri == uri]

    def sasl_context(self, lookup_credentials):
        """The SASLContext for this exchange's mechanism."""
        stream = self.stream
        cb_types = tuple(self.channel_bindings)
        return SASLContext(
            lookup_credentials=lookup_credentials,
            channel_bindings=self.channel_bindings,
            advertised_mechanisms=self.advertised,
            advertised_cb_types=cb_types or None,
            secure=stream.secure,
            secret=stream.server.secret,
            fake_iterations=stream.server.config.auth.scram_iterations,
        )


class Sasl2:
    """Offers SASL2 and runs every exchange."""

    def __init__(self, context, parts):
        self.context = context
        self.parts = list(parts)
        self.exchanges = weakref.WeakKeyDictionary()        # stream -> Exchange in progress
        self.authenticated = weakref.WeakKeyDictionary()    # stream -> SessionInfo
        self.failures = weakref.WeakKeyDictionary()         # stream -> failed exchanges
        context.hook(events.STREAM_FEATURES, self.features)
        context.hook(NONZA, self.nonza, Priority.SECURITY)
        context.hook(events.SESSION_BOUND, self.session_bound, Priority.SECURITY + 10)

    # -- what is offered ----------------------------------------------------------------------

    @staticmethod
    def offered(stream):
        return stream.state == "connected" and (stream.secure or not stream.config.require_encryption)

    @staticmethod
    def channel_bindings(stream):
        conn = stream.tls_connection()
        return {} if conn is None else available_channel_bindings(conn)

    def mechanism_names(self, stream, cb):
        return tuple(name for part in self.parts for name in part.mechanisms(stream, cb))

    def features(self, stream):
        if not self.offered(stream):
            return None
        cb = self.channel_bindings(stream)
        names = self.mechanism_names(stream, cb)
        if not names:
            return None     # XEP-0388 §discovery: never offered without a mechanism
        feature = domish.Element((NS_SASL2, "authentication"))
        for name in names:
            feature.addElement("mechanism", content=name)
        for part in self.parts:
            for element in part.advertise(stream, cb):
                feature.addChild(element)
        inline = [element for part in self.parts for element in part.inline(stream, cb)]
        if inline:
            holder = feature.addElement("inline")
            for element in inline:
                holder.addChild(element)
        return [feature]

    # -- what the client sends ------------------------------------------------------------------

    def nonza(self, stream, element):
        exchange = self.exchanges.get(stream)
        if element.uri != NS_SASL2:
            if exchange is not None:
                stream.close(StreamError("policy-violation", "only SASL2 elements while authenticating"))
                return True
            return None
        if stream.state != "connected":
            return None     # after <success/>: c2s answers with a stream error (XEP-0388 §rules)
        if not self.offered(stream):
            stream.close(StreamError("policy-violation", "STARTTLS first"))
            return True
        name = element.name
        if name == "abort":
            self.abort(stream, exchange)
        elif exchange is not None and exchange.busy:
            stream.close(StreamError("policy-violation", "one SASL2 step at a time"))
        elif name == "authenticate":
            self.authenticate(stream, element, exchange)
        elif exchange is None:
            stream.close(StreamError("policy-violation", f"<{name}/> without an authentication"))
        elif name == "response":
            self.response(exchange, element)
        elif name == "next":
            self.next_task(exchange, element)
        elif name == "task-data":
            self.task_data(exchange, element)
        else:
            stream.close(StreamError("unsupported-stanza-type", f"unknown SASL2 element <{name}/>"))
        return True

    def authenticate(self, stream, request, previous):
        if previous is not None and previous.continued:
            stream.close(StreamError("policy-violation", "<authenticate/> after <continue/>"))
            return
        self.exchanges.pop(stream, None)
        if stream.server.address_login_limited(stream.peer):
            reply_failure(stream, "temporary-auth-failure", "too many failed logins; try later")
            return
        cb = self.channel_bindings(stream)
        exchange = Exchange(stream, request, _user_agent(request), cb, self.mechanism_names(stream, cb))
        for part in self.parts:
            exchange.mechanism = part.mechanism(exchange.mechanism_name, exchange)
            if exchange.mechanism is not None:
                break
        else:
            reply_failure(stream, "invalid-mechanism")
            return
        self.exchanges[stream] = exchange
        initial = _child(request, NS_SASL2, "initial-response")
        response = None if initial is None else _decode(initial)
        if response is False:
            self.fail(exchange, Failure("incorrect-encoding"))
            return
        self._step(exchange, response)

    def response(self, exchange, element):
        if exchange.username is not None:
            self.fail(exchange, Failure("malformed-request", "the mechanism has finished"))
            return
        response = _decode(element)
        if response is False:
            self.fail(exchange, Failure("incorrect-encoding", username=exchange.username))
            return
        self._step(exchange, response)

    def abort(self, stream, exchange):
        """XEP-0388 §abort: the exchange ends, nothing is counted against the client."""
        self.exchanges.pop(stream, None)
        if exchange is not None:
            log.info("c2s {peer} aborted SASL2 authentication", peer=stream.peer)
        reply_failure(stream, "aborted")

    def next_task(self, exchange, element):
        task = exchange.offered
        if task is None or element.getAttribute("task") != task.name:
            self.fail(exchange, Failure("malformed-request", "that task was not offered",
                                        exchange.username))
            return
        exchange.task, exchange.offered = task, None
        self._run(exchange, task.start, element, self._task_outcome)

    def task_data(self, exchange, element):
        if exchange.task is None:
            self.fail(exchange, Failure("malformed-request", "no task in progress", exchange.username))
            return
        self._run(exchange, exchange.task.step, element, self._task_outcome)

    # -- driving the exchange ----------------------------------------------------------------

    def _current(self, exchange):
        """Whether the exchange still matters (not aborted, replaced, or its stream gone)."""
        return self.exchanges.get(exchange.stream) is exchange and exchange.stream.state == "connected"

    def _run(self, exchange, fn, argument, outcome_handler):
        exchange.busy = True
        d = defer.maybeDeferred(fn, exchange, argument)
        d.addCallback(outcome_handler, exchange)
        d.addErrback(self._error, exchange)

    def _step(self, exchange, response):
        self._run(exchange, lambda _exchange, data: exchange.mechanism.step(data), response,
                  self._mechanism_outcome)

    def _mechanism_outcome(self, outcome, exchange):
        exchange.busy = False
        if not self._current(exchange):
            return
        if isinstance(outcome, Challenge):
            send(exchange.stream, "challenge", base64.b64encode(outcome.data).decode("ascii"))
        elif isinstance(outcome, Success):
            self._authenticated(exchange, outcome)
        else:
            self.fail(exchange, outcome)

    def _authenticated(self, exchange, outcome):
        stream = exchange.stream
        if stream.server.account_login_limited(stream.host, outcome.username):
            self.fail(exchange, Failure("temporary-auth-failure", "too many failed logins; try later"))
            return
        if outcome.authzid and outcome.authzid != f"{outcome.username}@{stream.host}":
            self.fail(exchange, Failure("invalid-authzid", username=outcome.username))
            return
        exchange.username = outcome.username
        exchange.additional_data = outcome.data
        exchange.origin = getattr(exchange.mechanism, "origin", None) or PASSWORD
        self._run(exchange, lambda ex, _: self._collect("tasks", ex), None, self._tasks_known)

    def _tasks_known(self, tasks, exchange):
        exchange.busy = False
        if self._current(exchange):
            exchange.tasks = list(tasks)
            self._advance(exchange)

    def _task_outcome(self, outcome, exchange):
        exchange.busy = False
        if not self._current(exchange):
            return
        if isinstance(outcome, TaskData):
            wrapper = domish.Element((NS_SASL2, "task-data"))
            wrapper.addChild(outcome.element)
            exchange.stream.send_raw(serialize(wrapper))
        elif isinstance(outcome, TaskDone):
            exchange.tasks.pop(0)
            exchange.task = None
            if outcome.element is not None:
                exchange.task_results.append(outcome.element)
            self._advance(exchange)
        else:
            self.fail(exchange, outcome)

    def _advance(self, exchange):
        """Offer the next task in a <continue/>, or finish."""
        if not exchange.tasks:
            self._finish(exchange)
            return
        task = exchange.offered = exchange.tasks[0]
        element = domish.Element((NS_SASL2, "continue"))
        if not exchange.continued:
            _add_data(element, exchange.additional_data)
        element.addElement("tasks").addElement("task", content=task.name)
        if task.text:
            element.addElement("text", content=task.text)
        exchange.continued = True
        exchange.stream.send_raw(serialize(element))

    def _finish(self, exchange):
        stream = exchange.stream
        self.authenticated[stream] = SessionInfo(exchange.agent.id, exchange.origin,
                                                 exchange.mechanism_name)
        stream.finish_authentication(exchange.username, restart=False)
        exchange.busy = True
        d = self._collect("finish", exchange, tolerant=True)
        d.addCallback(self._succeed, exchange)
        d.addErrback(self._error, exchange)

    def _succeed(self, elements, exchange):
        stream = exchange.stream
        self.exchanges.pop(stream, None)
        if stream.state != "closed":
            self._write_success(exchange, elements)
        for after in exchange.after:    # also when the stream is gone: they clean up
            after()

    def _write_success(self, exchange, elements):
        stream = exchange.stream
        success = domish.Element((NS_SASL2, "success"))
        if not exchange.continued:
            _add_data(success, exchange.additional_data)
        for element in exchange.task_results:
            success.addChild(element)
        success.addElement("authorization-identifier", content=exchange.full_jid or exchange.bare_jid)
        for element in elements:
            success.addChild(element)
        stream.send_raw(serialize(success))
        log.info("c2s {peer} authenticated as {jid} with SASL2 {mechanism}", peer=stream.peer,
                 jid=exchange.full_jid or exchange.bare_jid, mechanism=exchange.mechanism_name)
        if not exchange.resumed:    # XEP-0198 §inline-resume: no features after resumption
            stream.send_features()

    @defer.inlineCallbacks
    def _collect(self, method, exchange, tolerant=False):
        """Every part's answer to ``method(exchange)``, concatenated, in part order."""
        collected = []
        for part in self.parts:
            try:
                found = yield defer.maybeDeferred(getattr(part, method), exchange)
            except AuthFailure:
                if tolerant:
                    continue
                raise
            except Exception:
                if not tolerant:
                    raise
                log.failure("SASL2 {part} failed to {method}", part=type(part).__name__, method=method)
                continue
            collected.extend(found or ())
        return collected

    def _error(self, failure, exchange):
        exchange.busy = False
        if failure.check(AuthFailure):
            outcome = Failure(failure.value.condition, failure.value.text, exchange.username)
        else:
            log.failure("SASL2 exchange failed", failure)
            outcome = Failure("temporary-auth-failure", username=exchange.username)
        if self._current(exchange):
            self.fail(exchange, outcome)
        elif exchange.stream.state not in ("connected", "closed"):
            exchange.stream.close(StreamError("internal-server-error"))     # failed while finishing

    def fail(self, exchange, outcome):
        """Send <failure/>; the stream stays unauthenticated and may try again."""
        stream = exchange.stream
        self.exchanges.pop(stream, None)
        stream.server.record_login_failure(stream.peer, stream.host, outcome.username)
        log.info("c2s {peer} failed SASL2 authentication{who}: {condition}", peer=stream.peer,
                 who=f" as {outcome.username}" if outcome.username else "", condition=outcome.condition)
        failures = self.failures[stream] = self.failures.get(stream, 0) + 1
        reply_failure(stream, outcome.condition, outcome.text)
        if failures >= MAX_FAILURES:
            stream.close(StreamError("policy-violation", "too many failed authentication attempts"))

    # -- sessions -----------------------------------------------------------------------------

    def session_bound(self, session):
        info = self.authenticated.get(session.stream)
        if info is not None:
            session.data[SESSION_KEY] = info


def format_time(seconds):
    """The XEP-0082 DateTime (UTC, whole seconds) of a time in seconds since the epoch."""
    moment = datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def send(stream, name, text):
    stream.send_raw(f"<{name} xmlns='{NS_SASL2}'>{escape_text(text)}</{name}>")


def reply_failure(stream, condition, text=None):
    body = f"<{condition} xmlns='{NS_SASL}'/>"
    if text:
        body += f"<text>{escape_text(text)}</text>"
    stream.send_raw(f"<failure xmlns='{NS_SASL2}'>{body}</failure>")


def _add_data(element, data):
    if data is not None:
        element.addElement("additional-data", content=base64.b64encode(data).decode("ascii"))


def _child(element, uri, name):
    for child in element.elements():
        if child.name == name and child.uri == uri:
            return child
    return None


def _decode(element):
    """The base64 content of a SASL2 element (empty: b""); False when not base64."""
    text = "".join(str(element).split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False


def _user_agent(request):
    element = _child(request, NS_SASL2, "user-agent")
    if element is None:
        return UserAgent(None)
    agent_id = element.getAttribute("id")
    try:
        agent_id = None if agent_id is None else str(uuid.UUID(agent_id))
    except ValueError:
        agent_id = None     # XEP-0388: a UUID; anything else is no id
    texts = {}
    for name in ("software", "device"):
        child = _child(element, NS_SASL2, name)
        texts[name] = None if child is None else str(child).strip()[:MAX_AGENT_TEXT]
    return UserAgent(agent_id, **texts)
