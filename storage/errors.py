"""The one exception the store raises for problems a user can fix."""

from __future__ import annotations


class StoreError(Exception):
    """A user-facing store problem: one line naming what is wrong and how to fix it.

    The CLI prints the message and exits with status 2.
    """


class NoStoreError(StoreError):
    """The URL reaches a database (or names a SQLite file) that holds no edgediff store yet."""
