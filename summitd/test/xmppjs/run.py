"""Runs scenario.mjs with node, installing @xmpp/client first when needed.

The integration test runs scenarios through ``SummitdProcessMixin.run_scenario`` (a
Python script printing one JSON line); this is that script for node. The npm packages
come from the committed package-lock.json: in place when ``npm ci --prefix
summitd/test/xmppjs`` ran (what ``make test`` does), else into a cache folder outside the
repository (``$SUMMITD_XMPPJS_CACHE``, default ``~/.cache/summitd/xmppjs-<lock hash>``).

    python run.py --install-only
    python run.py --host 127.0.0.1 --port PORT --timeout SECONDS
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALL_TIMEOUT = 170


def _installed(folder):
    return os.path.exists(os.path.join(folder, "node_modules", "@xmpp", "client", "package.json"))


def folder():
    """Where node_modules is (or goes)."""
    if _installed(HERE):
        return HERE
    with open(os.path.join(HERE, "package-lock.json"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    default = os.path.join(os.path.expanduser("~"), ".cache", "summitd", f"xmppjs-{digest}")
    return os.environ.get("SUMMITD_XMPPJS_CACHE") or default


def install():
    """Install the locked packages (npm ci) unless they are there; returns the folder."""
    target = folder()
    if _installed(target):
        return target
    os.makedirs(target, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(os.path.join(HERE, name), os.path.join(target, name))
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", target], check=True,
                   timeout=INSTALL_TIMEOUT, stdout=sys.stderr, stderr=sys.stderr)
    return target


def main(argv):
    if argv == ["--install-only"]:
        print(json.dumps({"ok": True, "folder": install()}))
        return 0
    target = install()
    if target != HERE:
        shutil.copyfile(os.path.join(HERE, "scenario.mjs"), os.path.join(target, "scenario.mjs"))
    timeout = float(argv[argv.index("--timeout") + 1]) if "--timeout" in argv else 30.0
    try:
        done = subprocess.run(["node", os.path.join(target, "scenario.mjs")] + argv,
                              timeout=timeout + 10, stdout=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        print(json.dumps({"ok": False, "reasons": ["node did not finish"]}))
        return 1
    sys.stdout.write(done.stdout.decode("utf-8", "replace"))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
