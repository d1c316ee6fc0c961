"""Tests for invitations (XEP-0401): the ad-hoc commands (XEP-0050) that create them, the
summitctl functions (invite create/list/revoke) and the spam report listing (XEP-0377)."""

from twisted.trial import unittest

from summitd import ctl_registration
from summitd.test.test_registration import PASSWORD, STANZAS, Registrant, cancel_reason, registration_server
from summitd.testing import FakeClient, add_user, make_server

NS_COMMANDS = "http://jabber.org/protocol/commands"
CREATE = "urn:xmpp:invite#create-account"
INVITE = "urn:xmpp:invite#invite"


def token_of(uri):
    return uri.split("preauth=")[1].split(";")[0]


def result_fields(reply):
    """{var: value} of the result form of a completed command."""
    x = next(c for c in reply.firstChildElement().elements() if c.name == "x")
    return {f["var"]: str(next(f.elements())) for f in x.elements() if f.name == "field"}


class AdHocTests(unittest.TestCase):
    def setUp(self):
        self.server = registration_server(mode="invite", admins=["admin@localhost"], invite_ttl=3600)
        for user in ("admin", "alice"):
            add_user(self.server, f"{user}@localhost", PASSWORD)

    def login(self, user):
        client = FakeClient(self.server)
        client.login(user, PASSWORD, "desk")
        return client

    def command(self, client, node, body="", sessionid=None, action=None):
        attrs = f" sessionid='{sessionid}'" if sessionid else ""
        attrs += f" action='{action}'" if action else ""
        client.send(f"<iq type='set' id='c' to='localhost'><command xmlns='{NS_COMMANDS}' node='{node}'{attrs}>"
                    f"{body}</command></iq>")
        return client.expect("<iq id='c'/>")

    def test_admin_creates_an_account_invitation(self):
        """execute → form; submit → completed with the register URI and expire time; the
        token then registers exactly that username."""
        admin = self.login("admin")
        form = self.command(admin, CREATE)
        command = form.firstChildElement()
        self.assertEqual(command["status"], "executing")
        body = ("<x xmlns='jabber:x:data' type='submit'><field var='username'><value>juliet</value></field>"
                "<field var='max-uses'><value>1</value></field></x>")
        done = self.command(admin, CREATE, body, sessionid=command["sessionid"], action="complete")
        self.assertEqual(done.firstChildElement()["status"], "completed")
        fields = result_fields(done)
        self.assertTrue(fields["uri"].startswith("xmpp:juliet@localhost?register;preauth="), fields["uri"])
        self.assertEqual(fields["expire"], "1970-01-01T01:00:00Z")
        registrant = Registrant(self.server)
        registrant.select("invite")
        registrant.token(token_of(fields["uri"]))
        self.assertEqual(registrant.account("juliet").name, "success")

    def test_users_cannot_create_account_invitations(self):
        """A user who is not an administrator gets forbidden, and sees no commands."""
        alice = self.login("alice")
        reply = self.command(alice, CREATE)
        self.assertEqual(reply["type"], "error")
        self.assertEqual(next(next(reply.elements()).elements()).name, "forbidden")

    def test_user_invitation_when_allowed(self):
        """With user_invites, a user's invite command completes at once with a contact URI
        (ibr=y); registering with it subscribes the new account to the inviter."""
        self.server = registration_server(extensions=("roster", "registration"), mode="invite", user_invites=True)
        add_user(self.server, "alice@localhost", PASSWORD)
        alice = self.login("alice")
        fields = result_fields(self.command(alice, INVITE))
        self.assertTrue(fields["uri"].startswith("xmpp:alice@localhost?roster;preauth="), fields["uri"])
        self.assertTrue(fields["uri"].endswith(";ibr=y"))
        registrant = Registrant(self.server)
        registrant.select("invite")
        registrant.token(token_of(fields["uri"]))
        self.assertEqual(registrant.account("juliet").name, "success")

    def test_closed_domain_refuses(self):
        """On a closed domain an invitation would open nothing: not-allowed."""
        server = registration_server(mode="closed", admins=["admin@localhost"])
        add_user(server, "admin@localhost", PASSWORD)
        admin = FakeClient(server)
        admin.login("admin", PASSWORD, "desk")
        admin.send(f"<iq type='set' id='c' to='localhost'><command xmlns='{NS_COMMANDS}' node='{CREATE}'/></iq>")
        admin.expect(f"<iq type='error' id='c'><error><not-allowed xmlns='{STANZAS}'/></error></iq>")

    def test_disco_lists_commands_for_admins(self):
        """The commands node lists both commands to an administrator, none to a user."""
        server = registration_server(extensions=("disco", "registration"), mode="invite", admins=["admin@localhost"])
        for user in ("admin", "alice"):
            add_user(server, f"{user}@localhost", PASSWORD)
        for user, expected in (("admin", {CREATE, INVITE}), ("alice", set())):
            client = FakeClient(server)
            client.login(user, PASSWORD, "desk")
            client.send("<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'"
                        f" node='{NS_COMMANDS}'/></iq>")
            reply = client.expect("<iq type='result' id='d'/>")
            self.assertEqual({i["node"] for i in reply.firstChildElement().elements()}, expected)

    def test_unknown_session(self):
        """A submission naming a session that does not exist is a bad-request."""
        admin = self.login("admin")
        body = "<x xmlns='jabber:x:data' type='submit'/>"
        reply = self.command(admin, CREATE, body, sessionid="forged")
        self.assertEqual(next(next(reply.elements()).elements()).name, "bad-request")


