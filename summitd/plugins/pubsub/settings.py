"""The options of the "pubsub" and "pep" extensions ([extensions.pubsub], [extensions.pep]).

Both take the limits and the store:

``storage``         "sql" (default: the server's database) or "memory" (lost at restart)
``max_items``       what pubsub#max_items "max" means: the most items a node keeps (1000)
``max_item_size``   octets of one item's payload (131072)
``max_nodes``       nodes an account may own: its PEP nodes, or its nodes at the service (256)
``max_results``     items one retrieval returns without paging (250; RSM pages beyond)
``cache_size``      services whose node metadata stays in memory (10000)

"pubsub" also takes ``host``, the service's address with "{domain}" standing for each hosted
domain (default "pubsub.{domain}"). "pep" also takes ``bookmarks_compat`` (keep XEP-0048
bookmarks in PEP in step with XEP-0402 ones, default true) and ``mds_server_assist`` (the
XEP-0490 server-assisted displayed markers, default true).
"""

from dataclasses import dataclass, fields

from summitd.config import ConfigError
from summitd.core.jid import InvalidJID, prepare_domain
from summitd.plugins.pubsub.engine import Limits
from summitd.plugins.pubsub.memory import MemoryStore
from summitd.plugins.pubsub.sql import SQLStore

STORAGES = ("sql", "memory")


@dataclass(frozen=True)
class PubSubSettings:
    storage: str = "sql"
    limits: Limits = Limits()
    host: str = "pubsub.{domain}"
    bookmarks_compat: bool = True
    mds_server_assist: bool = True


_LIMITS = {f.name: f.default for f in fields(Limits)}
_SERVICE_ONLY = ("host",)
_PEP_ONLY = ("bookmarks_compat", "mds_server_assist")


def _parse(raw, path, extra):
    known = set(_LIMITS) | {"storage"} | set(extra)
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key not in known]
    values = {}
    storage = raw.get("storage", "sql")
    if storage not in STORAGES:
        errors.append((f"{path}.storage", f"must be one of {', '.join(STORAGES)}"))
    limits = {}
    for key, default in _LIMITS.items():
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.append((f"{path}.{key}", "must be an integer >= 1"))
        else:
            limits[key] = value
    for key in extra:
        if key in raw:
            value = raw[key]
            expected = str if key == "host" else bool
            if not isinstance(value, expected):
                errors.append((f"{path}.{key}", f"must be a {'string' if expected is str else 'boolean'}"))
            else:
                values[key] = value
    if "host" in values and not _valid_host(values["host"]):
        errors.append((f"{path}.host", "must be a domain name, with {domain} for the hosted domain"))
    if errors:
        raise ConfigError(errors)
    return PubSubSettings(storage=storage, limits=Limits(**limits), **values)


def _valid_host(template):
    try:
        prepare_domain(template.replace("{domain}", "example.org"))
    except (InvalidJID, TypeError):
        return False
    return (template != "{domain}" and template.count("{") == template.count("{domain}")
            and "}" not in template.replace("{domain}", ""))


def parse_service_config(raw, path):
    """[extensions.pubsub]"""
    return _parse(raw, path, _SERVICE_ONLY)


def parse_pep_config(raw, path):
    """[extensions.pep]"""
    return _parse(raw, path, _PEP_ONLY)


def make_store(context, storage):
    """The store an extension's ``storage`` option names."""
    return MemoryStore() if storage == "memory" else SQLStore(context.database)
