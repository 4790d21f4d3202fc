"""Opening a store: migrations, schema revisions, and the one-line errors of a store that cannot be used."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from store_helpers import MODEL, SPEC_HASH, add_evaluated, plan_hash

from storage import SCHEMA_HEAD, Store, StoreError
from storage.models import Base
from storage.schema import VERSION_TABLE, alembic_config, known_revisions

EDGEDIFF_TABLES = {
    "edgediff_studies",
    "edgediff_candidates",
    "edgediff_evaluations",
    "edgediff_exports",
    "edgediff_samples",
    "edgediff_leases",
}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> list:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            results = [connection.execute(text(statement)) for statement in statements]
            return [result.all() if result.returns_rows else None for result in results]
    finally:
        engine.dispose()


def test_schema_head_is_the_newest_shipped_revision():
    assert known_revisions()[0] == SCHEMA_HEAD


def test_opening_creates_every_table_and_the_version_row(store_url):
    Store.open(store_url).close()
    assert tables(store_url) == EDGEDIFF_TABLES | {VERSION_TABLE}
    assert execute(store_url, f"SELECT version_num FROM {VERSION_TABLE}") == [[(SCHEMA_HEAD,)]]
    if store_url.startswith("sqlite"):
        assert execute(store_url, "PRAGMA journal_mode") == [[("wal",)]]


def test_migrations_match_the_models(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    Store.open(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert [d for d in differences if "alembic_version" not in str(d)] == []


def at_revision(url: str, revision: str) -> None:
    """Create the store's schema at an older `revision`, as an earlier edgediff left it."""
    from alembic import command

    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
    finally:
        engine.dispose()


def test_a_store_at_0001_is_upgraded_on_open_with_its_rows_intact(store_url):
    at_revision(store_url, "0001")
    assert tables(store_url) == EDGEDIFF_TABLES - {"edgediff_samples", "edgediff_leases"} | {VERSION_TABLE}
    when, plan = "2025-01-02 03:04:05", plan_hash("a")
    execute(  # rows as revision 0001 wrote them
        store_url,
        "INSERT INTO edgediff_studies (name, model, spec_json, spec_hash, objectives, method, created_at)"
        f" VALUES ('old', '{MODEL}', '{{}}', '{SPEC_HASH}', '[\"macs\", \"fid\"]', 'greedy', '{when}')",
        "INSERT INTO edgediff_candidates (study_id, plan_hash, plan_json, method, created_at)"
        f" SELECT id, '{plan}', '{{}}', 'greedy', '{when}' FROM edgediff_studies",
        "INSERT INTO edgediff_evaluations (model, spec_hash, plan_hash, stage, status, fid, macs_per_image,"
        " num_images, device, versions, started_at, finished_at, extra)"
        f" VALUES ('{MODEL}', '{SPEC_HASH}', '{plan}', 'full', 'ok', 12.5, 900, 10, 'cpu', '{{}}',"
        f" '{when}', '{when}', '{{}}')",
    )
    with Store.open(store_url) as store:
        assert [s.name for s in store.list_studies()] == ["old"]
        assert [(p.plan_hash, p.fid, p.macs) for p in store.points("old")] == [(plan, 12.5, 900)]
        (outcome,) = store.outcomes("old")
        assert (outcome.plan_hash, outcome.status, outcome.finished_at.year) == (plan, "ok", 2025)
        assert store.samples("old", plan_hash("a")) is None
        add_evaluated(store, "old", "b")  # the new revision's tables are usable
    assert tables(store_url) == EDGEDIFF_TABLES | {VERSION_TABLE}
    assert execute(store_url, f"SELECT version_num FROM {VERSION_TABLE}") == [[(SCHEMA_HEAD,)]]


