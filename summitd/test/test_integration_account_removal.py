"""End to end: a user removes its account in-band (XEP-0077 §3.2) on a real summitd that runs
every bundled extension, and the server's database keeps no trace of it.

The scan is generic on purpose: every column of every table is searched for the username,
so an extension added later that forgets its ACCOUNT_DELETING handler fails this test.
"""

import os
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest

from summitd.extensions.loader import discover
from summitd.testing import make_server
from summitd.testing.process import SummitdProcessMixin

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_account.py")
LEAVER, LEAVER_PASSWORD = "departing-dora@localhost", "dora's last p\u00e4ssword"
STAYER, STAYER_PASSWORD = "staying-sam@localhost", "sam-stays=here"
PASSWORDS = {"SCENARIO_ALICE_PASSWORD": LEAVER_PASSWORD, "SCENARIO_BOB_PASSWORD": STAYER_PASSWORD}


def loadable_bundled_extensions():
    """The extensions summitd declares in twisted/plugins/ that load (alone, then all together):
    work in progress that does not load yet is left out rather than failing this test."""
    bundled = sorted(name for name, factory in discover().items()
                     if getattr(factory, "module", "").startswith("summitd."))
    loadable = []
    for name in bundled:
        try:
            make_server(extensions=[name])
        except Exception:
            continue
        loadable.append(name)
    make_server(extensions=loadable)    # together too (raises if not: that is a real bug)
    return tuple(loadable)


def rows_mentioning(database_path, text):
    """(table, row) for every row of every table with a value that contains ``text``."""
    needle = text.casefold()
    found = []
    db = sqlite3.connect(database_path)
    try:
        # Virtual tables (full-text indexes) keep their data in shadow tables, scanned here.
        tables = [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                if any(_mentions(value, needle) for value in row):
                    found.append((table, row))
    finally:
        db.close()
    return found


def _mentions(value, needle):
    if isinstance(value, str):
        return needle in value.casefold()
    if isinstance(value, bytes):
        return needle.encode("utf-8") in value.lower()
    return False


class AccountRemovalIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 180
    accounts = {LEAVER: LEAVER_PASSWORD, STAYER: STAYER_PASSWORD}

    def setUp(self):
        self.extensions = loadable_bundled_extensions()
        return super().setUp()

    @defer.inlineCallbacks
    def test_removal_leaves_no_trace(self):
        """After the in-band removal no row in any table mentions the leaver, while the
        stayer's account, vCard and private XML are all still there."""
        self.assertIn("register", self.extensions)
        env = dict(PASSWORDS, SCENARIO_OFFLINE="1" if "offline" in self.extensions else "0")
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--tls", "starttls",
                                         "--scenario", "account_removal", "--alice", LEAVER, "--bob", STAYER,
                                         env=env)
        self.assertEqual(result["removal_reply"], "result")
        self.assertEqual(result["roster"], "stored" if "roster" in self.extensions else "unsupported")
        yield self.stop_server()
        self.assertCleanServerLog()
        database = os.path.join(self.base, "var", "summitd.sqlite")
        self.assertEqual(rows_mentioning(database, LEAVER.partition("@")[0]), [])
        stayer_tables = {table for table, _ in rows_mentioning(database, STAYER.partition("@")[0])}
        self.assertTrue({"accounts", "keyval", "private_xml"} <= stayer_tables, stayer_tables)
