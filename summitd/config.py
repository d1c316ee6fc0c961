"""The configuration file: TOML in, frozen dataclasses out, every error named by its key path.

``load_config(path)`` reads and validates a file; ``parse_config(data, base_dir)``
validates an already-parsed mapping (tests build configs that way). Unknown keys
are errors too: a typo in a config file should not be silently ignored. Each
extension's own options live under ``[extensions.<name>]`` and are validated by
that extension's factory, which receives the raw table and its key path.
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` is a list of (key path, message)."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(f"{path}: {message}" for path, message in self.errors))


@dataclass(frozen=True)
class ServerConfig:
    domains: tuple
    data_dir: Path
    shutdown_grace: float = 5.0


@dataclass(frozen=True)
class C2SConfig:
    endpoints: tuple = ("tcp:5222:interface=127.0.0.1",)
    direct_tls_endpoints: tuple = ("tcp:5223:interface=127.0.0.1",)
    require_encryption: bool = True
    max_stanza_size: int = 262144
    max_depth: int = 32
    idle_timeout: float = 600.0          # no bytes from the client for this long: connection-timeout
    keepalive_interval: float = 60.0     # whitespace to the client after this long with nothing sent
    handshake_timeout: float = 60.0      # time to authenticate and bind


@dataclass(frozen=True)
class TLSConfig:
    certificate: str = ""
    key: str = ""


@dataclass(frozen=True)
class StorageConfig:
    database: str = "sqlite:///var/summitd.sqlite"


@dataclass(frozen=True)
class AuthConfig:
    scram_iterations: int = 4096
    failures_per_account: float = 5.0     # burst of failed logins per account
    failures_per_address: float = 10.0    # burst of failed logins per client address
    failure_refill_seconds: float = 60.0  # one failure forgiven per this many seconds


@dataclass(frozen=True)
class ExtensionsConfig:
    enabled: tuple = ()
    options: dict = field(default_factory=dict)   # name -> raw table from [extensions.<name>]


@dataclass(frozen=True)
class Config:
    path: Path | None
    server: ServerConfig
    c2s: C2SConfig
    tls: TLSConfig
    storage: StorageConfig
    auth: AuthConfig
    extensions: ExtensionsConfig
    dns: object = None          # summitd.dns.config.DNSConfig
    s2s: object = None          # summitd.transports.s2s.config.S2SConfig

    def resolve(self, path):
        """A path from the config, relative to the config file's folder (or data_dir's parent)."""
        p = Path(path)
        if p.is_absolute():
            return p
        base = self.path.parent if self.path is not None else self.server.data_dir.parent
        return base / p


# -- validation --------------------------------------------------------------------

class Checker:
    """Reads values out of a table, collecting errors instead of stopping at the first."""

    def __init__(self):
        self.errors = []

    def table(self, data, path):
        value = data.get(path.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            self.errors.append((path, "must be a table"))
            return {}
        return value

    def unknown(self, table, path, known):
        for key in table:
            if key not in known:
                self.errors.append((f"{path}.{key}" if path else key, "unknown option"))

    def get(self, table, path, key, kind, default, check=None, message=""):
        if key not in table:
            return default
        value = table[key]
        ok = isinstance(value, kind) and not (kind in (int, float, (int, float)) and isinstance(value, bool))
        if ok and check is not None and not check(value):
            ok = False
        if not ok:
            expected = message or f"must be {_kind_name(kind)}"
            self.errors.append((f"{path}.{key}", f"{expected} (got {value!r})"))
            return default
        return value

    def strings(self, table, path, key, default, check=None, message="must be a list of strings"):
        value = self.get(table, path, key, list, list(default), message=message)
        if not all(isinstance(v, str) and (check is None or check(v)) for v in value):
            self.errors.append((f"{path}.{key}", f"{message} (got {value!r})"))
            return tuple(default)
        return tuple(value)


def _kind_name(kind):
    names = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
             (int, float): "a number", list: "a list", dict: "a table"}
    return names.get(kind, str(kind))


def _positive(v):
    return v > 0


def _endpoint(desc):
    return ":" in desc and not desc.startswith(":")


def parse_config(data, base_dir, path=None):
    """Validate a parsed TOML mapping; relative paths are relative to ``base_dir``."""
    c = Checker()
    c.unknown(data, "", {"server", "c2s", "tls", "storage", "auth", "extensions", "dns", "s2s"})

    t = c.table(data, "server")
    c.unknown(t, "server", {"domains", "data_dir", "shutdown_grace"})
    domains = c.strings(t, "server", "domains", ["localhost"], check=valid_domain,
                        message="must be a list of domain names")
    if not domains:
        c.errors.append(("server.domains", "must name at least one domain"))
    if len({d.lower() for d in domains}) != len(domains):
        c.errors.append(("server.domains", "lists a domain twice"))
    data_dir = Path(c.get(t, "server", "data_dir", str, "var"))
    if not data_dir.is_absolute():
        data_dir = Path(base_dir) / data_dir
    server = ServerConfig(
        domains=tuple(d.lower() for d in domains),
        data_dir=data_dir,
        shutdown_grace=float(c.get(t, "server", "shutdown_grace", (int, float), 5.0, lambda v: v >= 0)),
    )

    t = c.table(data, "c2s")
    d = C2SConfig()
    c.unknown(t, "c2s", set(C2SConfig.__dataclass_fields__))
    c2s = C2SConfig(
        endpoints=c.strings(t, "c2s", "endpoints", d.endpoints, _endpoint,
                            "must be a list of Twisted endpoint strings"),
        direct_tls_endpoints=c.strings(t, "c2s", "direct_tls_endpoints", d.direct_tls_endpoints, _endpoint,
                                       "must be a list of Twisted endpoint strings"),
        require_encryption=c.get(t, "c2s", "require_encryption", bool, d.require_encryption),
        max_stanza_size=c.get(t, "c2s", "max_stanza_size", int, d.max_stanza_size, lambda v: v >= 1024,
                              "must be an integer of at least 1024"),
        max_depth=c.get(t, "c2s", "max_depth", int, d.max_depth, lambda v: 4 <= v <= 1000,
                        "must be an integer from 4 to 1000"),
        idle_timeout=float(c.get(t, "c2s", "idle_timeout", (int, float), d.idle_timeout, _positive)),
        keepalive_interval=float(c.get(t, "c2s", "keepalive_interval", (int, float),
                                       d.keepalive_interval, _positive)),
        handshake_timeout=float(c.get(t, "c2s", "handshake_timeout", (int, float),
                                      d.handshake_timeout, _positive)),
    )

    t = c.table(data, "tls")
    c.unknown(t, "tls", {"certificate", "key"})
    tls = TLSConfig(certificate=c.get(t, "tls", "certificate", str, ""), key=c.get(t, "tls", "key", str, ""))
    if bool(tls.certificate) != bool(tls.key):
        c.errors.append(("tls", "certificate and key go together: set both or neither"))

    t = c.table(data, "storage")
    c.unknown(t, "storage", {"database"})
    storage = StorageConfig(database=c.get(
        t, "storage", "database", str, StorageConfig.database,
        lambda v: v.startswith(("sqlite:///", "postgresql://")),
        "must be a sqlite:///path or postgresql:// URL"))

    t = c.table(data, "auth")
    d = AuthConfig()
    c.unknown(t, "auth", set(AuthConfig.__dataclass_fields__))
    auth = AuthConfig(
        scram_iterations=c.get(t, "auth", "scram_iterations", int, d.scram_iterations,
                               lambda v: 4096 <= v <= 10_000_000, "must be an integer of at least 4096"),
        failures_per_account=float(c.get(t, "auth", "failures_per_account", (int, float),
                                         d.failures_per_account, _positive)),
        failures_per_address=float(c.get(t, "auth", "failures_per_address", (int, float),
                                         d.failures_per_address, _positive)),
        failure_refill_seconds=float(c.get(t, "auth", "failure_refill_seconds", (int, float),
                                           d.failure_refill_seconds, _positive)),
    )

    t = c.table(data, "extensions")
    enabled = c.strings(t, "extensions", "enabled", ())
    options = {}
    for key, value in t.items():
        if key == "enabled":
            continue
        if not isinstance(value, dict):
            c.errors.append((f"extensions.{key}", "must be a table of that extension's options"))
        elif key not in enabled:
            c.errors.append((f"extensions.{key}", "options for an extension that is not enabled"))
        else:
            options[key] = value
    extensions = ExtensionsConfig(enabled=enabled, options=options)

    # Imported late: these sections' parsers build on this module.
    from summitd.dns.config import parse_dns_config
    from summitd.transports.s2s.config import parse_s2s_config
    dns = s2s = None
    try:
        dns = parse_dns_config(data.get("dns", {}), "dns", base_dir)
    except ConfigError as e:
        c.errors.extend(e.errors)
    try:
        s2s = parse_s2s_config(data.get("s2s", {}), "s2s", base_dir)
    except ConfigError as e:
        c.errors.extend(e.errors)

    if c.errors:
        raise ConfigError(c.errors)
    return Config(path=Path(path) if path else None, server=server, c2s=c2s, tls=tls,
                  storage=storage, auth=auth, extensions=extensions, dns=dns, s2s=s2s)


def valid_domain(domain):
    from summitd.core.jid import InvalidJID, prepare_domain
    try:
        prepare_domain(domain)
    except InvalidJID:
        return False
    return True


def load_config(path):
    """Read and validate a TOML config file; raises ConfigError (with key paths)."""
    path = Path(path).absolute()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([("(file)", f"{path} does not exist")]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([("(syntax)", str(e))]) from None
    return parse_config(data, path.parent, path)


def default_config(base_dir, **sections):
    """A valid config built in code (tests, tools): sections are dicts as in the TOML file."""
    return parse_config(sections, base_dir)
