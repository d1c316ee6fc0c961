"""Graceful shutdown of a real summitd process (summitd.service.SummitService.stopService).

On SIGTERM the server stops accepting, sends every client with stream management
an ``<a h/>`` for what it handled, closes the streams with ``system-shutdown``,
stores what was in flight (a hibernating session's unacknowledged messages go to
offline storage), closes the database and exits (0, or by the re-raised SIGTERM as twistd does)
within ``shutdown_grace``. The
client is chaos_client.py (raw asyncio sockets, plain text on loopback).
"""

import json
import os
import signal
import sqlite3
import sys

from twisted.internet import defer, reactor
from twisted.trial import unittest

from summitd.extensions.loader import discover
from summitd.testing.process import SummitdProcessMixin, _Collect, _wait, child_env, REPO_ROOT

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chaos_client.py")
CLIENT_PASSWORD = "chaos-pass-\u00e9"
SHUTDOWN_GRACE = 3.0

#: Stream management and, when the tree has them, delivery with offline storage (and the archive).
EXTENSIONS = ("stream_management",) + tuple(name for name in ("delivery", "offline") if name in discover())


class ClientProcess(_Collect):
    """chaos_client.py running: ``ready`` fires at its {"ready": true} line."""

    def __init__(self):
        super().__init__()
        self.ready = defer.Deferred()
        self._partial = b""

    def outReceived(self, data):
        super().outReceived(data)
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        for line in lines:
            if not self.ready.called and line.startswith(b'{"ready": true'):
                self.ready.callback(json.loads(line))

    def result(self):
        """The JSON object of the last output line (None if there is none)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            return None


class RawClientServerMixin(SummitdProcessMixin):
    """summitd allowing plain-text streams (loopback only) with a short shutdown_grace, and
    chaos_client.py to talk to it."""

    extensions = EXTENSIONS
    shutdown_grace = SHUTDOWN_GRACE

    def start_server(self):
        self._configure()
        return super().start_server()

    def _configure(self):
        with open(self.config_path, encoding="utf-8") as f:
            text = f.read()
        if "shutdown_grace" in text:
            return      # a restart: configured already
        for old, new in (("require_encryption = true", "require_encryption = false"),
                         ('data_dir = "var"\n', f'data_dir = "var"\nshutdown_grace = {self.shutdown_grace}\n')):
            self.assertIn(old, text, "the process mixin's config template changed")
            text = text.replace(old, new, 1)
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)

    @property
    def database_path(self):
        return os.path.join(self.base, "var", "summitd.sqlite")

    def spawn_client(self, mode, users, *args):
        """Start chaos_client.py; it is killed by PID at the end of the test if still running."""
        proto = ClientProcess()
        transport = reactor.spawnProcess(
            proto, sys.executable,
            [sys.executable, CLIENT, mode, "--port", str(self.port), "--users", ",".join(users)] + list(args),
            env=child_env(CHAOS_PASSWORD=CLIENT_PASSWORD), path=REPO_ROOT)
        proto.pid = transport.pid

        def kill():
            if not proto.ended.called:
                os.kill(proto.pid, signal.SIGKILL)
                return proto.ended
        self.addCleanup(kill)
        return proto

    @defer.inlineCallbacks
    def finished(self, proto, seconds):
        """The client's JSON result once it exits (within ``seconds``)."""
        if not (yield _wait(proto.ended, seconds)):
            self.fail(f"the client did not finish within {seconds} s:\n{proto.stderr[-3000:]}")
        result = proto.result()
        if result is None or not result.get("ok"):
            self.fail(f"the client failed (exit {proto.code}): {proto.stdout[-3000:]}\n{proto.stderr[-3000:]}\n"
                      f"server log:\n{self.server_log()[-5000:]}")
        return result

    def query(self, sql, params=()):
        """Rows from the server's database file (read after the server stopped)."""
        db = sqlite3.connect(self.database_path)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()


class GracefulShutdownTests(RawClientServerMixin, unittest.TestCase):
    timeout = 90
    accounts = {"alice@localhost": CLIENT_PASSWORD, "bob@localhost": CLIENT_PASSWORD}

    @defer.inlineCallbacks
    def test_sigterm(self):
        """SIGTERM: alice gets <a h='4'/> (her presence and three messages) and then the
        system-shutdown stream error; the process exits cleanly within shutdown_grace; bob's
        hibernating session's unacknowledged messages are in offline storage, the spool is
        empty, and the database passes its integrity check."""
        client = self.spawn_client("shutdown", ["alice", "bob"], "--timeout", "40")
        if not (yield _wait(client.ready, 30)):
            self.fail(f"the client never got ready:\n{client.stdout}\n{client.stderr}\n{self.server_log()}")
        self.assertEqual(client.ready.result["bob_received"], 3)
        started = reactor.seconds()
        yield self.stop_server()
        elapsed = reactor.seconds() - started
        result = yield self.finished(client, 20)
        self.assertEqual(self.server_signals, [signal.SIGTERM], self.server_log())
        # twistd ends by re-raising SIGTERM after a clean shutdown (systemd counts that as
        # success); 0 would do as well.
        self.assertIn(self.server_proto.code, (0, -signal.SIGTERM), self.server_log())
        self.assertLess(elapsed, SHUTDOWN_GRACE + 1.5)
        self.assertEqual(result["alice_elements"], ["a h=4"])
        self.assertEqual(result["alice_stream_error"], "system-shutdown")
        self.assertEqual(result["alice_acked"], [1, 2, 3])
        self.assertEqual(self.query("PRAGMA integrity_check"), [("ok",)])
        self.assertEqual(self.query("SELECT COUNT(*) FROM sm_spool"), [(0,)])
        if "offline" in EXTENSIONS:
            stored = self.query("SELECT stanza FROM offline_messages WHERE username = 'bob' ORDER BY seq")
            self.assertEqual([s.count("<body>chaos 0 ") for (s,) in stored], [1, 1, 1])
            self.assertTrue(all(f"<body>chaos 0 {n}</body>" in s for n, (s,) in zip((1, 2, 3), stored)), stored)
        self.assertNotIn("Traceback", self.server_log())
