#!/usr/bin/env python3
"""What archiving costs per message, in two parts measured apart from the network.

    python bench/archive_cost.py hooks [--messages 20000]
    python bench/archive_cost.py writes [--messages 40000] [--batches 40,500,2000]

* ``hooks``: the reactor thread's share. A whole server on a fake clock (no sockets,
  no threads: ``summitd.testing``), alice sends bob chat messages; CPU per message
  with extensions ``delivery`` and with ``delivery`` + ``mam`` (the in-memory store
  and a long write delay, so no database work is counted). Best of 3 runs each.
* ``writes``: the database thread's share. ``SQLArchiveStore.append`` into a fresh
  SQLite file (WAL, ``synchronous=FULL``, as the server runs it), two entries per
  message (both archives of a message between two of 200 users), in batches of the
  given sizes (the archive writer's batch grows with the load: about
  ``write_delay`` × messages/s); CPU per message, commits included.

CPU is the process's (``time.process_time``), which is what the server pays; on a
machine shared with other work the figures move by some 10-20%.
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from summitd.plugins.mam.sql import SQLArchiveStore  # noqa: E402
from summitd.plugins.mam.stanza_id import IdMaker  # noqa: E402
from summitd.plugins.mam.store import ArchiveEntry  # noqa: E402
from summitd.storage.database import Database  # noqa: E402
from summitd.storage.engines import SQLiteEngine  # noqa: E402
from summitd.synchronous import result_of  # noqa: E402
from summitd.testing import FakeClient, add_user, make_server  # noqa: E402

MESSAGE = ("<message to='bob@localhost' type='chat' id='x'>"
           "<body>hello there, how are you today?</body></message>")


def hooks_cost(extensions, options, messages):
    """CPU microseconds per message alice sends bob through a fake-clock server."""
    server = make_server(extensions=extensions, extension_options=options,
                         c2s={"idle_timeout": 1e9})
    for user in ("alice", "bob"):
        add_user(server, f"{user}@localhost", "pw")
    alice, bob = FakeClient(server), FakeClient(server)
    alice.login("alice", "pw", "phone")
    bob.login("bob", "pw", "pc")
    for client in (alice, bob):
        client.send("<presence/>")
    started = time.process_time()
    for i in range(messages):
        alice.send(MESSAGE)
        if i % 100 == 0:
            bob.transport.clear()
    return (time.process_time() - started) / messages * 1e6


def run_hooks(args):
    mam = {"mam": {"backend": "memory", "write_delay": 10, "max_queued_writes": 10 ** 7}}
    routing = min(hooks_cost(["delivery"], {}, args.messages) for _ in range(3))
    archiving = min(hooks_cost(["delivery", "mam"], mam, args.messages) for _ in range(3))
    print(f"routing {routing:.1f} us/message, with archiving hooks {archiving:.1f} us/message "
          f"(+{archiving - routing:.1f} us, +{100 * (archiving / routing - 1):.0f}%)")


def batches_of(messages, size, users=200):
    ids = IdMaker(b"archive-cost-key")
    ts = 1_700_000_000_000_000
    batch = []
    for i in range(messages):
        a, b, t = i % users, (i + 1) % users, ts + i
        body = f"hello there, how are you today? {i}"
        stanza = (f"<message xmlns='jabber:client' from='user{a}@localhost/res'"
                  f" to='user{b}@localhost' type='chat' id='m{i}'><body>{body}</body></message>")
        batch.append(ArchiveEntry("localhost", f"user{a}", ids.make(f"user{a}@localhost", t), t,
                                  f"user{b}@localhost", "", stanza, body))
        batch.append(ArchiveEntry("localhost", f"user{b}", ids.make(f"user{b}@localhost", t), t,
                                  f"user{a}@localhost", "res", stanza, body))
        if len(batch) == 2 * size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_writes(args):
    for size in (int(s) for s in args.batches.split(",")):
        with tempfile.TemporaryDirectory(prefix="summitd-archive-cost.") as folder:
            database = Database(SQLiteEngine(os.path.join(folder, "archive.sqlite")),
                                synchronous=True)
            store = SQLArchiveStore(database)
            result_of(store.setup())
            batches = list(batches_of(args.messages, size))
            started = time.process_time()
            for batch in batches:
                result_of(store.append(batch))
            cost = (time.process_time() - started) / args.messages * 1e6
            database.close()
        print(f"batches of {size} messages: {cost:.1f} us/message (two entries each)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    hooks = sub.add_parser("hooks")
    hooks.add_argument("--messages", type=int, default=20_000)
    writes = sub.add_parser("writes")
    writes.add_argument("--messages", type=int, default=40_000)
    writes.add_argument("--batches", default="40,500,2000")
    args = parser.parse_args()
    (run_hooks if args.part == "hooks" else run_writes)(args)


if __name__ == "__main__":
    main()
