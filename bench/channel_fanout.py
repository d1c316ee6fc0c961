#!/usr/bin/env python3
"""Group chat fan-out: one message in a channel of 1,000 participants, timed.

    python bench/channel_fanout.py [--participants 1000] [--repeat 7] [--archive sql|memory]
                                   [--bound-ms 1000] [--json FILE]

It builds a whole summitd in process (``summitd.testing.make_server``: the real router,
hooks and extensions "mam", "channels", "muc", "mix", "mix_pam", "roster"; SQLite in memory
for "sql"), binds N MIX users and N MUC users as sessions whose stream serialises every
stanza it is given (what a c2s stream costs, minus the socket), and then:

* ``muc``: one channel (created through MIX) as a MUC room with N occupants (placed in the
  room directly: entering one by one costs N^2 presences, which is not what is measured);
  one occupant's groupchat message is timed from the moment it is routed until all N
  occupants' streams have serialised their copy;
* ``both``: then N MIX users join it through their own server (XEP-0405 client-join,
  subscribing to the messages node) and the occupant's message goes to N occupants and N
  participants (for these: the channel's reflection to N bare JIDs, then each user's
  server archiving it in the user's archive and delivering it to the user's client);
* ``mix``: the occupants gone, one participant's message to the N participants.

Each is repeated (``--repeat``) and the median, min and max are reported in ms, with the
cost per recipient in µs. The run is bounded: the exit status is 1 when a median exceeds
``--bound-ms`` or a recipient did not get its copy. The channel archive and the users'
archives are written through the archive's own writer; "sql" makes each write a real
SQLite transaction (inline: the test database is synchronous, where the server's runs on
its database thread), "memory" leaves storage out of the figure.
"""

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from summitd.core.jid import parse_jid  # noqa: E402
from summitd.core.session import Session  # noqa: E402
from summitd.core.xmlwriter import serialize  # noqa: E402
from summitd.plugins.channels.model import Occupant  # noqa: E402
from summitd.testing import make_server, parse_xml  # noqa: E402

CORE = "urn:xmpp:mix:core:1"
PAM = "urn:xmpp:mix:pam:2"
CHANNEL = "coven@mix.localhost"
ROOM = "coven@conference.localhost"


class Sink:
    """A stream that serialises what it is sent, as c2s would, and counts it."""

    def __init__(self):
        self.stanzas = 0
        self.octets = 0
        self.state = "bound"

    def send(self, element):
        self.octets += len(serialize(element).encode("utf-8"))
        self.stanzas += 1

    def close(self, error=None):
        self.state = "closed"


def bind(server, jid):
    session = Session(parse_jid(jid), Sink())
    session.available = True
    server.router.bind(session)
    return session


def route(server, xml):
    server.router.route(parse_xml(xml))


def build(args):
    storage = "memory" if args.archive == "memory" else "sql"
    server = make_server(
        extensions=["mam", "channels", "muc", "mix", "mix_pam", "roster"],
        extension_options={"mam": {"backend": storage}, "channels": {"storage": storage}})
    return server


def create_channel(server):
    bind(server, "owner@localhost/bench")
    route(server, f"<iq type='set' id='c' from='owner@localhost/bench' to='mix.localhost'>"
                  f"<create xmlns='{CORE}' channel='coven'/></iq>")
    return server.extensions.loaded["channels"][0].get("localhost", "coven")


def seat_occupants(server, channel, n):
    """N MUC occupants, placed in the room directly; returns their sessions."""
    muc = []
    for i in range(n):
        session = bind(server, f"muc{i}@localhost/bench")
        occupant = Occupant(f"muc{i}", f"muc{i}@localhost", "participant")
        occupant.sessions[session.jid.full()] = parse_xml(f"<presence from='{session.jid.full()}'/>")
        channel.occupants[occupant.key] = occupant
        channel.by_full[session.jid.full()] = occupant
        muc.append(session)
    return muc


def join_participants(server, n):
    """N MIX users joined through their server (PAM), subscribed to messages."""
    mix = [bind(server, f"mix{i}@localhost/bench") for i in range(n)]
    for i in range(n):
        route(server, f"<iq type='set' id='j{i}' from='mix{i}@localhost/bench' to='mix{i}@localhost'>"
                      f"<client-join xmlns='{PAM}' channel='{CHANNEL}'><join xmlns='{CORE}'>"
                      f"<subscribe node='urn:xmpp:mix:nodes:messages'/><nick>mix{i}</nick></join>"
                      "</client-join></iq>")
    return mix


def delivered(sessions):
    return sum(s.stream.stanzas for s in sessions)


def fan_out(server, sender, to, audience, repeat, tag):
    """Time ``repeat`` messages; returns (ms list, copies each reached)."""
    times, copies = [], []
    for n in range(repeat):
        before = delivered(audience)
        xml = (f"<message type='groupchat' id='{tag}{n}' from='{sender}' to='{to}'>"
               f"<body>fan-out {tag} {n}: the quick brown fox jumps over the lazy dog</body></message>")
        element = parse_xml(xml)
        started = time.perf_counter()
        server.router.route(element)
        times.append((time.perf_counter() - started) * 1000)
        copies.append(delivered(audience) - before)
        server.clock.advance(1)
    return times, copies


def summary(times, copies, recipients):
    median = statistics.median(times)
    return {"recipients": recipients, "median_ms": round(median, 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "per_recipient_us": round(median * 1000 / recipients, 1),
            "copies_each_run": copies}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--participants", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--archive", choices=("sql", "memory"), default="sql")
    p.add_argument("--bound-ms", type=float, default=1000.0, help="fail when a median exceeds this")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    n = args.participants
    server = build(args)
    started = time.perf_counter()
    channel = create_channel(server)
    muc = seat_occupants(server, channel, n)
    result = {"participants": n, "archive": args.archive}
    result["muc"] = summary(*fan_out(server, "muc0@localhost/bench", ROOM, muc, args.repeat, "u"), n)
    mix = join_participants(server, n)
    result["joined"] = joined = len(channel.participants())
    result["setup_s"] = round(time.perf_counter() - started, 2)
    result["both"] = summary(*fan_out(server, "muc0@localhost/bench", ROOM, mix + muc, args.repeat, "b"), 2 * n)
    channel.occupants.clear(), channel.by_full.clear()
    result["mix"] = summary(*fan_out(server, "mix0@localhost/bench", CHANNEL, mix, args.repeat, "x"), n)

    problems = []
    if joined != n:
        problems.append(f"only {joined} of {n} joined")
    for face, recipients in (("mix", n), ("muc", n), ("both", 2 * n)):
        if any(c != recipients for c in result[face]["copies_each_run"]):
            problems.append(f"{face}: copies per run {result[face]['copies_each_run']} (expected {recipients})")
        if result[face]["median_ms"] > args.bound_ms:
            problems.append(f"{face}: median {result[face]['median_ms']} ms exceeds {args.bound_ms} ms")
    result["problems"] = problems
    for face in ("mix", "muc", "both"):
        r = result[face]
        print(f"{face:>4}: {r['recipients']} recipients, median {r['median_ms']} ms "
              f"(min {r['min_ms']}, max {r['max_ms']}), {r['per_recipient_us']} us per recipient")
    print(f"setup {result['setup_s']} s; archive {args.archive}; " + ("OK" if not problems else "; ".join(problems)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
