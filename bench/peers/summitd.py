"""summitd under test: ``twistd -n summitd`` with ``summitd.toml.in``, accounts written
through summitd's own account store (what ``summitctl adduser`` does, without a process
and a PBKDF2 per account: the SCRAM-SHA-256 keys come from ``credentials``)."""

import os
import sys
from string import Template

from peers.process import ServerProcess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class Summitd(ServerProcess):
    name = "summitd"

    def __init__(self, work, domain, iterations):
        super().__init__(work)
        self.domain = domain
        self.iterations = iterations
        self.config_path = os.path.join(work, "summitd.toml")

    def env(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def setup(self, accounts):
        with open(os.path.join(HERE, "summitd.toml.in"), encoding="utf-8") as f:
            text = Template(f.read()).substitute(domain=self.domain, port=self.port, host=self.host,
                                                 iterations=self.iterations)
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)
        create_accounts(self.config_path, self.domain, accounts)

    def command(self):
        return [sys.executable, "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "--logfile", self.log_path, "summitd", "--config", self.config_path]

    def log_problems(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return [line.rstrip() for line in f if "Traceback" in line][:5]
        except OSError:
            return []


def create_accounts(config_path, domain, accounts):
    """Write the accounts into the server's database (the server is not running)."""
    from twisted.internet import task

    from summitd.config import load_config
    from summitd.sasl.credentials import ScramCredentials
    from summitd.server import SummitServer
    from summitd.storage.database import Database
    from summitd.storage.engines import engine_from_url
    from summitd.testing import result_of

    config = load_config(config_path)
    config.server.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine_from_url(config.storage.database, config.path.parent)
    connect = engine.connect

    def bulk_connect():
        # One fsync per account (synchronous=FULL) would make 10,000 accounts take a minute;
        # this load is redone from scratch if it is interrupted.
        conn = connect()
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    engine.connect = bulk_connect
    database = Database(engine, None, synchronous=True)
    clock = task.Clock()
    server = SummitServer(config, clock, clock=clock, database=database)
    result_of(server.start())
    store = server.account_manager.store
    for account in accounts:
        credentials = {
            name: ScramCredentials(hash_name=name, salt=account.salt, iterations=account.iterations,
                                   stored_key=keys[1], server_key=keys[2])
            for name, keys in account.keys.items()}
        result_of(store.create(domain, account.user, credentials))
    result_of(server.stop())
