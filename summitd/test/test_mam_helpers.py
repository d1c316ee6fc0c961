"""Shared helpers of the MAM tests (no tests here): a whole server with the "mam" extension on
a fake clock, logged-in clients, and a query helper that collects results up to the IQ reply."""

from summitd.core.errors import NS_STANZA_ERRORS
from summitd.plugins.mam.query import FULLTEXT_FIELD, NS_MAM
from summitd.testing import FakeClient, add_user, make_server

NS_SID = "urn:xmpp:sid:0"
USERS = ("alice", "bob", "carol", "dave")


def error_condition(stanza):
    """The defined condition of an error stanza, or None."""
    for child in stanza.elements():
        if child.name == "error":
            for condition in child.elements():
                if condition.uri == NS_STANZA_ERRORS:
                    return condition.name
    return None


def child(element, name, uri=None):
    """The first child named ``name`` (in ``uri`` when given), or None."""
    for c in element.elements():
        if c.name == name and (uri is None or c.uri == uri):
            return c
    return None


def stanza_ids(message):
    return [(c["by"], c["id"]) for c in message.elements() if c.name == "stanza-id" and c.uri == NS_SID]


def form_xml(fields):
    """A submitted MAM query form: fields maps var -> value or list of values."""
    parts = ["<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
             f"<value>{NS_MAM}</value></field>"]
    for var, value in fields.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        parts.append(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values)
                     + "</field>")
    return "".join(parts) + "</x>"


def rsm_xml(max=None, after=None, before=None, index=None):
    parts = []
    for name, value in (("max", max), ("after", after), ("index", index)):
        if value is not None:
            parts.append(f"<{name}>{value}</{name}>")
    if before is not None:
        parts.append(f"<before>{before}</before>" if before else "<before/>")
    return "<set xmlns='http://jabber.org/protocol/rsm'>" + "".join(parts) + "</set>"


class Answer:
    """What a query got: result messages, the IQ reply, and shortcuts into both."""

    def __init__(self, results, reply):
        self.results = results
        self.reply = reply
        self.error = error_condition(reply) if reply.getAttribute("type") == "error" else None
        self.fin = child(reply, "fin", NS_MAM)

    @property
    def ids(self):
        return [child(m, "result", NS_MAM)["id"] for m in self.results]

    @property
    def bodies(self):
        found = []
        for message in self.results:
            forwarded = child(child(message, "result", NS_MAM), "forwarded")
            found.append(str(child(child(forwarded, "message"), "body")))
        return found

    def rsm(self, name):
        element = child(child(self.fin, "set"), name)
        return None if element is None else str(element)

    @property
    def first_index(self):
        return child(child(self.fin, "set"), "first")["index"]

    @property
    def complete(self):
        return self.fin.getAttribute("complete") == "true"


class MamHarness:
    """Mixin for trial TestCases: ``start()`` builds the server and logs the users in."""

    def start(self, extensions=("mam",), **options):
        # Retention tests move the clock by days: no idle timeout.
        self.server = make_server(extensions=list(extensions), extension_options={"mam": options},
                                  c2s={"idle_timeout": 10.0 ** 9})
        self.clients = {}
        for user in USERS:
            add_user(self.server, f"{user}@localhost", "pw")
        for user, resource in (("alice", "phone"), ("bob", "pc")):
            self.clients[user] = self.login(user, resource)
        self.alice, self.bob = self.clients["alice"], self.clients["bob"]
        self._iq = 0
        return self.server

    def login(self, user, resource):
        client = FakeClient(self.server)
        client.login(user, "pw", resource)
        client.send("<presence/>")
        return client

    def tick(self, seconds=1.0):
        self.server.clock.advance(seconds)

    def chat(self, sender, to, body, type="chat", extra="", receiver=None):
        """``sender`` sends a message; when ``receiver`` (a client) is given, it must arrive
        there and is returned."""
        self.tick()
        sender.send(f"<message to='{to}' type='{type}'><body>{body}</body>{extra}</message>")
        return None if receiver is None else receiver.expect("<message/>")

    def send_iq(self, client, type, payload, to=None):
        self._iq += 1
        iq_id = f"iq{self._iq}"
        address = f" to='{to}'" if to else ""
        client.send(f"<iq type='{type}' id='{iq_id}'{address}>{payload}</iq>")
        results = []
        while True:
            element = client.next()
            if element.name == "iq" and element.getAttribute("id") == iq_id:
                return results, element
            results.append(element)

    def query(self, client, fields=None, to=None, queryid="q1", flip=False, **rsm):
        body = form_xml(fields) if fields else ""
        if rsm:
            body += rsm_xml(**rsm)
        if flip:
            body += "<flip-page/>"
        qid = f" queryid='{queryid}'" if queryid else ""
        results, reply = self.send_iq(client, "set", f"<query xmlns='{NS_MAM}'{qid}>{body}</query>", to)
        return Answer(results, reply)

    def search(self, client, text, **fields):
        return self.query(client, {FULLTEXT_FIELD: text, **fields})
