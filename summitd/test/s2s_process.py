"""Real federating servers for integration tests: summitd and Prosody processes on 127.0.0.x.

``SummitdNode`` and ``ProsodyNode`` each write a config (domain, address, free ports,
certificate, static routes to the other nodes), create accounts, start the server as a
child process, wait until its ports accept connections and stop it by PID (SIGTERM,
then SIGKILL after a bound). Prosody has no static routes of its own: the test module
``prosody/mod_summitd_test_routes.lua`` gives it ours. ``run_federation_scenario`` runs
``slixmpp_federation.py`` (alice on one node, bob on another) and returns its JSON.
"""

import json
import os
import random
import shutil
import signal
import socket
import sys

from twisted.internet import defer, error, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint

from summitd.test.s2s_helpers import TestCA
from summitd.testing.process import REPO_ROOT, child_env, run_process

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, "slixmpp_federation.py")
PROSODY_PLUGINS = os.path.join(HERE, "prosody")
START_TIMEOUT = 30.0
STOP_GRACE = 10.0
SCENARIO_TIMEOUT = 40
PROSODY = shutil.which("prosody")
PROSODYCTL = shutil.which("prosodyctl")


_taken_ports = set()
#: Below Linux's ephemeral range (32768-60999), where other processes' outgoing connections
#: and port-0 listeners would race us for a port we only checked.
PORT_RANGE = (20000, 32000)


def unique_port(address):
    """A port free on ``address`` now and not handed out before in this process."""
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(*PORT_RANGE)
        if port in _taken_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
        _taken_ports.add(port)
        return port


def issue_certificates(base, ca, domains):
    """(cert_path, key_path) per domain, issued by ``ca`` (a TestCA), written into ``base``."""
    paths = {}
    for domain in domains:
        cert, key = ca.issue(dns=[domain], xmpp=[domain])
        paths[domain] = (os.path.join(base, f"{domain}.crt"), os.path.join(base, f"{domain}.key"))
        TestCA.write_pair(cert, key, *paths[domain])
    return paths


class _Output(protocol.ProcessProtocol):
    """Sends a child's output to a log file; ``ended`` fires with the exit status."""

    def __init__(self, path):
        self.log = open(path, "ab")
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.log.write(data)
        self.log.flush()

    errReceived = outReceived

    def processEnded(self, reason):
        self.log.close()
        self.ended.callback(reason.value)


def _within(d, seconds):
    """Deferred[bool]: whether ``d`` fired within ``seconds`` (``d`` itself is left alone)."""
    waiter = defer.Deferred()
    timer = reactor.callLater(seconds, lambda: waiter.called or waiter.callback(False))

    def fired(result):
        if not waiter.called:
            timer.cancel()
            waiter.callback(True)
        return result

    d.addBoth(fired)
    return waiter


class Node:
    """One server process; subclasses write its config (``configure(routes)``, once every
    node's ports are known) and know its command line."""

    kind = "server"

    def __init__(self, base, domain, address):
        self.base = os.path.join(base, domain)
        os.makedirs(self.base, exist_ok=True)
        self.domain = domain
        self.address = address
        self.c2s_port = unique_port(address)
        self.s2s_port = unique_port(address)
        self.log_path = os.path.join(self.base, "server.log")
        self.process = None
        self.output = None

    def command(self):
        raise NotImplementedError

    @defer.inlineCallbacks
    def start(self, testcase):
        executable, *args = self.command()
        self.output = _Output(self.log_path)
        self.process = reactor.spawnProcess(self.output, executable, [executable] + args,
                                            env=child_env(), path=self.base)
        testcase.addCleanup(self.stop)
        deadline = reactor.seconds() + START_TIMEOUT
        for port in self.ports():
            while True:
                if self.output.ended.called:
                    testcase.fail(f"{self.kind} {self.domain} exited before listening:\n{self.read_log()}")
                try:
                    connected = yield TCP4ClientEndpoint(reactor, self.address, port, timeout=2).connect(
                        protocol.Factory.forProtocol(protocol.Protocol))
                except (error.ConnectError, error.TimeoutError):
                    if reactor.seconds() > deadline:
                        testcase.fail(f"{self.kind} {self.domain} did not listen on {self.address}:{port}:\n"
                                      f"{self.read_log()}")
                    yield task.deferLater(reactor, 0.2, lambda: None)
                else:
                    connected.transport.abortConnection()
                    break

    @defer.inlineCallbacks
    def stop(self):
        """SIGTERM by PID, SIGKILL after STOP_GRACE; idempotent."""
        if self.output is None or self.output.ended.called:
            return
        for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
            try:
                os.kill(self.process.pid, sig)
            except ProcessLookupError:
                pass
            if (yield _within(self.output.ended, grace)):
                return
        raise AssertionError(f"{self.kind} pid {self.process.pid} survived SIGKILL")

    def ports(self):
        """The ports to wait for."""
        return (self.c2s_port, self.s2s_port)

    def route(self):
        return f"{self.address}:{self.s2s_port}"

    def read_log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def account(self, user, mechanism):
        """The scenario's account argument: JID@HOST:PORT/MECHANISM."""
        return f"{user}@{self.domain}@{self.address}:{self.c2s_port}/{mechanism}"


