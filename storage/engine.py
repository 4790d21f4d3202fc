"""SQLAlchemy engines for the store: SQLite pragmas and transactions, PostgreSQL timeouts.

SQLite: foreign keys on, a busy timeout (several processes may write), a WAL journal once the
schema is created (readers do not block writers), and SQLAlchemy emits BEGIN itself, so DDL is
transactional and savepoints work. Connections opened with the WRITE execution option begin with
BEGIN IMMEDIATE, so two writers queue on the busy timeout instead of failing when a read lock cannot
be upgraded.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from storage.errors import NoStoreError, StoreError
from storage.url import parse_url, redact

WRITE = "edgediff_write"  # execution option: this connection's transactions will write
SQLITE_BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 5


def no_store_message(url: str) -> str:
    return f"no edgediff store at {redact(url)}: run 'edgediff evaluate' first or pass --db URL"


def first_line(err: BaseException) -> str:
    """The first non-empty line of a (driver) error, for one-line messages. A wrapper speaks with the
    nearest driver error in its chain of causes: Optuna's storage error raised from SQLAlchemy's
    "roll back first" error, itself raised while handling the lost connection, names the lost
    connection."""
    source, seen = err, set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if getattr(link, "orig", None) is not None:
            source = link.orig
            break
        link = link.__cause__ or link.__context__
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    return lines[0] if lines else type(source).__name__


def store_connect_args(url: str) -> dict[str, Any]:
    """The driver options every connection to the store uses (the search's Optuna storage too):
    SQLite waits SQLITE_BUSY_TIMEOUT_S for a lock and PostgreSQL CONNECT_TIMEOUT_S for a
    connection, unless the URL sets its own (`sqlite:///store.db?timeout=5`,
    `postgresql://host/db?connect_timeout=10`)."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and "timeout" not in parsed.query:
        return {"timeout": SQLITE_BUSY_TIMEOUT_S}
    if backend == "postgresql" and "connect_timeout" not in parsed.query:
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    return {}


def create_store_engine(url: str, *, create: bool) -> Engine:
    """An engine for `url`; with create=False a missing SQLite file is an error and is not created."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _prepare_sqlite_file(parsed, url, create=create)
    connect_args = store_connect_args(url)
    try:
        engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=backend != "sqlite")
    except (NoSuchModuleError, ImportError, ArgumentError) as err:
        raise StoreError(
            f"database URL '{redact(url)}' needs a driver that cannot be loaded: {first_line(err)}; "
            "give a SQLAlchemy URL such as sqlite:///path.db or postgresql://user@host/db"
        ) from None
    if backend == "sqlite":
        _install_sqlite_hooks(engine)
    return engine


def use_wal_journal(engine: Engine) -> None:
    """Switch a SQLite database to write-ahead logging (persistent; set once, when it is created).

    The switch needs the database to itself, and SQLite may answer "database is locked" at once,
    without waiting on the busy timeout, while other connections open it at the same moment (several
    workers starting together). So it retries until the busy timeout has passed.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    with engine.connect() as connection:
        # Outside any transaction (SQLite cannot change the journal mode inside one).
        driver = connection.connection.driver_connection
        while True:
            try:
                driver.execute("PRAGMA journal_mode = WAL")  # a no-op once WAL, kept by memory DBs
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _prepare_sqlite_file(parsed: URL, url: str, *, create: bool) -> None:
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("uri"):
        return
    path = Path(database)
    if not create:
        if not path.is_file():
            raise NoStoreError(no_store_message(url))
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"cannot create the folder '{path.parent}' for the SQLite store: {err.strerror}; "
            "pass --db with a writable path"
        ) from None


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN handling off; see _on_begin
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
