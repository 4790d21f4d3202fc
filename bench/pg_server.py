"""A throwaway PostgreSQL server for the benchmarks, and a copy of a SQLite store into it.

The server runs from Debian's binaries (`apt-get install postgresql`) on a unix socket in a
temporary folder, as the `postgres` user when started by root (PostgreSQL refuses root), with
durability off (a benchmark's data is thrown away), and is removed on exit.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

BATCH = 2000  # rows per INSERT batch when copying a store


def _bin_dir() -> Path:
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not folders:
        raise SystemExit("error: PostgreSQL server binaries not found: apt-get install postgresql "
                         "(or pass --db postgresql://... of a running server)")
    return Path(folders[-1])


def _run(*command: str) -> None:
    if os.geteuid() == 0:
        command = ("runuser", "-u", "postgres", "--", *command)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed: {(done.stderr or done.stdout).strip()}")


@contextmanager
def throwaway_server(database: str = "bench") -> Iterator[tuple[str, Callable[[], float]]]:
    """A fresh server with an empty `database`; yields its postgresql+psycopg URL and a function
    giving the CPU seconds its processes have used so far (the postmaster, the backends it has
    reaped, the live ones)."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="edgediff-bench-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    pg_ctl = str(bin_dir / "pg_ctl")
    try:
        _run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N", "-E", "UTF8")
        settings = "-c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run(pg_ctl, "-D", str(data), "-o", f"-k {sockets} {settings}", "-l", str(root / "server.log"),
             "-w", "start")
        admin = create_engine(f"postgresql+psycopg://postgres@/postgres?host={sockets}",
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        admin.dispose()
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        yield f"postgresql+psycopg://postgres@/{database}?host={sockets}", lambda: server_cpu(postmaster)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                           + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def process_cpu(pid: int, *, reaped: bool = False) -> float:
    """CPU seconds of process `pid` (with `reaped`, also of its children it has waited for); 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu(postmaster: int) -> float:
    """CPU seconds of the server: the postmaster, its reaped children and its live ones."""
    total = process_cpu(postmaster, reaped=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += process_cpu(int(stat.parent.name))
    return total


def copy_store(source_url: str, target_url: str) -> int:
    """Copy every edgediff table of the store at `source_url` into the (migrated, empty) store at
    `target_url`, rows and ids as they are; the number of rows copied."""
    from storage import Store
    from storage.models import Base

    Store.open(target_url).close()  # the schema, by Alembic as for any store
    source, target = create_engine(source_url), create_engine(target_url)
    copied = 0
    try:
        with source.connect() as reading, target.begin() as writing:
            for table in Base.metadata.sorted_tables:
                batch = []
                for row in reading.execute(select(table)).mappings():
                    batch.append(dict(row))
                    if len(batch) == BATCH:
                        writing.execute(table.insert(), batch)
                        copied, batch = copied + len(batch), []
                if batch:
                    writing.execute(table.insert(), batch)
                    copied += len(batch)
                if "id" in table.c and writing.execute(select(func.count()).select_from(table)).scalar():
                    writing.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                         f"(SELECT max(id) FROM {table.name}))"))
            writing.execute(text("ANALYZE"))
    finally:
        source.dispose()
        target.dispose()
    return copied
