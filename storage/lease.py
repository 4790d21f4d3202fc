"""One driver per study: a lease row in the store, renewed by a heartbeat, taken over only when stale.

A search takes the study's lease before it measures anything (`Store.acquire_lease`), renews it
every few seconds while it runs (`Store.renew_lease`) and gives it back at the end
(`Store.release_lease`). A second driver finds the lease held and is refused with the holder's host
and pid. A lease is stale, and the next driver takes it over, when its heartbeat is older than its
time-to-live (the holder was killed, or lost the database) or when its holder ran on this host
under a pid that no longer exists (a `kill -9` resumes at once). This is how Optuna's
`heartbeat_interval` and `fail_stale_trials` treat a trial, one level up: a study.

The read-check-write runs in one write transaction: SQLite's BEGIN IMMEDIATE queues writers, and
PostgreSQL locks the row (`FOR UPDATE`); two drivers that both find no row race on the primary key,
and the loser reads the winner's row.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from storage.errors import StoreError
from storage.models import Lease, utc_now
from storage.rows import insert_or_get

LEASE_TTL_S = 60.0  # a lease not renewed for this long is stale
HEARTBEAT_S = 10.0  # how often a driver renews its lease


class LeaseHeldError(StoreError):
    """Another live driver holds the study's lease; the message names its host and pid."""


@dataclass(frozen=True)
class LeaseInfo:
    """A study's lease: `holder` token, `host`, `pid`, `acquired_at`, `heartbeat_at` (UTC)."""

    study: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime


def new_holder() -> str:
    """A fresh holder token."""
    return uuid.uuid4().hex


def acquire(session: Session, study: str, holder: str, *, ttl_s: float = LEASE_TTL_S) -> LeaseInfo:
    """Take the lease of `study` for `holder` (again, if it holds it already); LeaseHeldError if a
    live driver holds it."""
    now = utc_now()
    mine = Lease(study=study, holder=holder, host=socket.gethostname()[:200], pid=os.getpid(),
                 acquired_at=now, heartbeat_at=now)
    query = select(Lease).where(Lease.study == study)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row, created = insert_or_get(session, mine, query)
    if created or row.holder == holder:
        row.heartbeat_at = now
        return _info(row)
    if not is_stale(row, now, ttl_s):
        raise LeaseHeldError(held_message(row, now, ttl_s))
    for name in ("holder", "host", "pid", "acquired_at", "heartbeat_at"):  # take it over
        setattr(row, name, getattr(mine, name))
    return _info(row)


def renew(session: Session, study: str, holder: str) -> bool:
    """Move the heartbeat of `holder`'s lease on; False if the lease is no longer `holder`'s."""
    done = session.execute(update(Lease).where(Lease.study == study, Lease.holder == holder)
                           .values(heartbeat_at=utc_now()))
    return done.rowcount == 1


def release(session: Session, study: str, holder: str) -> None:
    """Give the lease back (nothing if another driver has taken it over meanwhile)."""
    session.execute(delete(Lease).where(Lease.study == study, Lease.holder == holder))


def find(session: Session, study: str) -> LeaseInfo | None:
    row = session.get(Lease, study)
    return None if row is None else _info(row)


def is_stale(row: Lease | LeaseInfo, now: datetime, ttl_s: float) -> bool:
    if now - row.heartbeat_at > timedelta(seconds=ttl_s):
        return True
    return row.host == socket.gethostname()[:200] and row.pid != os.getpid() and not _pid_alive(row.pid)


def held_message(row: Lease | LeaseInfo, now: datetime, ttl_s: float) -> str:
    ago = max(0, int((now - row.heartbeat_at).total_seconds()))
    since = row.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"study '{row.study}' is being driven by another search (pid {row.pid} on {row.host}, "
            f"since {since}, last heartbeat {ago} s ago): wait for it to finish or stop it; a "
            f"lease not renewed for {ttl_s:g} s is taken over")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or a pid this OS cannot check): assume alive
    return True


def _info(row: Lease) -> LeaseInfo:
    return LeaseInfo(row.study, row.holder, row.host, row.pid, row.acquired_at, row.heartbeat_at)
