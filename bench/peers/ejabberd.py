"""ejabberd under test (Debian's package), run through its own ``ejabberdctl`` with a config
directory, spool, log folder and node name of its own (``--config-dir``, ``--config``,
``--ctl-config``, ``--spool``, ``--logs``; ``ERL_DIST_PORT`` so that no epmd is started).

The node runs as the ``ejabberd`` user: ``ejabberdctl`` would ``su`` to it when started as
root, and ``su`` resets the open-files limit to 1024 (too few for 10,000 sessions), so we
start ``ejabberdctl`` as that user ourselves, with our limit; the work folder is theirs. Accounts come in one XEP-0227 (PIEFXIS) file
through ``ejabberdctl import_piefxis``, with their SCRAM-SHA-256 keys: no PBKDF2 in the
server or the load generator. ejabberd 23.01 keeps SCRAM keys base64-encoded in Mnesia
and its importer stores the decoded <salt/>, <stored-key/> and <server-key/> as they are,
so the file holds them base64-encoded twice (once is what a login would choke on)."""

import base64
import os
import pwd
import shutil
import subprocess
from string import Template

from peers.process import ServerProcess, descendant_named, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
USER = "ejabberd"


def available():
    """(usable, why not)."""
    if shutil.which("ejabberdctl") is None:
        return False, "ejabberdctl not installed"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return False, f"no {USER} user"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != USER:
        return False, f"ejabberdctl runs only as root or {USER}"
    return True, ""


def _b64twice(data):
    return base64.b64encode(base64.b64encode(data)).decode("ascii")


class Ejabberd(ServerProcess):
    name = "ejabberd"
    start_timeout = 60.0

    def __init__(self, work, domain, iterations):
        super().__init__(work)
        self.domain = domain
        self.iterations = iterations
        self.dist_port = free_port()
        self.node = f"summitdbench{self.port}"
        self.log_path = os.path.join(work, "logs", "ejabberd.log")
        self.accounts = None
        self.imported = False

    def env(self):
        env = dict(os.environ)
        env["HOME"] = pwd.getpwnam(USER).pw_dir      # the node's Erlang cookie lives there
        return env

    def preexec(self):
        entry = pwd.getpwnam(USER)
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)

    def _run_ctl(self, *args, timeout=60, check=False):
        return subprocess.run(self._ctl() + list(args), check=check, timeout=timeout, cwd=self.work,
                              env=self.env(), preexec_fn=self.preexec,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _ctl(self):
        w = self.work
        return ["ejabberdctl", "--config-dir", w, "--config", os.path.join(w, "ejabberd.yml"),
                "--ctl-config", os.path.join(w, "ejabberdctl.cfg"), "--logs", os.path.join(w, "logs"),
                "--spool", os.path.join(w, "spool")]

    def setup(self, accounts):
        w = self.work
        for sub in ("logs", "spool"):
            os.makedirs(os.path.join(w, sub), exist_ok=True)
        values = dict(domain=self.domain, host=self.host, port=self.port, node=self.node,
                      dist_port=self.dist_port)
        for name in ("ejabberd.yml", "ejabberdctl.cfg"):
            with open(os.path.join(HERE, name + ".in"), encoding="utf-8") as f:
                text = Template(f.read()).substitute(values)
            with open(os.path.join(w, name), "w", encoding="utf-8") as f:
                f.write(text)
        shutil.copy("/etc/ejabberd/inetrc", os.path.join(w, "inetrc"))
        with open(os.path.join(w, "users.xml"), "w", encoding="utf-8") as f:
            f.write("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n"
                    f"<host jid='{self.domain}'>\n")
            for a in accounts:
                _, stored, server = a.keys["sha256"]
                f.write(f"<user name='{a.user}'><scram-credentials xmlns='urn:xmpp:pie:0#scram' "
                        f"mechanism='SCRAM-SHA-256'><iter-count>{a.iterations}</iter-count>"
                        f"<salt>{_b64twice(a.salt)}</salt><server-key>{_b64twice(server)}</server-key>"
                        f"<stored-key>{_b64twice(stored)}</stored-key></scram-credentials></user>\n")
            f.write("</host>\n</server-data>\n")
        entry = pwd.getpwnam(USER)
        os.chmod(w, 0o755)
        os.chmod(os.path.dirname(w), 0o755)
        for root, dirs, files in os.walk(w):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.chown(name, entry.pw_uid, entry.pw_gid)

    def command(self):
        return self._ctl() + ["foreground"]

    def measured_pid(self):
        return descendant_named(self.popen.pid, "beam.smp")

    def started(self):
        if not self.imported:
            self._run_ctl("import_piefxis", os.path.join(self.work, "users.xml"), timeout=300,
                          check=True)
            self.imported = True

    def shutdown(self):
        self._run_ctl("stop", timeout=30)

    def log_problems(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return [line.rstrip() for line in f if "[error]" in line or "[critical]" in line][:5]
        except OSError:
            return []
