"""``twistd summitd``: command-line options and the service (the only module that uses the
global reactor)."""

import sys

from twisted.python import usage

from summitd.config import ConfigError, load_config


class Options(usage.Options):
    synopsis = "[--config FILE]"
    longdesc = "Run the summitd XMPP server."
    optParameters = [["config", "c", "etc/summitd.toml", "The TOML configuration file."]]


def makeService(options):
    from twisted.internet import reactor

    from summitd.service import SummitService

    try:
        config = load_config(options["config"])
    except ConfigError as e:
        sys.stderr.write(f"summitd: invalid configuration {options['config']}:\n")
        for path, message in e.errors:
            sys.stderr.write(f"  {path}: {message}\n")
        raise SystemExit(2)
    return SummitService(config, reactor)