class SummitdNode(Node):
    kind = "summitd"
    mechanism = "SCRAM-SHA-256"

    def __init__(self, base, domain, address, certificate, ca_path, s2s_options="", direct_tls=False,
                 extra_domains=()):
        super().__init__(base, domain, address)
        self.domains = [domain, *extra_domains]
        self.config_path = os.path.join(self.base, "summitd.toml")
        self.certificate, self.ca_path, self.s2s_options = certificate, ca_path, s2s_options
        self.tls_port = unique_port(address) if direct_tls else None

    def ports(self):
        return super().ports() + ((self.tls_port,) if self.tls_port else ())

    def route(self):
        """How other summitd nodes reach this one: direct TLS (XEP-0368) when it listens so."""
        if self.tls_port:
            return f"tls:{self.address}:{self.tls_port}"
        return super().route()

    def configure(self, routes):
        """Write the config, with static routes to the ``routes`` nodes."""
        address, ca_path, s2s_options = self.address, self.ca_path, self.s2s_options
        cert, key = self.certificate
        static = ", ".join(f'"{node.domain}" = "{node.route()}"' for node in routes)
        direct = f'direct_tls_endpoints = ["tcp:{self.tls_port}:interface={address}"]' if self.tls_port else ""
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(f"""\
[server]
domains = {json.dumps(self.domains)}
data_dir = "var"

[c2s]
endpoints = ["tcp:{self.c2s_port}:interface={address}"]
direct_tls_endpoints = []

[tls]
certificate = "{cert}"
key = "{key}"

[extensions]
enabled = ["s2s", "roster", "presence"]

[extensions.s2s]
endpoints = ["tcp:{self.s2s_port}:interface={address}"]
ca_bundle = "{ca_path}"
static_routes = {{{static}}}
{direct}
{s2s_options}
""")

    def command(self):
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "summitd", "--config", self.config_path]

    @defer.inlineCallbacks
    def add_user(self, testcase, user, password):
        password_file = os.path.join(self.base, f"{user}.password")
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        code, out, err = yield run_process(["-m", "summitd.ctl", "--config", self.config_path, "adduser",
                                            f"{user}@{self.domain}", "--password-file", password_file],
                                           child_env(), 30)
        testcase.assertEqual(code, 0, f"summitctl adduser failed:\n{out}{err}")


class ProsodyNode(Node):
    """Debian's prosody with its own config, data and pid file, in the foreground."""

    kind = "prosody"
    mechanism = "SCRAM-SHA-1"       # Prosody 0.12 stores SCRAM-SHA-1 credentials

    def __init__(self, base, domain, address, certificate, ca_path, secure_auth):
        super().__init__(base, domain, address)
        self.config_path = os.path.join(self.base, "prosody.cfg.lua")
        self.certificate, self.ca_path, self.secure_auth = certificate, ca_path, secure_auth

    def configure(self, routes):
        """Write the config; ``routes`` are the nodes mod_summitd_test_routes sends s2s to."""
        domain, address, ca_path, secure_auth = self.domain, self.address, self.ca_path, self.secure_auth
        cert, key = self.certificate
        for folder in ("data", "certs"):
            os.makedirs(os.path.join(self.base, folder), exist_ok=True)
        static = ", ".join(f'["{node.domain}"] = {{ "{node.address}", {node.s2s_port} }}' for node in routes)
        as_root = "run_as_root = true\n" if os.getuid() == 0 else ""
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(f"""\
{as_root}pidfile = "{self.base}/prosody.pid"
data_path = "{self.base}/data"
certificates = "{self.base}/certs"
plugin_paths = {{ "{PROSODY_PLUGINS}" }}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{self.log_path}" }} }}
interfaces = {{ "{address}" }}
c2s_ports = {{ {self.c2s_port} }}
s2s_ports = {{ {self.s2s_port} }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "disco", "ping", "presence",
                    "s2s_bidi", "summitd_test_routes" }}
modules_disabled = {{ "admin_socket", "offline", "c2s_direct_tls", "s2s_direct_tls" }}
summitd_test_routes = {{ {static} }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {"true" if secure_auth else "false"}
ssl = {{ cafile = "{ca_path}" }}
VirtualHost "{domain}"
    ssl = {{ key = "{key}", certificate = "{cert}", cafile = "{ca_path}" }}
""")

    def command(self):
        return [PROSODY, "--config", self.config_path, "-F"]

    @defer.inlineCallbacks
    def add_user(self, testcase, user, password):
        """prosodyctl register, bounded; the password goes on its command line, which is
        acceptable for a throwaway test account."""
        proto = _Output(os.path.join(self.base, "prosodyctl.log"))
        transport = reactor.spawnProcess(proto, PROSODYCTL, [PROSODYCTL, "--config", self.config_path,
                                                             "register", user, self.domain, password],
                                         env=child_env(), path=self.base)
        if not (yield _within(proto.ended, 30)):
            transport.signalProcess("KILL")
            yield proto.ended
            testcase.fail("prosodyctl register did not finish within 30 s")
        status = yield proto.ended
        testcase.assertEqual(getattr(status, "exitCode", None), 0, "prosodyctl register failed")


