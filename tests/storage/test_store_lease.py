"""The study lease (one driver per study) on SQLite and PostgreSQL: refusal naming the holder,
heartbeat, takeover only when stale, release, and one winner among drivers racing for it."""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from storage import LeaseHeldError, Store, new_holder
from storage.models import Lease, utc_now


def _age(store: Store, study: str, seconds: float, **fields) -> None:
    """Move the lease's heartbeat `seconds` into the past (and set other fields)."""
    with store._writing() as session:
        session.execute(update(Lease).where(Lease.study == study)
                        .values(heartbeat_at=utc_now() - timedelta(seconds=seconds), **fields))


def test_a_second_driver_is_refused_naming_host_and_pid(store):
    first, second = new_holder(), new_holder()
    held = store.acquire_lease("s", first)
    assert (held.host, held.pid) == (socket.gethostname(), os.getpid())
    with pytest.raises(LeaseHeldError) as err:
        store.acquire_lease("s", second)
    message = str(err.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message and "\n" not in message
    assert store.lease_of("s").holder == first
    assert store.acquire_lease("s", first).holder == first  # the holder may take it again
    assert store.acquire_lease("other", second).holder == second  # leases are per study


def test_heartbeat_keeps_it_and_a_stale_lease_is_taken_over(store):
    first, second = new_holder(), new_holder()
    store.acquire_lease("s", first, ttl_s=60)
    _age(store, "s", 30)
    assert store.renew_lease("s", first)
    assert utc_now() - store.lease_of("s").heartbeat_at < timedelta(seconds=5)
    with pytest.raises(LeaseHeldError):
        store.acquire_lease("s", second, ttl_s=60)
    _age(store, "s", 61)  # the holder stopped beating
    assert store.acquire_lease("s", second, ttl_s=60).holder == second
    assert not store.renew_lease("s", first)  # the old holder learns it lost the lease
    store.release_lease("s", first)  # and its release leaves the new holder's lease alone
    assert store.lease_of("s").holder == second
    store.release_lease("s", second)
    assert store.lease_of("s") is None


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(store):
    store.acquire_lease("s", new_holder())
    _age(store, "s", 0, pid=2**22 + 12345)  # above Linux's pid_max: no such process
    assert store.acquire_lease("s", "b" * 32).holder == "b" * 32
    store.acquire_lease("t", new_holder())
    _age(store, "t", 0, host="another-machine", pid=2**22 + 12345)  # elsewhere: wait for the TTL
    with pytest.raises(LeaseHeldError, match="another-machine"):
        store.acquire_lease("t", "c" * 32)


def test_racing_drivers_get_one_lease(store_url):
    stores = [Store.open(store_url) for _ in range(4)]
    won, refused, start = [], [], threading.Barrier(4)

    def race(store: Store) -> None:
        holder = new_holder()
        start.wait()
        try:
            store.acquire_lease("s", holder)
            won.append(holder)
        except LeaseHeldError:
            refused.append(holder)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 3
    assert stores[0].lease_of("s").holder == won[0]
    for s in stores:
        s.close()
