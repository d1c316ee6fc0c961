"""Packaging of plugins: twistd finds summitd, and a third-party extension installed with pip
is discovered, loaded and handles a stanza."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from twisted.trial import unittest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

SCENARIO = textwrap.dedent("""
    import summitd
    from summitd.extensions.loader import discover
    from summitd.testing import FakeClient, add_user, make_server
    assert "echo" in discover(), sorted(discover())
    server = make_server(extensions=["echo"], extension_options={"echo": {"prefix": "> "}})
    add_user(server, "alice@localhost", "pw")
    alice = FakeClient(server)
    alice.login("alice", "pw", "desk")
    alice.send("<iq type='get' id='e1' to='localhost'><echo xmlns='urn:example:echo'>hi</echo></iq>")
    alice.expect("<iq type='result' id='e1'><echo xmlns='urn:example:echo'>&gt; hi</echo></iq>")
    alice.send("<iq type='get' id='e2' to='localhost'><echo xmlns='urn:example:echo'>" + "x" * 2000
               + "</echo></iq>")
    alice.expect("<iq type='error' id='e2'><error type='modify'>"
                 "<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
    print("ECHO-OK")
""")


class PluginPackagingTests(unittest.TestCase):
    def test_twistd_lists_summitd(self):
        """`twistd --help`, run outside the repo, lists the summitd subcommand."""
        out = subprocess.run([str(BIN / "twistd"), "--help"], capture_output=True, text=True,
                             cwd="/", timeout=60)
        self.assertIn("summitd", out.stdout)

    def test_third_party_extension_installs_and_works(self):
        """examples/summitd-echo, pip-installed into a folder, is found by the plugin scan and
        answers its IQ through a whole server."""
        target = Path(self.mktemp()).absolute()
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(REPO / "examples" / "summitd-echo")],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(install.returncode, 0, install.stderr)
        self.assertTrue((target / "twisted" / "plugins" / "summitd_echo.py").exists())
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(REPO)]))
        run = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True,
                             env=env, cwd=str(target), timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("ECHO-OK", run.stdout)
