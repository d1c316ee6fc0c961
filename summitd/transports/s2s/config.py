"""The ``[s2s]`` table: where to listen, how to reach peers, what to demand of them.

::

    [s2s]
    endpoints = ["tcp:5269:interface=127.0.0.1"]   # Twisted endpoint strings (STARTTLS)
    direct_tls_endpoints = []      # XEP-0368 direct TLS listeners (ALPN "xmpp-server")
    require_encryption = true      # RFC 7590: no stanzas or dialback without TLS, either way
    ca_bundle = ""                 # PEM file of trusted CAs; "" = the system's trust store
    static_routes = {"peer.test" = "127.0.0.2:5269"}   # skip DNS; "tls:ADDR:PORT" = direct TLS
    connect_timeout = 60           # seconds to establish a stream before queued stanzas bounce
    tcp_timeout = 10               # seconds per TCP connection attempt
    idle_timeout = 600             # close a stream that carried nothing for this long
    max_stanza_size = 262144       # a bigger stanza from a peer: policy-violation
    max_queue = 1000               # stanzas queued per domain pair while connecting
    bidi = true                    # offer and request bidirectional streams (XEP-0288)

    [s2s.policy]                   # per-remote-domain policy: summitd.dns.policy
    allow_dialback = true

Static routes take a literal IP address (a route exists to avoid DNS); a list of
routes is tried in order. ``parse_s2s_config`` raises ConfigError naming every bad
key by its path; relative paths are resolved against ``base_dir`` (when it is None,
as for the ``[extensions.s2s]`` table, they are resolved later by the extension).
"""

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from summitd.config import Checker, ConfigError, valid_domain
from summitd.dns.policy import PolicyConfig, parse_policy_config

DIRECT_TLS_PREFIX = "tls:"


@dataclass(frozen=True)
class StaticRoute:
    """One configured address for a remote domain."""
    address: str        # an IP address
    port: int
    direct_tls: bool = False

    def __str__(self):
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{DIRECT_TLS_PREFIX if self.direct_tls else ''}{host}:{self.port}"


@dataclass(frozen=True)
class S2SConfig:
    endpoints: tuple = ("tcp:5269:interface=127.0.0.1",)
    direct_tls_endpoints: tuple = ()
    require_encryption: bool = True
    ca_bundle: Path | None = None
    static_routes: dict = field(default_factory=dict)   # domain -> tuple of StaticRoute
    connect_timeout: float = 60.0
    tcp_timeout: float = 10.0
    idle_timeout: float = 600.0
    max_stanza_size: int = 262144
    max_queue: int = 1000
    bidi: bool = True
    policy: PolicyConfig = PolicyConfig()


KEYS = frozenset(S2SConfig.__dataclass_fields__)


def _endpoint(description):
    return ":" in description and not description.startswith(":")


def parse_route(text):
    """``"127.0.0.2:5269"``, ``"[::1]:5269"`` or ``"tls:127.0.0.2:5270"`` -> StaticRoute."""
    direct = text.startswith(DIRECT_TLS_PREFIX)
    rest = text[len(DIRECT_TLS_PREFIX):] if direct else text
    if rest.startswith("["):
        host, sep, port = rest[1:].partition("]:")
    else:
        host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(text)
    return StaticRoute(str(ipaddress.ip_address(host)), int(port), direct)


def _static_routes(c, raw, path):
    table = c.table(raw, f"{path}.static_routes")
    routes = {}
    for domain, value in table.items():
        key = f'{path}.static_routes."{domain}"'
        texts = [value] if isinstance(value, str) else value
        if not valid_domain(domain):
            c.errors.append((key, "is not a valid domain name"))
            continue
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            c.errors.append((key, 'must be "ADDRESS:PORT" (or "tls:ADDRESS:PORT") or a list of them'))
            continue
        try:
            routes[domain.lower().rstrip(".")] = tuple(parse_route(t) for t in texts)
        except ValueError as e:
            c.errors.append((key, f"{e} is not IP:PORT, [IPv6]:PORT or tls:IP:PORT"))
    return routes


def parse_s2s_config(raw, path="s2s", base_dir=None):
    """Validate the ``[s2s]`` table (see the module docstring); returns an S2SConfig."""
    if not isinstance(raw, dict):
        raise ConfigError([(path, "must be a table")])
    c = Checker()
    d = S2SConfig()
    c.unknown(raw, path, KEYS)
    endpoint_message = "must be a list of Twisted endpoint strings"
    number = (int, float)
    values = dict(
        endpoints=c.strings(raw, path, "endpoints", d.endpoints, _endpoint, endpoint_message),
        direct_tls_endpoints=c.strings(raw, path, "direct_tls_endpoints", d.direct_tls_endpoints,
                                       _endpoint, endpoint_message),
        require_encryption=c.get(raw, path, "require_encryption", bool, d.require_encryption),
        connect_timeout=float(c.get(raw, path, "connect_timeout", number, d.connect_timeout,
                                    lambda v: 1 <= v <= 3600, "must be 1 to 3600 seconds")),
        tcp_timeout=float(c.get(raw, path, "tcp_timeout", number, d.tcp_timeout,
                                lambda v: 0.1 <= v <= 600, "must be 0.1 to 600 seconds")),
        idle_timeout=float(c.get(raw, path, "idle_timeout", number, d.idle_timeout,
                                 lambda v: v >= 1, "must be at least 1 second")),
        max_stanza_size=c.get(raw, path, "max_stanza_size", int, d.max_stanza_size,
                              lambda v: v >= 1024, "must be an integer of at least 1024"),
        max_queue=c.get(raw, path, "max_queue", int, d.max_queue, lambda v: v >= 1,
                        "must be a positive integer"),
        bidi=c.get(raw, path, "bidi", bool, d.bidi),
        static_routes=_static_routes(c, raw, path),
    )
    bundle = c.get(raw, path, "ca_bundle", str, "")
    if bundle:
        values["ca_bundle"] = resolve_path(bundle, base_dir)
        if base_dir is not None and not values["ca_bundle"].is_file():
            c.errors.append((f"{path}.ca_bundle", f"{values['ca_bundle']} is not a file"))
    try:
        values["policy"] = parse_policy_config(raw.get("policy", {}), f"{path}.policy")
    except ConfigError as e:
        c.errors.extend(e.errors)
    if c.errors:
        raise ConfigError(c.errors)
    return S2SConfig(**values)


def resolve_path(text, base_dir):
    """``text`` as a Path, relative to ``base_dir`` when that is given."""
    p = Path(text)
    if base_dir is None or p.is_absolute():
        return p
    return Path(base_dir) / p
