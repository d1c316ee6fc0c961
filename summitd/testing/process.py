"""A real ``twistd summitd`` process for integration tests (ours and plugin authors').

``SummitdProcessMixin`` writes a config with free loopback ports into the test's
temp dir, creates accounts with ``summitctl``, starts summitd in a child process,
waits for its ports and always stops it by PID (SIGTERM, then SIGKILL after a
bound). ``run_scenario(script, ...)`` runs a client script (for example slixmpp,
which needs asyncio and so a process of its own) and returns the JSON object it
printed last. Nothing blocks the reactor: processes are spawned with
``spawnProcess`` and every wait is a bounded poll with ``deferLater``.
"""

import json
import os
import random
import signal
import socket
import sys

from twisted.internet import defer, error, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint

import summitd

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(summitd.__file__)))

STARTUP_TIMEOUT = 20.0      # seconds for summitd to accept connections
SCENARIO_TIMEOUT = 30       # a scenario's own bound ...
SCENARIO_KILL_AFTER = 50.0  # ... and ours, should it ignore it
TERM_GRACE = 10.0           # SIGTERM, then SIGKILL after this
ACCOUNT_TIMEOUT = 30.0

CONFIG = """\
[server]
domains = ["localhost"]
data_dir = "var"

[c2s]
endpoints = ["tcp:{port}:interface=127.0.0.1"]
direct_tls_endpoints = ["tcp:{tls_port}:interface=127.0.0.1"]
require_encryption = true

[auth]
scram_iterations = 4096

[storage]
database = "sqlite:///var/summitd.sqlite"

[extensions]
enabled = {extensions}
{extra}"""


#: Ports for test servers: below the kernel's ephemeral range (32768-60999 by default), so an
#: outgoing connection cannot take the port between choosing it and the server binding it.
TEST_PORTS = range(20000, 32000)


