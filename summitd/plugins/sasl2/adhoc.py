"""A small server side of Ad-Hoc Commands (XEP-0050) for commands users run on their own
account (app passwords, TOTP): listed on the domain's commands node, executed in one or
two stages.

A command is ``begin(account)`` and, for two stages, ``complete(account, values)``; both
return a ``Reply`` (or a Deferred of one): a data form to fill in (status 'executing',
the client answers with 'complete' or 'cancel'), or a result form and/or a note (status
'completed'). Only local accounts of the domain may list or run the commands, each on
its own account. Two-stage sessions expire after ``SESSION_LIFETIME`` seconds.

Sharing the commands IQ: the IQ table takes one handler per payload, and another
extension (registration's XEP-0401 invitations) owns the domain's <command/> IQs. So
these commands are taken where a client's stanza enters (``STANZA_FROM_CLIENT``), by
node, before the IQ table, and everything else goes on to whoever handles it; the
commands node's disco#items answer is the union of ours and the other handlers' (they
are asked through the same event, once). A shared command registry in the core would
make both tricks unnecessary (see the report).
"""

import secrets
from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.jid import InvalidJID, parse_jid

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_X_DATA = "jabber:x:data"
SESSION_LIFETIME = 600
MAX_SESSIONS = 1000


@dataclass
class Field:
    """One field of a form: ``var``, its type and label, and its values."""

    var: str
    type: str = "text-single"
    label: str | None = None
    values: tuple = ()
    options: tuple = ()         # (label, value) pairs of list fields
    required: bool = False


@dataclass
class Reply:
    """What a stage answers: a form to fill in (``executing``) or a result."""

    form: list | None = None            # Fields of a form to fill in
    title: str | None = None
    instructions: str | None = None
    result: list = field(default_factory=list)      # Fields of a result form
    reported: tuple = ()                # (var, label) of a table's columns
    rows: list = field(default_factory=list)        # [{var: value}] of the table
    note: str | None = None
    note_type: str = "info"


@dataclass
class Command:
    node: str
    name: str
    begin: object
    complete: object = None


def form_element(type, fields, title=None, instructions=None, reported=(), rows=()):
    x = domish.Element((NS_X_DATA, "x"))
    x["type"] = type
    if title:
        x.addElement("title", content=title)
    if instructions:
        x.addElement("instructions", content=instructions)
    for spec in fields:
        element = x.addElement("field")
        element["var"] = spec.var
        element["type"] = spec.type
        if spec.label:
            element["label"] = spec.label
        if spec.required:
            element.addElement("required")
        for label, value in spec.options:
            option = element.addElement("option")
            option["label"] = label
            option.addElement("value", content=value)
        for value in spec.values:
            element.addElement("value", content=value)
    if reported:
        header = x.addElement("reported")
        for var, label in reported:
            column = header.addElement("field")
            column["var"], column["label"] = var, label
        for row in rows:
            item = x.addElement("item")
            for var, _ in reported:
                cell = item.addElement("field")
                cell["var"] = var
                cell.addElement("value", content=row.get(var, ""))
    return x


def submitted_values(command_element):
    """{var: [values]} of the submitted form in a <command/>, {} without one."""
    for x in command_element.elements(NS_X_DATA, "x"):
        if x.getAttribute("type") in ("submit", None):
            return {f.getAttribute("var"): [str(v).strip() for v in f.elements(NS_X_DATA, "value")]
                    for f in x.elements(NS_X_DATA, "field") if f.getAttribute("var")}
    return {}


