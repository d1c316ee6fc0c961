"""The ``[dns]`` table: which resolvers to ask, how to trust their answers, how long to wait.

::

    [dns]
    resolvers = ["127.0.0.1:5353", "[::1]:53"]   # host:port, IP addresses only; [] = /etc/resolv.conf
    mode = "validate"         # validate DNSSEC here ("validate") or trust a loopback resolver's AD bit
    trust_anchor = "anchors"  # a file of DS or DNSKEY records; default: the root zone's KSKs
    timeout = 5.0             # seconds per exchange with one resolver (UDP, then TCP if truncated)

Resolvers must be IP addresses: a resolver's own name cannot be looked up without one.
"""

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from summitd.config import ConfigError, Checker
from summitd.dns.anchors import load_trust_anchors

MODES = ("validate", "resolver-ad")
DEFAULT_PORT = 53


@dataclass(frozen=True)
class DNSConfig:
    servers: tuple = ()              # ((ip, port), ...); empty: the system's (/etc/resolv.conf)
    mode: str = "validate"           # "validate" | "resolver-ad"
    trust_anchor: Path | None = None  # None: the root zone's KSK DS records (summitd.dns.anchors)
    timeout: float = 5.0


def parse_server(text):
    """``"127.0.0.1:5353"``, ``"[::1]:53"`` or a bare address → (ip, port); ValueError if not."""
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(text)
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, port = text.split(":")
        port = int(port)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(text)
    return host, port


def system_servers(path="/etc/resolv.conf"):
    """The ``nameserver`` lines of resolv.conf as (ip, 53) pairs; 127.0.0.1 when there are none
    (resolv.conf(5)). Scope suffixes (``fe80::1%eth0``) are kept for the socket layer."""
    servers = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    try:
                        ipaddress.ip_address(fields[1].split("%")[0])
                    except ValueError:
                        continue
                    servers.append((fields[1], DEFAULT_PORT))
    except OSError:
        pass
    return tuple(servers) or (("127.0.0.1", DEFAULT_PORT),)


def parse_dns_config(raw, path="dns", base_dir="."):
    """Validate the ``[dns]`` table; raises ConfigError naming each bad key by its path."""
    c = Checker()
    if not isinstance(raw, dict):
        raise ConfigError([(path, "must be a table")])
    c.unknown(raw, path, {"resolvers", "mode", "trust_anchor", "timeout"})
    servers = []
    for index, text in enumerate(c.strings(raw, path, "resolvers", ())):
        try:
            servers.append(parse_server(text))
        except ValueError:
            c.errors.append((f"{path}.resolvers[{index}]",
                             f"must be IP:port or [IPv6]:port (got {text!r})"))
    mode = c.get(raw, path, "mode", str, "validate", lambda v: v in MODES,
                 'must be "validate" or "resolver-ad"')
    timeout = float(c.get(raw, path, "timeout", (int, float), 5.0, lambda v: 0 < v <= 60,
                          "must be a number of seconds above 0, at most 60"))
    anchor = None
    anchor_text = c.get(raw, path, "trust_anchor", str, "")   # empty: the root zone's keys
    if anchor_text:
        anchor = Path(anchor_text)
        if not anchor.is_absolute():
            anchor = Path(base_dir) / anchor
        try:
            load_trust_anchors(anchor)
        except (OSError, ValueError) as e:
            c.errors.append((f"{path}.trust_anchor", str(e)))
    if c.errors:
        raise ConfigError(c.errors)
    return DNSConfig(servers=tuple(servers), mode=mode, trust_anchor=anchor, timeout=timeout)
