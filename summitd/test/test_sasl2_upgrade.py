"""XEP-0480 upgrade tasks: an account with only SCRAM-SHA-1 keys gets SCRAM-SHA-256 keys at
its next SASL2 login, through the UPGR-SCRAM-SHA-256 task, or directly at a PLAIN login."""

import base64
import hashlib

from summitd.core.jid import parse_jid
from summitd.sasl.scram import derive_credentials
from summitd.synchronous import result_of
from summitd.test.test_sasl2_support import NS_SASL2, PASSWORD, Sasl2TestCase, b64, child

NS_UPGRADE = "urn:xmpp:sasl:upgrade:0"
NS_SCRAM_UPGRADE = "urn:xmpp:scram-upgrade:0"
ASK = f"<upgrade xmlns='{NS_UPGRADE}'>UPGR-SCRAM-SHA-256</upgrade>"


class UpgradeTests(Sasl2TestCase):
    users = ("bob",)

    def setUp(self):
        super().setUp()
        iterations = self.server.config.auth.scram_iterations
        result_of(self.server.accounts.create(
            "localhost", "old", {"sha1": derive_credentials(PASSWORD, "sha1", iterations)}))

    def keys(self, hash_name):
        return result_of(self.server.accounts.get_credentials("localhost", "old", hash_name))

    def login(self, hash_name="sha1", inline=ASK, password=PASSWORD):
        client = self.client()
        client.open()
        return client, client.scram_login("old", password, hash_name, inline=inline)

    def test_upgrade_task(self):
        """SCRAM-SHA-1 with <upgrade/>: <continue/> offers UPGR-SCRAM-SHA-256, the server sends
        salt and iterations, the client the SaltedPassword; then SCRAM-SHA-256 works and the
        SHA-1 keys are kept."""
        self.assertFailure(self.login("sha256", inline="")[1], "not-authorized")
        client, outcome = self.login()
        self.assertEqual(outcome.name, "continue")
        self.assertEqual(str(child(child(outcome, NS_SASL2, "tasks"), NS_SASL2, "task")), "UPGR-SCRAM-SHA-256")
        client.send(f"<next xmlns='{NS_SASL2}' task='UPGR-SCRAM-SHA-256'/>")
        data = client.expect(f"<task-data xmlns='{NS_SASL2}'><salt xmlns='{NS_SCRAM_UPGRADE}'/></task-data>")
        salt_element = child(data, NS_SCRAM_UPGRADE, "salt")
        salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), base64.b64decode(str(salt_element)),
                                     int(salt_element["iterations"]))
        client.send(f"<task-data xmlns='{NS_SASL2}'><hash xmlns='{NS_SCRAM_UPGRADE}'>{b64(salted)}</hash>"
                    "</task-data>")
        client.expect(f"<success xmlns='{NS_SASL2}'/>")
        self.assertIsNotNone(self.keys("sha256"))
        self.assertEqual(self.login("sha256", inline="")[1].name, "success")
        self.assertEqual(self.login("sha1", inline="")[1].name, "success")

    def test_malformed_hash(self):
        """A <hash/> that is not a SHA-256 digest fails the login and stores nothing."""
        client, _ = self.login()
        client.send(f"<next xmlns='{NS_SASL2}' task='UPGR-SCRAM-SHA-256'/>")
        client.next()
        client.send(f"<task-data xmlns='{NS_SASL2}'><hash xmlns='{NS_SCRAM_UPGRADE}'>{b64(b'short')}</hash>"
                    "</task-data>")
        self.assertFailure(client.next(), "malformed-request")
        self.assertIsNone(self.keys("sha256"))

    def test_not_asked_no_task(self):
        """Without <upgrade/> there is no task (a client that knows none never sees one)."""
        self.assertEqual(self.login(inline="")[1].name, "success")
        self.assertIsNone(self.keys("sha256"))

    def test_nothing_to_upgrade(self):
        """An account with every key gets no task even when asking."""
        client = self.client()
        client.open()
        self.assertEqual(client.scram_login("bob", inline=ASK).name, "success")

    def test_plain_login_upgrades_directly(self):
        """A PLAIN login shows the password: the SHA-256 keys are made at once, no task."""
        client = self.client()
        client.open()
        self.assertEqual(client.plain_login("old", inline=ASK).name, "success")
        self.assertIsNotNone(self.keys("sha256"))
        self.assertEqual(self.login("sha256", inline="")[1].name, "success")

    def test_app_password_does_not_upgrade(self):
        """An app password is not the account password: no task."""
        password = result_of(self.sasl2().app_passwords.create(parse_jid("old@localhost"), "phone"))
        self.assertEqual(self.login(password=password)[1].name, "success")
        self.assertIsNone(self.keys("sha256"))
