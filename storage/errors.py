"""The one exception the store raises for problems a user can fix."""

from __future__ import annotations


class StoreError(Exception):
    """A user-facing store problem: one line naming what is wrong and how to fix it.

    The CLI prints the message and exits with status 2.
    """


class NoStoreError(StoreError):
    """The URL reaches a database (or names a SQLite file) that holds no edgediff store yet."""


class DamagedStoreError(StoreError):
    """A row or table of the store that this edgediff cannot read (edited by hand, or damaged)."""


def damaged_message(url: str, err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
    return (f"the store {url} holds a row this edgediff cannot read ({reason}); it was changed "
            "outside edgediff or is damaged: restore it from a backup, or delete that row")
