"""Several credentials per account: named app passwords with their own SCRAM keys, made,
listed and revoked with ad-hoc commands (XEP-0050) and summitctl; logins with them over
SASL2 (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN); revoking closes the sessions and FAST tokens
they opened; a password change or the account's deletion ends them."""

import argparse

from summitd.accounts import AccountError
from summitd.core.jid import parse_jid
from summitd.ctl_credentials import add, add_parser, list_passwords, revoke, run
from summitd.synchronous import result_of
from summitd.testing import FakeClient
from summitd.test.test_sasl2_support import (
    NS_BIND2, NS_COMMANDS, NS_FAST, NS_SASL2, PASSWORD, Sasl2TestCase, child, text_of)

NODE_LIST = "urn:summitd:app-passwords:list"
NODE_ADD = "urn:summitd:app-passwords:add"
NODE_REVOKE = "urn:summitd:app-passwords:revoke"
ALICE = parse_jid("alice@localhost")


def _field(form, var):
    for field in form.elements("jabber:x:data", "field"):
        if field.getAttribute("var") == var:
            return [str(v) for v in field.elements("jabber:x:data", "value")]
    return None


class AppPasswordTestCase(Sasl2TestCase):
    options = {"sasl2": {"max_app_passwords": 3, "revocation_check_interval": 60}}

    def make(self, name="phone"):
        return result_of(self.sasl2().app_passwords.create(ALICE, name))

    def app_login(self, password, mechanism="sha256", name="phone", agent=None):
        """A SASL2 login with Bind 2; returns (client, outcome)."""
        client = self.client()
        client.open()
        inline = f"<bind xmlns='{NS_BIND2}'><tag>{name}</tag></bind>"
        if mechanism == "PLAIN":
            return client, client.plain_login("alice", password, inline=inline, agent=agent)
        return client, client.scram_login("alice", password, mechanism, inline=inline, agent=agent)

    def session_of(self, outcome):
        return self.server.router.session(parse_jid(text_of(outcome, NS_SASL2, "authorization-identifier")))


class LoginTests(AppPasswordTestCase):
    def test_scram_sha_256_with_app_password(self):
        """An app password logs in with SCRAM-SHA-256, the server's signature checks out, and
        the session remembers which app password it was; the account password still works."""
        password = self.make()
        _, outcome = self.app_login(password)
        self.assertEqual(outcome.name, "success")
        origin = self.session_of(outcome).data["sasl2"].origin
        self.assertTrue(origin.startswith("app:"), origin)
        _, outcome = self.app_login(PASSWORD, name="laptop")
        self.assertEqual(self.session_of(outcome).data["sasl2"].origin, "password")

    def test_scram_sha_1_and_plain(self):
        """SCRAM-SHA-1 and PLAIN accept it too."""
        password = self.make()
        self.assertEqual(self.app_login(password, "sha1")[1].name, "success")
        self.assertEqual(self.app_login(password, "PLAIN")[1].name, "success")

    def test_each_has_its_own_keys(self):
        """Two app passwords: both log in, each as itself; a made-up one does not."""
        first, second = self.make("phone"), self.make("tablet")
        origins = {self.session_of(self.app_login(p, name=n)[1]).data["sasl2"].origin
                   for p, n in ((first, "a"), (second, "b"))}
        self.assertEqual(len(origins), 2)
        self.assertFailure(self.app_login("aaaa-bbbb-cccc-dddd-eeee")[1], "not-authorized")

    def test_not_for_rfc6120_sasl(self):
        """RFC 6120 SASL in c2s knows only the account password."""
        password = self.make()
        legacy = FakeClient(self.server)
        legacy.open_stream()
        self.assertEqual(legacy.authenticate("alice", password).name, "failure")

    def test_last_used(self):
        """A login records when the app password was last used."""
        password = self.make()
        self.clock.advance(100)
        self.app_login(password)
        (name, created, used), = list_passwords(self.server, "alice@localhost")
        self.assertEqual((name, created, used), ("phone", 0, 100))

    def test_password_change_ends_them(self):
        """A new account password has a new salt, so the app passwords stop working."""
        password = self.make()
        result_of(self.server.account_manager.set_password("alice@localhost", "brand new"))
        self.assertFailure(self.app_login(password)[1], "not-authorized")

    def test_account_deletion(self):
        """Deleting the account deletes its app passwords and keys."""
        self.make()
        result_of(self.server.account_manager.delete("alice@localhost"))
        counts = result_of(self.server.database.runInteraction("t", lambda txn: [
            txn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("sasl2_app_passwords", "sasl2_app_keys")]))
        self.assertEqual(counts, [0, 0])


