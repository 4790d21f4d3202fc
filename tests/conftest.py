"""Shared fixtures: the shipped models, loaded once per test session."""

from __future__ import annotations

import os

# No model hub is reachable in tests: fail fast instead of retrying the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def classifier():
    from evaluators.zoo import load_model

    return load_model("digits-classifier")


@pytest.fixture(scope="session")
def dit():
    """The shipped DiT; tests that apply plans to it remove them again."""
    from evaluators.zoo import load_model

    return load_model("digits-dit")


@pytest.fixture(scope="session")
def unet():
    """The shipped U-Net; tests that apply plans to it remove them again."""
    from evaluators.zoo import load_model

    return load_model("digits-unet")


@pytest.fixture(scope="session")
def digits():
    from evaluators.data import load_digits

    return load_digits()


@pytest.fixture(autouse=True)
def _fixed_threads():
    import torch  # here, not at the top: a run stopped by the set-up check never loads it

    torch.set_num_threads(min(2, os.cpu_count() or 1))



# ---- what the suite needs besides Python packages (tests/setup_check.py) ----------------------
# A test that needs Debian's chromium or postgresql on a machine lacking it stops the run before
# anything runs, with one line saying what to install (`make test` installs them first when it
# can); EDGEDIFF_TEST_SKIP=chromium,postgresql skips those tests instead, when the user asks.

_NEEDS = {  # package -> the fixtures that need it
    "chromium": {"browser"},
    "postgresql": {"postgresql_server", "postgresql_url", "stoppable_postgresql"},
}


def _needs(item) -> set[str]:
    names = set(getattr(item, "fixturenames", ()))
    needed = {package for package, fixtures in _NEEDS.items() if names & fixtures}
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("store_url") == "postgresql":
        needed.add("postgresql")
    return needed


def pytest_collection_modifyitems(session, config, items) -> None:
    import setup_check

    wanted = set().union(*map(_needs, items)) if items else set()
    missing = [package for package in setup_check.missing() if package in wanted]
    if missing:
        pytest.exit(setup_check.advice(missing), returncode=2)
    skipped = setup_check.skipped()
    for item in items:
        for package in sorted(_needs(item) & skipped):
            item.add_marker(pytest.mark.skip(reason=f"needs {package}, skipped by "
                                                    f"{setup_check.SKIP_VARIABLE}"))


# ---- PostgreSQL server for the store tests (storage/) ------------------------------------------
# A throwaway server, started once per session on a unix socket in a temporary folder; each test
# that asks for `postgresql_url` gets a fresh database on it. PostgreSQL refuses to run as root, so
# as root the server runs as the `postgres` system user.

_PG_SETTINGS = "-c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
_pg_databases = iter(range(1_000_000))


def _postgres_bin_dir():
    """The folder holding initdb and pg_ctl (see tests/setup_check.py)."""
    import setup_check

    return setup_check.postgres_bin_dir()


def _run_as_server_user(*command: str, check: bool = True) -> None:
    import subprocess

    if os.geteuid() == 0:
        command = ("runuser", "-u", "postgres", "--", *command)
    done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode != 0:
        reason = (done.stderr or done.stdout).strip()
        pytest.fail(f"{' '.join(command)} failed: {reason}", pytrace=False)


def _new_cluster(prefix: str):
    """A fresh PostgreSQL data folder under /tmp (the server user must reach it, and a socket path
    has at most 107 bytes): (root, data, sockets, pg_ctl, start options with the log file)."""
    import shutil
    import tempfile
    from pathlib import Path

    bin_dir = _postgres_bin_dir()
    if bin_dir is None:  # the collection hook stops the run first; a direct call still says why
        import setup_check

        pytest.fail(setup_check.advice(["postgresql"]), pytrace=False)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    data, sockets, pg_ctl = root / "data", root / "sockets", str(bin_dir / "pg_ctl")
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    try:
        _run_as_server_user(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                            "-N", "-E", "UTF8")
    except BaseException:  # no server yet: the caller's clean-up never runs
        shutil.rmtree(root, ignore_errors=True)
        raise
    options = ("-o", f"-k {sockets} {_PG_SETTINGS}", "-l", str(root / "server.log"))
    return root, data, sockets, pg_ctl, options


def _remove_cluster(root, data, pg_ctl: str) -> None:
    import shutil

    if (data / "postmaster.pid").exists():
        _run_as_server_user(pg_ctl, "-D", str(data), "-m", "immediate", "stop", check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgresql_server():
    """(socket folder, superuser) of a throwaway PostgreSQL server, stopped after the session."""
    root, data, sockets, pg_ctl, options = _new_cluster("edgediff-pg-")
    try:
        _run_as_server_user(pg_ctl, "-D", str(data), *options, "-w", "start")
        yield sockets, "postgres"
    finally:
        _remove_cluster(root, data, pg_ctl)


@pytest.fixture
def postgresql_url(postgresql_server):
    """A `postgresql+psycopg://` URL of a fresh, empty database, dropped after the test."""
    import psycopg

    sockets, user = postgresql_server
    name = f"edgediff_test_{os.getpid()}_{next(_pg_databases)}"
    with psycopg.connect(host=str(sockets), user=user, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{user}@/{name}?host={sockets}"
    with psycopg.connect(host=str(sockets), user=user, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- end of the PostgreSQL section -------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A URL of an empty database: a SQLite file that does not exist yet, or a fresh PostgreSQL one.
    Every test that takes it runs against both back ends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'edgediff.db'}"
    return request.getfixturevalue("postgresql_url")
