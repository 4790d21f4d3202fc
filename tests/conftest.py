"""Shared fixtures: the shipped models, loaded once per test session."""

from __future__ import annotations

import os

# No model hub is reachable in tests: fail fast instead of retrying the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


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
    torch.set_num_threads(min(2, os.cpu_count() or 1))



# ---- PostgreSQL server for the store tests (storage/) ------------------------------------------
# A throwaway server, started once per session on a unix socket in a temporary folder; each test
# that asks for `postgresql_url` gets a fresh database on it. PostgreSQL refuses to run as root, so
# as root the server runs as the `postgres` system user. Missing binaries fail (never skip): CI
# must run the PostgreSQL tests.

_PG_MISSING = (
    "PostgreSQL server binaries not found: install Debian's postgresql package (apt-get install postgresql)"
)
_PG_SETTINGS = "-c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
_pg_databases = iter(range(1_000_000))


def _postgres_bin_dir():
    """The folder holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    import glob
    import shutil
    from pathlib import Path

    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for folder in reversed(folders):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


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
    if bin_dir is None:
        pytest.fail(_PG_MISSING, pytrace=False)
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