def make_pki(testcase, domains, trusted=True):
    """(base folder, CA file, {domain: (cert, key)}) in a fresh temp folder of ``testcase``;
    with ``trusted`` False the certificates come from a CA that the CA file does not hold."""
    base = os.path.abspath(testcase.mktemp())
    os.makedirs(base)
    ca = TestCA()
    ca_path = ca.write_ca(os.path.join(base, "ca.pem"))
    return base, ca_path, issue_certificates(base, ca if trusted else TestCA("untrusted"), domains)


@defer.inlineCallbacks
def federate(testcase, ours, theirs, passwords, cafile=None):
    """Point both nodes at each other, create alice on ``ours`` and bob on ``theirs``, start
    both, run the federation scenario and stop both; returns the scenario's result."""
    ours.configure([theirs])
    theirs.configure([ours])
    yield ours.add_user(testcase, "alice", passwords["alice"])
    yield theirs.add_user(testcase, "bob", passwords["bob"])
    yield ours.start(testcase)
    yield theirs.start(testcase)
    result = yield run_federation_scenario(testcase, ours, theirs, passwords, cafile)
    yield ours.stop()
    yield theirs.stop()
    testcase.assertEqual(result["presence"]["alice_saw"].split("/")[0], f"bob@{theirs.domain}")
    testcase.assertEqual(result["presence"]["bob_saw"].split("/")[0], f"alice@{ours.domain}")
    testcase.assertEqual(set(result["messages"]), {"alice_to_bob", "bob_to_alice"})
    for node in (ours, theirs):
        if isinstance(node, SummitdNode):
            testcase.assertNotIn("Traceback", node.read_log())
    return result


def run_federation_scenario(testcase, alice_node, bob_node, passwords, cafile=None):
    """alice on ``alice_node`` and bob on ``bob_node`` subscribe, see presence, chat both ways."""
    args = ["--alice", alice_node.account("alice", alice_node.mechanism),
            "--bob", bob_node.account("bob", bob_node.mechanism)]
    if cafile:
        args += ["--cafile", cafile]
    return run_scenario(testcase, args, passwords, [alice_node, bob_node])


def run_probe_scenario(testcase, alice_node, password, jids):
    """alice on ``alice_node`` writes to each of ``jids``; the result's "probes" maps each JID
    to the error condition that came back ("none" when nothing did)."""
    args = ["--alice", alice_node.account("alice", alice_node.mechanism)]
    for jid in jids:
        args += ["--probe", jid]
    return run_scenario(testcase, args, {"alice": password, "bob": ""}, [alice_node])


@defer.inlineCallbacks
def run_scenario(testcase, args, passwords, nodes):
    """Run slixmpp_federation.py; its JSON result, or the test fails with every node's log."""
    env = child_env(SCENARIO_ALICE_PASSWORD=passwords["alice"], SCENARIO_BOB_PASSWORD=passwords["bob"])
    code, out, err = yield run_process([SCENARIO, "--timeout", str(SCENARIO_TIMEOUT)] + args, env,
                                       SCENARIO_TIMEOUT + 20)
    lines = [line for line in out.splitlines() if line.strip()]
    logs = "\n".join(f"--- {node.kind} {node.domain} log ---\n{node.read_log()[-6000:]}" for node in nodes)
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        testcase.fail(f"the scenario printed no JSON (exit {code}):\n{out}\n{err}\n{logs}")
    if code != 0 or not result.get("ok"):
        testcase.fail(f"the scenario failed: {result.get('reasons')}\n{json.dumps(result, indent=2)}\n"
                      f"{err[-3000:]}\n{logs}")
    return result


__all__ = ["ProsodyNode", "SummitdNode", "federate", "issue_certificates", "run_federation_scenario",
           "run_probe_scenario", "make_pki", "PROSODY", "REPO_ROOT"]
