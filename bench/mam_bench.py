#!/usr/bin/env python3
"""Message archive query benchmark: 1,000,000 archived messages across 1,000 users on SQLite.

    python bench/mam_bench.py [--users 1000] [--messages 1000000] [--queries 200]
                              [--db PATH] [--keep] [--json FILE] [--fill-timeout 900]

It fills a fresh SQLite database (WAL, synchronous=FULL, as the server runs it)
through the archive's own SQL store (``SQLArchiveStore.append``, 10,000 rows per
transaction; not timed), then times queries the way the MAM extension runs them
(``SQLArchiveStore.query``: the page, its RSM count and index, on the database
connection without the thread hop) and reports median, p90 and max per kind:

* ``with+range``: a page of 50 of one conversation (``with`` a contact) inside a
  four-month window, the first page of it (target: median < 20 ms);
* ``with+range+xml``: the same plus building and serialising the 50 result
  stanzas, i.e. all the server does for such a query but the network;
* ``with+range last page``: the newest 50 of that window (RSM ``<before/>``);
* ``fulltext rare``: a word that occurs in three messages of the whole database,
  in its owner's archive, ranked newest first (target: median < 50 ms);
* ``fulltext common+with``: a frequent word within one conversation;
* ``fulltext prefix``: a prefix shared by a few dozen rare words.

The data: each user has five contacts and writes to them over one year (messages
spread evenly in time, owners at random); bodies are 6 to 16 words from a
2,000-word vocabulary with a skewed (Zipf-like) distribution, so common words are
very common. Everything is deterministic (``--seed``). Exit status 1 when a
target is missed or the fill exceeds ``--fill-timeout``.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from summitd.core.xmlwriter import serialize  # noqa: E402
from summitd.plugins.mam import fulltext  # noqa: E402
from summitd.plugins.mam.query import result_message  # noqa: E402
from summitd.plugins.mam.sql import SQLArchiveStore  # noqa: E402
from summitd.plugins.mam.stanza_id import IdMaker  # noqa: E402
from summitd.plugins.mam.store import ArchiveEntry, ArchiveFilter, PageRequest  # noqa: E402
from summitd.storage.database import Database  # noqa: E402
from summitd.storage.engines import SQLiteEngine  # noqa: E402
from summitd.synchronous import result_of  # noqa: E402

HOST = "localhost"
YEAR = 365 * 86400 * 1_000_000
START = 1_735_689_600 * 1_000_000          # 2025-01-01T00:00:00Z
WINDOW = 120 * 86400 * 1_000_000
CONTACTS = 5
RARE_WORDS = 1000
RARE_COPIES = 3
TARGETS_MS = {"with+range": 20.0, "fulltext rare": 50.0}


def vocabulary(rng):
    """2,000 pronounceable words and Zipf-like cumulative weights."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po", "da", "fe", "gu", "hi"]
    words = set()
    while len(words) < 2000:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    words = sorted(words)
    rng.shuffle(words)
    weights, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank
        weights.append(total)
    return words, weights


class Corpus:
    """Who writes to whom, and what, deterministically."""

    def __init__(self, args):
        self.rng = random.Random(args.seed)
        self.users = args.users
        self.count = args.messages
        self.words, self.weights = vocabulary(self.rng)
        self.contacts = {u: self.rng.sample([v for v in range(self.users) if v != u], CONTACTS)
                         for u in range(self.users)}
        # rare word w goes into RARE_COPIES random messages
        self.rare_at = {}
        for w in range(RARE_WORDS):
            for n in self.rng.sample(range(self.count), RARE_COPIES):
                self.rare_at[n] = f"rare{w:04d}x"
        self.rare_owners = []       # (owner, word, with) of each rare word's first copy
        self.ids = IdMaker(b"mam-bench-key")

    def entries(self):
        """The archive entries in time order (as the server writes them)."""
        step = YEAR // self.count
        rng, words, weights = self.rng, self.words, self.weights
        seen_rare = set()
        for n in range(self.count):
            owner = rng.randrange(self.users)
            contact = rng.choice(self.contacts[owner])
            text = rng.choices(words, cum_weights=weights, k=rng.randint(6, 16))
            rare = self.rare_at.get(n)
            if rare is not None:
                text.insert(rng.randrange(len(text) + 1), rare)
                if rare not in seen_rare:
                    seen_rare.add(rare)
                    self.rare_owners.append((owner, rare, contact))
            body = " ".join(text)
            ts = START + n * step
            user, peer = f"user{owner}", f"user{contact}@{HOST}"
            outgoing = n % 2 == 0
            sender, to = (f"{user}@{HOST}/pc", peer) if outgoing else (f"{peer}/phone", f"{user}@{HOST}")
            stanza = (f"<message xmlns='jabber:client' from='{sender}' to='{to}' type='chat' "
                      f"id='m{n}'><body>{body}</body></message>")
            yield ArchiveEntry(HOST, user, self.ids.make(f"{user}@{HOST}", ts), ts, peer,
                               "" if outgoing else "phone", stanza, body)


