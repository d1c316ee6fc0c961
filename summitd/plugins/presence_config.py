"""The options of the roster and presence extensions ([extensions.roster], [extensions.presence]).

One module for both so they validate alike: every option is a positive number with a
default, unknown keys are errors, and every problem is reported with its key path.
Limits exist because RFC 6121 leaves them to the server (§2.3.3 "server-configured
limit" for handles and groups; §3.1.3's warning about stored subscription requests)
and RFC 6120 §13.12 asks servers to limit what one client can make them do.
"""

from dataclasses import dataclass, fields

from summitd.config import ConfigError


@dataclass(frozen=True)
class RosterConfig:
    max_items: int = 1000           # roster items per account (over it: policy-violation)
    max_pending: int = 100          # stored inbound subscription requests per account
    max_name_length: int = 1024     # characters of an item's handle (RFC 6121 §2.3.3: not-acceptable)
    max_group_length: int = 1024    # characters of one group name (idem)
    max_groups: int = 100           # groups of one item (idem)


@dataclass(frozen=True)
class PresenceConfig:
    rate: float = 5.0               # presence stanzas per second one session may send, sustained ...
    burst: float = 100.0            # ... and at once (joining many rooms at login)
    max_directed: int = 1000        # directed-presence addressees remembered per session


def _parse(cls, raw, path):
    errors = []
    values = {}
    known = {f.name: f for f in fields(cls)}
    for key, value in raw.items():
        field = known.get(key)
        if field is None:
            errors.append((f"{path}.{key}", "unknown option"))
            continue
        kind = field.type
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int and not (isinstance(value, int) and numeric and value > 0):
            errors.append((f"{path}.{key}", f"must be a positive integer (got {value!r})"))
        elif kind is float and not (numeric and value > 0):
            errors.append((f"{path}.{key}", f"must be a positive number (got {value!r})"))
        else:
            values[key] = kind(value)
    if errors:
        raise ConfigError(errors)
    return cls(**values)


def parse_roster_config(raw, path):
    return _parse(RosterConfig, raw, path)


def parse_presence_config(raw, path):
    return _parse(PresenceConfig, raw, path)