class CtlTests(unittest.TestCase):
    def setUp(self):
        self.server = registration_server(extensions=("blocking", "registration"), mode="invite")

    def test_create_list_revoke(self):
        """create prints a working token; list shows it without the token; revoke stops it."""
        made = ctl_registration.create_invitation(self.server, "localhost", uses=2, lifetime=600, note="party")
        listed = ctl_registration.list_invitations(self.server)
        self.assertEqual([(i["id"], i["max_uses"], i["state"], i["note"]) for i in listed],
                         [(made["id"], 2, "usable", "party")])
        self.assertNotIn(made["token"], repr(listed))
        ctl_registration.revoke_invitation(self.server, made["id"])
        self.assertEqual(ctl_registration.list_invitations(self.server)[0]["state"], "revoked")
        registrant = Registrant(self.server)
        registrant.select("invite")
        self.assertIn("revoked", cancel_reason(registrant.token(made["token"]))[1])
        with self.assertRaises(ctl_registration.RegistrationCommandError):
            ctl_registration.revoke_invitation(self.server, made["id"])

    def test_bad_arguments(self):
        """A foreign domain, zero uses or a bad username are refused with a message."""
        for kwargs in ({"host": "example.org"}, {"host": "localhost", "uses": 0},
                       {"host": "localhost", "username": "a b"}):
            with self.assertRaises(ctl_registration.RegistrationCommandError):
                ctl_registration.create_invitation(self.server, **kwargs)

    def test_reports(self):
        """A block carrying an XEP-0377 report shows in the report listing."""
        for user in ("alice", "bob"):
            add_user(self.server, f"{user}@localhost", PASSWORD)
        alice = FakeClient(self.server)
        alice.login("alice", PASSWORD, "desk")
        alice.send("<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'>"
                   "<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>"
                   "<text>pills</text></report></item></block></iq>")
        alice.expect("<iq type='result' id='b'/>")
        reports = ctl_registration.list_reports(self.server)
        self.assertEqual([(r["reporter"], r["reported"], r["reason"], r["text"]) for r in reports],
                         [("alice@localhost", "bob@localhost", "urn:xmpp:reporting:spam", "pills")])
        self.assertEqual(ctl_registration.list_reports(self.server, "example.org"), [])

    def test_missing_tables(self):
        """Without the blocking extension there are no reports to list: a clear error."""
        server = make_server(extensions=["registration"])
        with self.assertRaises(ctl_registration.RegistrationCommandError):
            ctl_registration.list_reports(server)

    def test_durations(self):
        """summitctl durations: seconds or with a unit."""
        self.assertEqual([ctl_registration._duration(t) for t in ("90", "2m", "1h", "7d")], [90, 120, 3600, 604800])
        with self.assertRaises(ctl_registration.RegistrationCommandError):
            ctl_registration._duration("soon")
