"""The driver's hold on its study: the store's lease (`storage.lease`), renewed on a thread.

    with StudyLease(url, "dit") as held:   # LeaseHeldError (one line) if another driver has it
        ... the search; `held.lost` turns True if a stale-lease takeover ended this driver's hold

The heartbeat runs on its own connection every `heartbeat_s`; a database that stops answering
only delays the next beat (the lease goes stale after its time-to-live, and the search's own store
calls fail first).
"""

from __future__ import annotations

import threading
from types import TracebackType

from storage import HEARTBEAT_S, LEASE_TTL_S, LeaseHeldError, NoStoreError, Store, new_holder
from storage.lease import held_message, is_stale
from storage.models import utc_now


def check_free(url: str | None, study: str, *, ttl_s: float = LEASE_TTL_S) -> None:
    """LeaseHeldError if a live driver holds the study now (a store that does not exist yet is not
    created): the command line asks before it prints anything. The lease itself is taken later."""
    try:
        with Store.open(url, create=False) as store:
            held = store.lease_of(study)
    except NoStoreError:
        return
    if held is not None and not is_stale(held, utc_now(), ttl_s):
        raise LeaseHeldError(held_message(held, utc_now(), ttl_s))


class StudyLease:
    """The lease of one study for the life of a `with` block (see the module docstring)."""

    def __init__(self, url: str, study: str, *, ttl_s: float = LEASE_TTL_S,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.url, self.study, self.ttl_s, self.heartbeat_s = url, study, ttl_s, heartbeat_s
        self.holder = new_holder()
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: Store | None = None

    def __enter__(self) -> StudyLease:
        self._store = Store.open(self.url)
        try:
            self._store.acquire_lease(self.study, self.holder, ttl_s=self.ttl_s)
        except BaseException:
            self._store.close()
            raise
        self._thread = threading.Thread(target=self._beat, name=f"edgediff-lease-{self.study}",
                                        daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        assert self._store is not None
        while not self._stop.wait(self.heartbeat_s):
            try:
                if not self._store.renew_lease(self.study, self.holder):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a database hiccup: try again at the next beat
                continue

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_s + 5)
        assert self._store is not None
        try:
            self._store.release_lease(self.study, self.holder)
        except Exception:  # noqa: BLE001 - unreachable now: the lease goes stale on its own
            pass
        finally:
            self._store.close()