def free_port():
    """A loopback TCP port that was free a moment ago, outside the ephemeral range."""
    for _ in range(200):
        port = random.choice(TEST_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free test port found")


def child_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class _Collect(protocol.ProcessProtocol):
    """Collects a child's output; ``ended`` fires with its exit code (or -signal)."""

    def __init__(self, sink=None):
        self.out, self.err = [], []
        self.sink = sink
        self.ended = defer.Deferred()
        self.code = None

    def outReceived(self, data):
        self.out.append(data)
        if self.sink is not None:
            self.sink.write(data)
            self.sink.flush()

    def errReceived(self, data):
        self.err.append(data)
        if self.sink is not None:
            self.sink.write(data)
            self.sink.flush()

    def processEnded(self, reason):
        value = reason.value
        self.code = value.exitCode if value.exitCode is not None else -(value.signal or 0)
        if self.sink is not None:
            self.sink.close()
        self.ended.callback(self.code)

    @property
    def stdout(self):
        return b"".join(self.out).decode("utf-8", "replace")

    @property
    def stderr(self):
        return b"".join(self.err).decode("utf-8", "replace")


def _wait(d, seconds):
    """A Deferred firing True when ``d`` fires within ``seconds``, else False; ``d`` itself
    is left alone (its result passes through untouched)."""
    waiter = defer.Deferred()

    def fired(result):
        if not waiter.called:
            waiter.callback(True)
        return result

    def expired():
        if not waiter.called:
            waiter.callback(False)

    d.addBoth(fired)
    timer = reactor.callLater(seconds, expired)

    def done(result):
        if timer.active():
            timer.cancel()
        return result

    return waiter.addCallback(done)


@defer.inlineCallbacks
def run_process(args, env, timeout):
    """Run ``sys.executable args`` from the repo root; (code, stdout, stderr), killed
    by PID after ``timeout`` seconds."""
    proto = _Collect()
    transport = reactor.spawnProcess(proto, sys.executable, [sys.executable] + list(args),
                                     env=env, path=REPO_ROOT)
    if not (yield _wait(proto.ended, timeout)):
        try:
            transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass
        yield proto.ended
        raise AssertionError(f"{args[:3]} did not finish within {timeout} s:\n{proto.stderr}")
    return proto.code, proto.stdout, proto.stderr


class SummitdProcessMixin:
    """Starts a real summitd for one test; ``self.port``, ``self.tls_port``, ``self.log_path``.

    Class attributes set what it runs: ``extensions`` (names to enable),
    ``extra_config`` (TOML appended to the config, e.g. extension tables) and
    ``accounts`` ({jid: password}, created before the server starts).
    """

    extensions = ("ping", "version")
    extra_config = ""
    accounts = {}

    @defer.inlineCallbacks
    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.port, self.tls_port = free_port(), free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self.config_path = os.path.join(self.base, "summitd.toml")
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(CONFIG.format(port=self.port, tls_port=self.tls_port,
                                  extensions=json.dumps(list(self.extensions)), extra=self.extra_config))
        self.log_path = os.path.join(self.base, "server.log")
        self.cert_path = os.path.join(self.base, "var", "tls", "selfsigned.crt")
        self.server_proto = None
        self.server_signals = []
        for jid, password in self.accounts.items():
            yield self.add_user(jid, password)
        yield self.start_server()

    @defer.inlineCallbacks
    def add_user(self, jid, password):
        password_file = os.path.join(self.base, jid.partition("@")[0] + ".password")
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        code, out, err = yield run_process(
            ["-m", "summitd.ctl", "--config", self.config_path, "adduser", jid,
             "--password-file", password_file], child_env(), ACCOUNT_TIMEOUT)
        self.assertEqual(code, 0, f"summitctl adduser {jid} failed:\n{out}{err}")

    @defer.inlineCallbacks
    def start_server(self):
        self.server_proto = _Collect(open(self.log_path, "ab"))
        self.server_transport = reactor.spawnProcess(
            self.server_proto, sys.executable,
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", "summitd", "--config", self.config_path],
            env=child_env(), path=REPO_ROOT)
        self.server_pid = self.server_transport.pid
        self.addCleanup(self.stop_server)
        deadline = reactor.seconds() + STARTUP_TIMEOUT
        for port in (self.port, self.tls_port):
            while True:
                if self.server_proto.ended.called:
                    self.fail(f"summitd exited with {self.server_proto.code} before listening:\n"
                              f"{self.server_log()}")
                try:
                    connected = yield TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=2).connect(
                        protocol.Factory.forProtocol(protocol.Protocol))
                except (error.ConnectError, error.TimeoutError):
                    if reactor.seconds() > deadline:
                        self.fail(f"summitd did not listen on {port} within {STARTUP_TIMEOUT} s:\n"
                                  f"{self.server_log()}")
                    yield task.deferLater(reactor, 0.1, lambda: None)
                else:
                    connected.transport.abortConnection()
                    break

    @defer.inlineCallbacks
    def stop_server(self):
        """SIGTERM by PID, SIGKILL after TERM_GRACE; idempotent."""
        proto = self.server_proto
        if proto is None or proto.ended.called:
            return
        for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, 5.0)):
            if proto.ended.called:
                break
            self.server_signals.append(sig)
            try:
                os.kill(self.server_pid, sig)
            except ProcessLookupError:
                pass
            if (yield _wait(proto.ended, grace)):
                break
        if not proto.ended.called:
            raise AssertionError(f"summitd (pid {self.server_pid}) survived SIGKILL")

    def server_log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def assertCleanServerLog(self):
        """Stopped by SIGTERM alone (twistd re-raises it: exit by signal 15, or 0), and
        no traceback logged."""
        self.assertEqual(self.server_signals, [signal.SIGTERM], self.server_log())
        self.assertIn(self.server_proto.code, (0, -signal.SIGTERM), self.server_log())
        log = self.server_log()
        self.assertIn("summitd serving localhost", log)
        for bad in ("Traceback", "Unhandled Error", "Unhandled error"):
            self.assertNotIn(bad, log, f"the server log has {bad!r}:\n{log}")

    @defer.inlineCallbacks
    def run_scenario(self, script, *args, env=None):
        """Run ``script`` with this interpreter, ``--host 127.0.0.1 --timeout N`` and ``args``;
        returns the JSON object of its last output line, failing the test unless it says
        ``"ok": true``. ``env`` adds environment variables (passwords: not on command lines)."""
        code, out, err = yield run_process(
            [script, "--host", "127.0.0.1", "--timeout", str(SCENARIO_TIMEOUT)] + list(args),
            child_env(**(env or {})), SCENARIO_KILL_AFTER)
        lines = [line for line in out.splitlines() if line.strip()]
        try:
            result = json.loads(lines[-1])
        except (IndexError, ValueError):
            self.fail(f"the scenario printed no JSON (exit {code}):\n{out}\n{err}\n"
                      f"server log:\n{self.server_log()}")
        if code != 0 or not result.get("ok"):
            self.fail(f"the scenario failed (exit {code}): {result.get('reasons')}\n"
                      f"{json.dumps(result, indent=2)}\n{err[-4000:]}\nserver log:\n{self.server_log()}")
        return result
