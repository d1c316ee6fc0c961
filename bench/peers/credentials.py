"""SCRAM credentials for the benchmark accounts, computed once for all three servers.

Every server gets the same account ``user{i}`` / ``pw{i}`` with the same salt and the
same iteration count, so one PBKDF2 per user and hash (RFC 5802 ``Hi()``) serves the
summitd store, Prosody's account files, ejabberd's XEP-0227 import and the load
generator's salt cache alike. The salt is derived from the user name (deterministic,
different per user) and is ASCII, which Prosody's Lua account files hold as they are.

The results are cached in ``bench/results/.cache/`` (git-ignored): a fresh clone pays
the PBKDF2s once, on both cores.
"""

import base64
import hashlib
import hmac
import json
import os
from concurrent.futures import ProcessPoolExecutor

USER_TEMPLATE = "user{i}"
PASSWORD_TEMPLATE = "pw{i}"
HASHES = ("sha256",)      # the mechanism measured; one PBKDF2 per user


class Account:
    """One user's password, salt and, per hash name, (salted password, stored key, server key)."""

    __slots__ = ("user", "password", "salt", "iterations", "keys")

    def __init__(self, user, password, salt, iterations, keys):
        self.user = user
        self.password = password
        self.salt = salt
        self.iterations = iterations
        self.keys = keys


def _derive(args):
    user, password, iterations = args
    salt = hashlib.sha256(b"summitd-bench:" + user.encode("utf-8")).hexdigest()[:24].encode("ascii")
    keys = {}
    for name in HASHES:
        salted = hashlib.pbkdf2_hmac(name, password.encode("utf-8"), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", name).digest()
        keys[name] = (salted, hashlib.new(name, client_key).digest(),
                      hmac.new(salted, b"Server Key", name).digest())
    return user, password, salt, iterations, keys


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def accounts(count, iterations, cache_dir):
    """Accounts 1..count (a list), from the cache when it has them, else computed."""
    path = os.path.join(cache_dir, f"credentials-{iterations}.json")
    cached = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
    wanted = [(USER_TEMPLATE.format(i=i), PASSWORD_TEMPLATE.format(i=i), iterations)
              for i in range(1, count + 1)]
    missing = [w for w in wanted if w[0] not in cached]
    if missing:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for user, password, salt, its, keys in pool.map(_derive, missing, chunksize=256):
                cached[user] = {"password": password, "salt": salt.decode("ascii"),
                                "keys": {n: [_b64(k) for k in ks] for n, ks in keys.items()}}
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(cached, f)
        os.replace(tmp, path)
    result = []
    for user, password, _ in wanted:
        e = cached[user]
        keys = {n: tuple(base64.b64decode(k) for k in ks) for n, ks in e["keys"].items()}
        result.append(Account(user, e["password"], e["salt"].encode("ascii"), iterations, keys))
    return result, len(missing)


def write_salt_cache(path, accounts_):
    """The load generator's ``--salt-cache`` file: no PBKDF2 in the client during a run."""
    entries = {a.user: {"salt": _b64(a.salt), "iterations": a.iterations,
                        "salted": _b64(a.keys["sha256"][0])} for a in accounts_}
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"hash": "sha256", "entries": entries}, f)