class RevocationTests(AppPasswordTestCase):
    def test_revoke_closes_its_sessions_only(self):
        """Revoking an app password closes the sessions it opened (not-authorized), leaves
        the others, and it no longer logs in."""
        phone, tablet = self.make("phone"), self.make("tablet")
        phone_client, _ = self.app_login(phone, name="phone")
        tablet_client, _ = self.app_login(tablet, name="tablet")
        self.assertTrue(result_of(self.sasl2().app_passwords.revoke(ALICE, "phone")))
        phone_client.next()         # the features after <success/>
        phone_client.expect_stream_error("not-authorized")
        tablet_client.next()
        tablet_client.expect_nothing()
        self.assertFailure(self.app_login(phone)[1], "not-authorized")

    def test_revoke_ends_its_fast_tokens(self):
        """A FAST token obtained with an app password dies with it (a revoked app password)."""
        password = self.make()
        client = self.client()
        client.open()
        success = client.scram_login("alice", password,
                                     inline=f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>")
        token = child(success, NS_FAST, "token")["token"]
        fast = self.client()
        fast.open()
        self.assertEqual(fast.fast_login("alice", token).name, "success")
        self.assertTrue(fast.stream in self.sasl2().core.authenticated)
        result_of(self.sasl2().app_passwords.revoke(ALICE, "phone"))
        fast = self.client()
        fast.open()
        self.assertFailure(fast.fast_login("alice", token), "not-authorized")

    def test_revoked_elsewhere_noticed(self):
        """Revoked by summitctl (another process: only the database changes), the session
        is closed at the next revocation check."""
        password = self.make()
        client, _ = self.app_login(password)
        client.next()
        result_of(self.sasl2().app_passwords.store.revoke("localhost", "alice", "phone"))
        client.expect_nothing()
        self.clock.advance(60)
        client.expect_stream_error("not-authorized")


class CommandTests(AppPasswordTestCase):
    extensions = ("sasl2", "disco")

    def test_commands_listed(self):
        """disco#items of the commands node lists the app password commands to the user."""
        client = self.login("alice", "desk")
        reply = self.ask(client, f"<query xmlns='http://jabber.org/protocol/disco#items' node='{NS_COMMANDS}'/>",
                         to="localhost")
        nodes = [item["node"] for item in self.assertResult(reply).elements()]
        self.assertEqual(nodes[:3], [NODE_LIST, NODE_ADD, NODE_REVOKE])

    def test_add_list_revoke(self):
        """Create by form (the password is in the result, once), list, then revoke by form."""
        client = self.login("alice", "desk")
        reply = self.run_command(client, NODE_ADD, {"name": ["laptop"]})
        command = reply.firstChildElement()
        self.assertEqual(command["status"], "completed")
        form = child(command, "jabber:x:data", "x")
        password = _field(form, "password")[0]
        self.assertEqual(self.app_login(password)[1].name, "success")
        listing = child(self.run_command(client, NODE_LIST).firstChildElement(), "jabber:x:data", "x")
        names = [str(next(f.elements())) for item in listing.elements("jabber:x:data", "item")
                 for f in item.elements() if f["var"] == "name"]
        self.assertEqual(names, ["laptop"])
        reply = self.run_command(client, NODE_REVOKE, {"names": ["laptop"]})
        self.assertEqual(reply.firstChildElement()["status"], "completed")
        self.assertEqual(list_passwords(self.server, "alice@localhost"), [])

    def test_name_taken_and_limit(self):
        """A name in use, and more than max_app_passwords, are not-acceptable."""
        client = self.login("alice", "desk")
        self.make("one")
        self.assertStanzaError(self.run_command(client, NODE_ADD, {"name": ["one"]}), "not-acceptable", "c2")
        self.make("two")
        self.make("three")
        self.assertStanzaError(self.run_command(client, NODE_ADD, {"name": ["four"]}), "not-acceptable", "c2")

    def test_cancel(self):
        """Cancelling a started command ends its session."""
        client = self.login("alice", "desk")
        sessionid = self.run_command(client, NODE_ADD).firstChildElement()["sessionid"]
        client.send(f"<iq type='set' id='x' to='localhost'><command xmlns='{NS_COMMANDS}' node='{NODE_ADD}' "
                    f"sessionid='{sessionid}' action='cancel'/></iq>")
        self.assertEqual(self.assertResult(client.next(), "x")["status"], "canceled")
        client.send(f"<iq type='set' id='y' to='localhost'><command xmlns='{NS_COMMANDS}' node='{NODE_ADD}' "
                    f"sessionid='{sessionid}' action='complete'/></iq>")
        self.assertStanzaError(client.next(), "not-allowed", "y")

    def test_other_nodes_left_to_others(self):
        """A node that is not ours goes on to the IQ table (here nobody: service-unavailable)."""
        client = self.login("alice", "desk")
        self.assertStanzaError(self.run_command(client, "urn:nothing"), "service-unavailable", "c")

    def test_only_the_domains_accounts(self):
        """Run on another account's address, or by no account, the command is not ours."""
        client = self.login("alice", "desk")
        client.send(f"<iq type='set' id='z' to='bob@localhost'><command xmlns='{NS_COMMANDS}' "
                    f"node='{NODE_LIST}'/></iq>")
        self.assertStanzaError(client.next(), "service-unavailable", "z")


class SummitctlTests(AppPasswordTestCase):
    def test_functions(self):
        """add returns a working password, list shows it, revoke removes it."""
        password = add(self.server, "alice@localhost", "cli")
        self.assertEqual(self.app_login(password)[1].name, "success")
        self.assertEqual([row[0] for row in list_passwords(self.server, "alice@localhost")], ["cli"])
        self.assertTrue(revoke(self.server, "alice@localhost", "cli"))
        self.assertFalse(revoke(self.server, "alice@localhost", "cli"))

    def test_command_line(self):
        """The argparse wiring: add prints the password, list the names, errors raise."""
        parser = argparse.ArgumentParser()
        add_parser(parser.add_subparsers(dest="command"))
        lines = []
        run(self.server, parser.parse_args(["app-password", "add", "alice@localhost", "cli"]), lines.append)
        run(self.server, parser.parse_args(["app-password", "list", "alice@localhost"]), lines.append)
        self.assertIn("'cli'", lines[0])
        self.assertTrue(lines[2].startswith("cli\tcreated 1970-01-01T00:00:00Z"))
        with self.assertRaises(AccountError):
            run(self.server, parser.parse_args(["app-password", "revoke", "alice@localhost", "nope"]), lines.append)
        with self.assertRaises(AccountError):
            run(self.server, parser.parse_args(["app-password", "list", "carol@localhost"]), lines.append)


class SharedCommandsTests(AppPasswordTestCase):
    """Beside the registration extension, which owns the domain's <command/> IQs."""

    extensions = ("sasl2", "disco", "registration")
    options = {"registration": {"user_invites": True}}

    def test_both_sets_of_commands(self):
        """disco#items lists the invitation and the app password commands; each extension
        runs its own."""
        client = self.login("alice", "desk")
        reply = self.ask(client, f"<query xmlns='http://jabber.org/protocol/disco#items' node='{NS_COMMANDS}'/>",
                         to="localhost")
        nodes = {item["node"] for item in self.assertResult(reply).elements()}
        self.assertTrue({"urn:xmpp:invite#invite", NODE_LIST, NODE_ADD, NODE_REVOKE} <= nodes, nodes)
        self.assertEqual(self.run_command(client, NODE_LIST).firstChildElement()["status"], "completed")
        invite = self.run_command(client, "urn:xmpp:invite#invite")     # theirs answers, not ours
        self.assertIn("registration", self.assertStanzaError(invite, "not-allowed", "c"))