def fill(store, corpus, batch, deadline):
    started = time.monotonic()
    chunk = []
    done = 0
    for entry in corpus.entries():
        chunk.append(entry)
        if len(chunk) == batch:
            result_of(store.append(chunk))
            done += len(chunk)
            chunk = []
            if time.monotonic() > deadline:
                raise SystemExit(f"mam_bench: the fill exceeded its time bound after {done} rows")
            if done % 100_000 == 0:
                print(f"  {done} messages archived ({time.monotonic() - started:.0f} s)", flush=True)
    if chunk:
        result_of(store.append(chunk))
    return time.monotonic() - started


def timed(fn, samples):
    """(times in ms, result sizes) of fn(sample) for every sample."""
    times, sizes = [], []
    for sample in samples:
        t = time.perf_counter()
        size = fn(sample)
        times.append((time.perf_counter() - t) * 1000)
        sizes.append(size)
    return times, sizes


def describe(times, sizes):
    ordered = sorted(times)
    return {"median_ms": round(statistics.median(ordered), 3),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
            "max_ms": round(ordered[-1], 3),
            "results_median": statistics.median(sizes), "queries": len(times)}


def run_queries(store, corpus, n):
    rng = random.Random(7)
    conversations = []
    for _ in range(n):
        owner = rng.randrange(corpus.users)
        start = START + rng.randrange(YEAR - WINDOW)
        conversations.append((f"user{owner}", f"user{rng.choice(corpus.contacts[owner])}@{HOST}",
                              start, start + WINDOW))
    common = corpus.words[:5]

    def page(sample, **paging):
        user, peer, start, end = sample
        return result_of(store.query(HOST, user, ArchiveFilter(with_bare=peer, start=start, end=end),
                                     PageRequest(max=50, **paging)))

    def page_with_xml(sample):
        found = page(sample)
        for item in found.items:
            serialize(result_message(item, "q1", f"{sample[0]}@{HOST}/pc", f"{sample[0]}@{HOST}"))
        return len(found.items)

    def search(owner, text, with_bare=None):
        return result_of(store.query(
            HOST, owner, ArchiveFilter(with_bare=with_bare, fulltext=fulltext.parse_search(text)),
            PageRequest(max=50, newest_first=True)))

    rare = [rng.choice(corpus.rare_owners) for _ in range(n)]
    kinds = {
        "with+range": (lambda s: len(page(s).items), conversations),
        "with+range+xml": (page_with_xml, conversations),
        "with+range last page": (lambda s: len(page(s, before="").items), conversations),
        "fulltext rare": (lambda r: len(search(f"user{r[0]}", r[1]).items), rare),
        "fulltext common+with": (lambda s: len(search(s[0], rng.choice(common), s[1]).items),
                                 conversations),
        "fulltext prefix": (lambda r: len(search(f"user{r[0]}", r[1][:6] + "*").items), rare),
    }
    results = {}
    for name, (fn, samples) in kinds.items():
        fn(samples[0])      # warm the statement cache
        results[name] = describe(*timed(fn, samples))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=200, help="queries of each kind")
    p.add_argument("--batch", type=int, default=10_000, help="rows per fill transaction")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--db", help="database file (default: a temp dir, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the temp database")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--fill-timeout", type=float, default=900.0, help="bound on the fill, seconds")
    args = p.parse_args(argv)
    if args.users < CONTACTS + 1 or args.messages < RARE_WORDS * RARE_COPIES:
        p.error(f"need at least {CONTACTS + 1} users and {RARE_WORDS * RARE_COPIES} messages")
    work = None
    path = args.db
    if path is None:
        work = tempfile.mkdtemp(prefix="summitd-mam-bench.")
        path = os.path.join(work, "archive.sqlite")
    database = Database(SQLiteEngine(path), synchronous=True)
    try:
        store = SQLArchiveStore(database)
        result_of(store.setup())
        corpus = Corpus(args)
        print(f"== filling {args.messages} messages for {args.users} users into {path}", flush=True)
        fill_s = fill(store, corpus, args.batch, time.monotonic() + args.fill_timeout)
        size_mb = sum(os.path.getsize(path + suffix) for suffix in ("", "-wal")
                      if os.path.exists(path + suffix)) / 2 ** 20
        print(f"   filled in {fill_s:.1f} s ({args.messages / fill_s:.0f} rows/s), "
              f"{size_mb:.0f} MB", flush=True)
        results = run_queries(store, corpus, args.queries)
    finally:
        result_of(database.close())
        if work is not None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    missed = []
    for name, figures in results.items():
        target = TARGETS_MS.get(name)
        verdict = ""
        if target is not None:
            ok = figures["median_ms"] < target
            verdict = f"  (target < {target:g} ms: {'met' if ok else 'MISSED'})"
            if not ok:
                missed.append(name)
        print(f"{name:22s} median {figures['median_ms']:8.3f} ms  p90 {figures['p90_ms']:8.3f} ms  "
              f"max {figures['max_ms']:8.3f} ms  results {figures['results_median']}{verdict}")
    report = {"users": args.users, "messages": args.messages, "fill_s": round(fill_s, 1),
              "database_mb": round(size_mb), "queries": results, "missed": missed}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
