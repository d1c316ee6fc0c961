"""summitctl, run as its console script against a real config and SQLite file."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from twisted.trial import unittest

REPO = Path(__file__).resolve().parents[2]


class SummitctlTests(unittest.TestCase):
    def setUp(self):
        self.dir = Path(self.mktemp()).absolute()
        self.dir.mkdir()
        self.config = self.dir / "summitd.toml"
        self.config.write_text(
            '[server]\ndomains = ["localhost", "example.org"]\n'
            '[storage]\ndatabase = "sqlite:///var/db.sqlite"\n'
            '[extensions]\nenabled = ["ping"]\n')
        self.password = self.dir / "pw"
        self.password.write_text("correct horse\n")

    def ctl(self, *args, expect=0):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.run([sys.executable, "-m", "summitd.ctl", "--config", str(self.config), *args],
                              capture_output=True, text=True, env=env, cwd=str(self.dir), timeout=60)
        self.assertEqual(proc.returncode, expect, proc.stderr)
        return proc.stdout + proc.stderr

    def test_account_lifecycle(self):
        """adduser, list-users, passwd, deluser; the password is never stored in clear."""
        self.assertIn("created alice@localhost", self.ctl("adduser", "Alice@LOCALHOST",
                                                          "--password-file", str(self.password)))
        self.ctl("adduser", "bob@example.org", "--password-file", str(self.password))
        self.assertIn("exists already", self.ctl("adduser", "alice@localhost", "--password-file",
                                                 str(self.password), expect=1))
        self.assertEqual(sorted(self.ctl("list-users").split()), ["alice@localhost", "bob@example.org"])
        self.ctl("passwd", "alice@localhost", "--password-file", str(self.password))
        db = self.dir / "var" / "db.sqlite"
        self.assertNotIn(b"correct horse", db.read_bytes())
        rows = sqlite3.connect(db).execute("SELECT hash_name, iterations FROM credentials "
                                           "WHERE username='alice' ORDER BY hash_name").fetchall()
        self.assertEqual(rows, [("sha1", 4096), ("sha256", 4096)])
        self.ctl("deluser", "alice@localhost")
        self.assertEqual(self.ctl("list-users").split(), ["bob@example.org"])
        self.assertIn("no account", self.ctl("deluser", "alice@localhost", expect=1))

    def test_bad_jids(self):
        """A JID of another domain or with a resource is refused with a message."""
        self.assertIn("not a domain of this server",
                      self.ctl("adduser", "a@elsewhere", "--password-file", str(self.password), expect=1))
        self.assertIn("not an account JID",
                      self.ctl("adduser", "a@localhost/r", "--password-file", str(self.password), expect=1))

    def test_check_config(self):
        """check-config accepts a good file and lists each error of a bad one with its key path."""
        self.assertIn("OK", self.ctl("check-config"))
        self.config.write_text('[server]\ndomains = 3\n[c2s]\nidle_timeout = "soon"\n'
                               '[extensions]\nenabled = ["nonesuch"]\n')
        out = self.ctl("check-config", expect=1)
        self.assertIn("server.domains:", out)
        self.assertIn("c2s.idle_timeout:", out)
        self.config.write_text('[extensions]\nenabled = ["nonesuch"]\n')
        self.assertIn("no installed extension is called 'nonesuch'", self.ctl("check-config", expect=1))

    def test_version_json(self):
        """version --json prints name, version and release date."""
        info = json.loads(self.ctl("version", "--json"))
        self.assertEqual(info["name"], "summitd")
        self.assertRegex(info["release"], r"^\d{4}-\d\d-\d\d$")

    def test_console_script_installed(self):
        """summitctl is installed as a console script next to the interpreter."""
        self.assertTrue((Path(sys.executable).parent / "summitctl").exists())

    def test_check_dns(self):
        """check dns prints what it resolved and the policy's verdict (here: a loopback resolver
        that never answers, so the lookup fails and federation would refuse)."""
        with open(self.config, "a", encoding="utf-8") as f:
            f.write('[dns]\nresolvers = ["127.0.0.1:9"]\ntimeout = 1\n')
        out = self.ctl("check", "dns", "example.test")
        self.assertIn("DNS for example.test: mode validate, resolvers 127.0.0.1:9", out)
        self.assertIn("SRV lookup failed", out)
        self.assertIn("policy: refuse", out)