class AdHocCommands:
    def __init__(self, context):
        self.context = context
        self.commands = {}              # node -> Command, in registration order
        self.sessions = {}              # sessionid -> (node, requester full JID, expiry)
        self._asking_others = False
        context.hook(events.STANZA_FROM_CLIENT, self.take)
        context.add_feature(NS_COMMANDS)
        context.hook(events.DISCO_ITEMS_NODE, self.disco_items, Priority.DEFAULT + 100)
        context.hook(events.DISCO_INFO_NODE, self.disco_info)

    def add(self, command):
        self.commands[command.node] = command

    # -- discovery (XEP-0050 §2.2, §2.3) ---------------------------------------------------

    def _allowed(self, requester, to_jid):
        return (requester is not None and requester.user is not None and to_jid.user is None
                and requester.host == to_jid.host)

    def disco_items(self, to_jid, node, requester):
        if node != NS_COMMANDS or to_jid.user is not None or self._asking_others:
            return None
        self._asking_others = True      # the other handlers' items, then ours
        try:
            others = self.context.run(events.DISCO_ITEMS_NODE, to_jid, node, requester) or []
        finally:
            self._asking_others = False
        if not self._allowed(requester, to_jid):
            return others
        return list(others) + [(to_jid.host, c.node, c.name) for c in self.commands.values()]

    def disco_info(self, to_jid, node, requester):
        if node == NS_COMMANDS and to_jid.user is None:
            return ([], [NS_COMMANDS], [])
        command = self.commands.get(node)
        if command is None or to_jid.user is not None or not self._allowed(requester, to_jid):
            return None
        return ([("automation", "command-node", command.name)], [NS_COMMANDS, NS_X_DATA], [])

    # -- execution (XEP-0050 §3) --------------------------------------------------------------

    def take(self, session, stanza):
        """STANZA_FROM_CLIENT: a <command/> set to a domain for one of our nodes."""
        if stanza.name != "iq" or stanza.getAttribute("type") != "set":
            return None
        to = stanza.getAttribute("to")
        if to not in self.context.domains:
            return None
        request = next(stanza.elements(), None)
        if request is None or request.name != "command" or request.uri != NS_COMMANDS \
                or request.getAttribute("node") not in self.commands:
            return None
        d = defer.maybeDeferred(self.execute, stanza, parse_jid(to))
        d.addCallbacks(self._result, self._failed, callbackArgs=(stanza,), errbackArgs=(stanza,))
        return True

    def _result(self, payload, iq):
        reply = domish.Element((iq.uri, "iq"))
        reply["type"], reply["id"] = "result", iq.getAttribute("id", "")
        reply["from"], reply["to"] = iq["to"], iq["from"]
        reply.addChild(payload)
        self.context.route(reply)

    def _failed(self, failure, iq):
        if failure.check(StanzaError):
            error = failure.value
        else:
            self.context.log.failure("ad-hoc command failed", failure)
            error = StanzaError("internal-server-error")
        self.context.route(error.reply_to(iq))

    def execute(self, iq, to_jid):
        request = iq.firstChildElement()
        try:
            requester = parse_jid(iq.getAttribute("from", ""))
        except InvalidJID:
            requester = None
        if not self._allowed(requester, to_jid):
            raise StanzaError("forbidden", "commands are for the domain's own accounts")
        command = self.commands[request.getAttribute("node")]
        action = request.getAttribute("action", "execute")
        sessionid = request.getAttribute("sessionid")
        if sessionid is None:
            if action not in ("execute", "complete", "next"):
                raise StanzaError("bad-request", f"cannot {action} a command that has not begun")
            return self._answer(command, None, command.begin, requester)
        self._expire()
        known = self.sessions.pop(sessionid, None)
        if known is None or known[0] != command.node or known[1] != requester.full():
            raise StanzaError("not-allowed", "no such session", app_condition=_app_error("bad-sessionid"))
        if action == "cancel":
            return _command(command.node, sessionid, "canceled")
        if action not in ("execute", "complete", "next") or command.complete is None:
            raise StanzaError("bad-request", f"{action} is not possible here",
                              app_condition=_app_error("bad-action"))
        return self._answer(command, sessionid, command.complete, requester,
                            submitted_values(request))

    def _answer(self, command, sessionid, stage, requester, *values):
        d = defer.maybeDeferred(stage, requester.userhostJID(), *values)
        d.addCallback(self._reply, command, sessionid, requester)
        return d

    def _reply(self, reply, command, sessionid, requester):
        if reply.form is not None:
            if len(self.sessions) >= MAX_SESSIONS:
                self._expire(force=True)
            sessionid = secrets.token_urlsafe(12)
            self.sessions[sessionid] = (command.node, requester.full(),
                                        self.context.clock.seconds() + SESSION_LIFETIME)
            element = _command(command.node, sessionid, "executing")
            actions = element.addElement("actions")
            actions["execute"] = "complete"
            actions.addElement("complete")
            element.addChild(form_element("form", reply.form, reply.title, reply.instructions))
            return element
        element = _command(command.node, sessionid or secrets.token_urlsafe(12), "completed")
        if reply.note:
            note = element.addElement("note", content=reply.note)
            note["type"] = reply.note_type
        if reply.result or reply.reported:
            element.addChild(form_element("result", reply.result, reply.title, None,
                                          reply.reported, reply.rows))
        return element

    def _expire(self, force=False):
        now = self.context.clock.seconds()
        for sessionid, (_, _, expiry) in list(self.sessions.items()):
            if force or expiry <= now:
                del self.sessions[sessionid]


def _command(node, sessionid, status):
    element = domish.Element((NS_COMMANDS, "command"))
    element["node"] = node
    element["sessionid"] = sessionid
    element["status"] = status
    return element


def _app_error(name):
    return domish.Element((NS_COMMANDS, name))