def test_reopening_does_not_rerun_migrations(store_url):
    with Store.open(store_url) as store:
        store.create_study("kept", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    statements: list[str] = []

    def capture(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        with Store.open(store_url) as store:
            assert [s.name for s in store.list_studies()] == ["kept"]
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    writes = {"CREATE", "ALTER", "INSERT", "UPDATE", "DELETE", "DROP"}
    assert [s for s in statements if s.split()[0].upper() in writes] == []


def test_a_newer_schema_revision_is_refused_and_nothing_is_written(store_url):
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    execute(
        store_url,
        f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        f"INSERT INTO {VERSION_TABLE} VALUES ('9999_future')",
    )
    sqlite_file = Path(store_url.removeprefix("sqlite:///")) if store_url.startswith("sqlite") else None
    before = sqlite_file.read_bytes() if sqlite_file else None
    for create in (True, False):
        with pytest.raises(StoreError) as caught:
            Store.open(store_url, create=create)
        assert str(caught.value) == (
            f"database schema revision '9999_future' is newer than this edgediff (it knows up to "
            f"'{SCHEMA_HEAD}'): upgrade edgediff (pip install -U edgediff)"
        )
    if sqlite_file:
        assert sqlite_file.read_bytes() == before  # not even the journal mode changed
    assert tables(store_url) == {VERSION_TABLE}
    assert execute(store_url, f"SELECT version_num FROM {VERSION_TABLE}") == [[("9999_future",)]]


def test_other_tables_sharing_the_database_are_left_alone(store_url):
    """Optuna's RDB storage keeps its own `alembic_version` and `studies` in the same database."""
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    execute(
        store_url,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('v3.2.0.a')",
        "CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name VARCHAR(512))",
    )
    with Store.open(store_url) as store:
        store.create_study("s", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    assert tables(store_url) == EDGEDIFF_TABLES | {VERSION_TABLE, "alembic_version", "studies"}
    assert execute(store_url, "SELECT version_num FROM alembic_version") == [[("v3.2.0.a",)]]


def test_read_only_open_of_a_missing_sqlite_file_creates_nothing(tmp_path):
    path = tmp_path / "missing" / "edgediff.db"
    with pytest.raises(StoreError) as caught:
        Store.open(f"sqlite:///{path}", create=False)
    assert str(caught.value) == (
        f"no edgediff store at sqlite:///{path}: run 'edgediff evaluate' first or pass --db URL"
    )
    assert not path.parent.exists()
    with pytest.raises(StoreError):
        Store.open(str(path), create=False)  # a bare path too
    assert not path.parent.exists()


def test_read_only_open_of_a_database_without_edgediff_tables(store_url):
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    execute(store_url, "CREATE TABLE unrelated (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreError, match=r"^no edgediff store at .*: run 'edgediff evaluate' first"):
        Store.open(store_url, create=False)
    assert tables(store_url) == {"unrelated"}


def test_read_only_open_of_an_existing_store(store_url):
    Store.open(store_url).close()
    with Store.open(store_url, create=False) as store:
        assert store.list_studies() == []


def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just text that is long enough to have a header " * 20)
    with pytest.raises(StoreError, match=r"^cannot open database sqlite:///.*: file is not a database; "):
        Store.open(f"sqlite:///{path}")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_postgresql_is_one_quick_line():
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        Store.open(f"postgresql://edgediff:secret@127.0.0.1:{port}/edgediff")
    message = str(caught.value)
    assert time.monotonic() - started < 5
    url = f"postgresql+psycopg://edgediff:***@127.0.0.1:{port}/edgediff"
    assert message.startswith(f"cannot reach database {url}: ")
    assert message.endswith("; check the server is running and the URL (--db or $EDGEDIFF_DB)")
    assert "\n" not in message and "secret" not in message


def test_a_missing_postgresql_database_is_unreachable(postgresql_server):
    sockets, user = postgresql_server
    with pytest.raises(StoreError, match=r'^cannot reach database .*"no_such_db" does not exist; check the'):
        Store.open(f"postgresql://{user}@/no_such_db?host={sockets}")


def test_an_unknown_driver_is_reported():
    with pytest.raises(StoreError, match=r"^database URL 'nosuchdb://x/y' needs a driver that cannot be"):
        Store.open("nosuchdb://x/y")


def open_concurrently(url: str, openers: int = 4) -> list[BaseException]:
    """Open (and so create) the store at `url` from several threads at once; their errors."""
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            Store.open(url).close()
        except BaseException as err:  # reported by the caller
            errors.append(err)

    threads = [threading.Thread(target=open_store) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_first_opens_migrate_once(store_url):
    assert open_concurrently(store_url) == []
    assert execute(store_url, f"SELECT version_num FROM {VERSION_TABLE}") == [[(SCHEMA_HEAD,)]]


def test_concurrent_first_opens_of_sqlite_files_all_succeed(tmp_path):
    # Switching a new file to WAL can meet "database is locked" without the busy timeout applying;
    # it happened in a few percent of 4-way races, so race many fresh files.
    for round_ in range(100):
        url = f"sqlite:///{tmp_path / str(round_) / 'edgediff.db'}"
        assert open_concurrently(url) == [], f"round {round_}"
        assert execute(url, "PRAGMA journal_mode") == [[("wal",)]]


def test_a_store_at_0002_reads_the_unet_baseline_as_deepcache_grid(store_url):
    """Before 0003 the DeepCache grid's candidates were stored as method "greedy", like the
    transformer baseline's: opening the store renames the grid's (plans with a `deepcache`
    section) and their study's method list, and leaves the greedy's alone."""
    at_revision(store_url, "0002")
    when = "2025-01-02 03:04:05"
    grid = '{"deepcache": {"interval": 3, "branch": 2}}'
    greedy = '{"attention": {"methods": [["full", "ast"]]}}'
    execute(store_url, *[
        "INSERT INTO edgediff_studies (name, model, spec_json, spec_hash, objectives, method, created_at)"
        f" VALUES ('{name}', '{MODEL}', '{{}}', '{SPEC_HASH}', '[\"macs\", \"fid\"]', 'greedy+optuna',"
        f" '{when}')" for name in ("unet", "dit")
    ], *[
        "INSERT INTO edgediff_candidates (study_id, plan_hash, plan_json, method, created_at)"
        f" SELECT id, '{plan_hash(name)}', '{plan}', '{method}', '{when}' FROM edgediff_studies"
        f" WHERE name = '{study}'"
        for study, name, plan, method in (("unet", "g", grid, "greedy"), ("unet", "o", grid, "optuna"),
                                          ("dit", "d", greedy, "greedy"))
    ])
    with Store.open(store_url) as store:
        assert store.get_study("unet").method == "deepcache-grid+optuna"
        assert store.methods("unet") == ["deepcache-grid", "optuna"]
        assert [c.plan_hash for c in store.candidates("unet", method="deepcache-grid")] == [plan_hash("g")]
        assert store.get_study("dit").method == "greedy+optuna"
        assert store.methods("dit") == ["greedy"]
