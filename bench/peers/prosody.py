"""Prosody under test (Debian's package): ``prosody -F`` with ``prosody.cfg.lua.in``.

Accounts are written as Prosody's ``internal_hashed`` account files
(``data/<host>/accounts/<user>.dat``, the Lua tables ``prosodyctl register`` writes:
hex stored and server keys, salt, iteration count); ``prosodyctl register`` costs a
process per account, 40 ms each, too slow for 10,000."""

import os
import shutil
from string import Template

from peers.process import ServerProcess

HERE = os.path.dirname(os.path.abspath(__file__))


def available():
    return shutil.which("prosody") is not None


def _store_name(host):
    """Prosody's file-store encoding of a host or user name: non-alphanumerics as %xx."""
    return "".join(c if c.isalnum() else "%%%02x" % ord(c) for c in host)


def _lua_string(data):
    return '"' + "".join(c if c.isalnum() or c in "-_.:@" else "\\%03d" % ord(c)
                         for c in data) + '"'


class Prosody(ServerProcess):
    name = "prosody"

    def __init__(self, work, domain, iterations):
        super().__init__(work)
        self.domain = domain
        self.iterations = iterations
        self.config_path = os.path.join(work, "prosody.cfg.lua")

    def setup(self, accounts):
        for sub in ("data", "certs"):
            os.makedirs(os.path.join(self.work, sub), exist_ok=True)
        with open(os.path.join(HERE, "prosody.cfg.lua.in"), encoding="utf-8") as f:
            text = Template(f.read()).substitute(work=self.work, host=self.host, port=self.port,
                                                 domain=self.domain, iterations=self.iterations)
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)
        folder = os.path.join(self.work, "data", _store_name(self.domain), "accounts")
        os.makedirs(folder, exist_ok=True)
        for a in accounts:
            _, stored, server = a.keys["sha256"]
            with open(os.path.join(folder, _store_name(a.user) + ".dat"), "w", encoding="utf-8") as f:
                f.write("return {\n"
                        f'\t["stored_key"] = "{stored.hex()}";\n'
                        f'\t["salt"] = {_lua_string(a.salt.decode("ascii"))};\n'
                        f'\t["iteration_count"] = {a.iterations};\n'
                        f'\t["server_key"] = "{server.hex()}";\n'
                        "};\n")

    def command(self):
        return ["prosody", "-F", "--config", self.config_path]

    def log_problems(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return [line.rstrip() for line in f if "\terror\t" in line or "Traceback" in line][:5]
        except OSError:
            return []
