"""Versioned schemas, one per component, brought up to date at start.

Each component (the account store, the keyval store, an extension's own
tables) declares its schema as a numbered list of ``Migration`` steps.
``apply_migrations`` runs the steps the database has not seen yet, each in
its own transaction together with the update of ``schema_versions``, so a
crash leaves the schema at a version, never between two. A database written
by newer code than is running is refused rather than silently misread.
"""

from dataclasses import dataclass

from twisted.internet import defer


class SchemaError(Exception):
    """The declared migrations are unusable (unordered, duplicate, ...)."""


class SchemaTooNewError(SchemaError):
    """The database holds a newer schema than this code understands."""


@dataclass(frozen=True)
class Migration:
    """The statements that bring a component's schema to C{version}: SQL strings, or
    functions C{fn(txn)} for a step SQL alone cannot do (converting data)."""

    version: int
    statements: tuple

    def __post_init__(self):
        if isinstance(self.statements, str):
            # A lone string would be iterated character by character.
            raise SchemaError(f"migration {self.version}: statements must be a tuple of SQL strings")


_CREATE_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    " component TEXT PRIMARY KEY,"
    " version INTEGER NOT NULL"
    ")"
)


def _check(component, migrations):
    versions = [m.version for m in migrations]
    if not versions:
        raise SchemaError(f"{component}: no migrations declared")
    if versions != sorted(set(versions)) or versions[0] < 1:
        raise SchemaError(
            f"{component}: migration versions must be positive, unique and "
            f"ascending; got {versions}"
        )


def _read_version(txn, component):
    row = txn.execute(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    ).fetchone()
    return 0 if row is None else row[0]


def _bootstrap(txn, component):
    txn.execute(_CREATE_VERSIONS)
    return _read_version(txn, component)


def _apply_one(txn, component, migration):
    # Read again inside the transaction: another caller (or process) may
    # have applied this step since we looked.
    current = _read_version(txn, component)
    if current >= migration.version:
        return current
    for statement in migration.statements:
        if callable(statement):
            statement(txn)
        else:
            txn.execute(statement)
    txn.execute(
        "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
        " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        (component, migration.version),
    )
    return migration.version


@defer.inlineCallbacks
def apply_migrations(db, component: str, migrations):
    """Apply C{component}'s migrations newer than the database's version.

    @param db: a L{summitd.storage.database.Database}.
    @param migrations: L{Migration}s in ascending version order.
    @return: a Deferred firing with the version the schema is now at.
    @raise SchemaTooNewError: (as a failure) if the database is newer than
        the newest migration known here.
    """
    migrations = tuple(migrations)
    _check(component, migrations)
    newest = migrations[-1].version
    current = yield db.runInteraction(f"schema: read {component} version", _bootstrap, component)
    if current > newest:
        raise SchemaTooNewError(
            f"the database has schema version {current} for {component!r}, but this "
            f"summitd only knows up to version {newest}; it was written by a newer "
            "summitd -- upgrade summitd or restore a matching backup"
        )
    for migration in migrations:
        if migration.version > current:
            current = yield db.runInteraction(
                f"schema: migrate {component} to v{migration.version}",
                _apply_one,
                component,
                migration,
            )
    return current
