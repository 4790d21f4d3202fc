"""The store's schema version: checked on every open, upgraded with Alembic when behind.

Alembic runs programmatically on the package's `migrations/` folder (no alembic.ini) and keeps its
revision in `edgediff_alembic_version`, apart from Optuna's own `alembic_version`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from storage.engine import WRITE, first_line, no_store_message, use_wal_journal
from storage.errors import NoStoreError, StoreError
from storage.url import redact

if TYPE_CHECKING:
    from alembic.config import Config

SCHEMA_HEAD = "0004"  # the newest revision in migrations/versions (a test keeps them equal)
VERSION_TABLE = "edgediff_alembic_version"
TABLE_PREFIX = "edgediff_"
MIGRATIONS = Path(__file__).with_name("migrations")
_PG_UPGRADE_LOCK = 0x65646765  # an advisory-lock key: concurrent upgrades on PostgreSQL queue on it


def owns_table(name: str) -> bool:
    """Whether a table belongs to edgediff (and not to Optuna or anyone else sharing the database)."""
    return name.startswith(TABLE_PREFIX)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the shipped migrations, running on `connection` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def known_revisions() -> list[str]:
    """Every revision this edgediff ships, newest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [revision.revision for revision in script.walk_revisions()]


def stored_revisions(connection: Connection) -> set[str] | None:
    """The revisions recorded in the database, or None when it has no edgediff schema."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return set(connection.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}")))


def ensure_schema(engine: Engine, url: str, *, create: bool) -> None:
    """Check the schema revision and upgrade it to SCHEMA_HEAD; StoreError if it cannot be used.

    A revision newer than this code, or (with create=False) no edgediff schema at all, is refused
    before anything is written. Upgrades run in one transaction, so a failure leaves no tables.
    """
    try:
        with engine.connect() as connection:
            revisions = stored_revisions(connection)
    except DBAPIError as err:
        raise StoreError(_unreachable_message(engine, url, err)) from None
    if revisions is not None and len(revisions) > 1:
        raise StoreError(
            f"the store {redact(url)} records {len(revisions)} schema revisions "
            f"({', '.join(sorted(revisions))}) in {VERSION_TABLE}, where one is expected: it was "
            "changed outside edgediff; restore it from a backup, or keep only the row of the "
            "revision its tables match"
        )
    if revisions == {SCHEMA_HEAD}:
        return
    if revisions is None and not create:
        raise NoStoreError(no_store_message(url))
    _refuse_newer(revisions)
    try:
        _upgrade(engine)
        if engine.dialect.name == "sqlite":
            use_wal_journal(engine)
    except DBAPIError as err:
        raise StoreError(
            f"cannot create the edgediff tables in {redact(url)}: {first_line(err)}; "
            "check that the database user may create tables"
        ) from None


def _upgrade(engine: Engine) -> None:
    from alembic import command

    with engine.execution_options(**{WRITE: True}).connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_UPGRADE_LOCK})
        revisions = stored_revisions(connection)  # again, under the lock: another process may have won
        if revisions == {SCHEMA_HEAD}:
            return
        _refuse_newer(revisions)
        command.upgrade(alembic_config(connection), "head")


def _refuse_newer(revisions: set[str] | None) -> None:
    known = known_revisions()
    for revision in sorted(revisions or ()):
        if revision not in known:
            raise StoreError(
                f"database schema revision '{revision}' is newer than this edgediff (it knows up to "
                f"'{known[0]}'): upgrade edgediff (pip install -U edgediff)"
            )


def _unreachable_message(engine: Engine, url: str, err: DBAPIError) -> str:
    if engine.dialect.name == "sqlite":
        return f"cannot open database {redact(url)}: {first_line(err)}; check the path (--db or $EDGEDIFF_DB)"
    return (
        f"cannot reach database {redact(url)}: {first_line(err)}; "
        "check the server is running and the URL (--db or $EDGEDIFF_DB)"
    )
