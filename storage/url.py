"""Database URLs: which one to use, checked at the boundary, and safe to print."""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import StoreError

ENV_VAR = "EDGEDIFF_DB"
DEFAULT_URL = "sqlite:///edgediff-out/edgediff.db"  # relative to the working directory

_EXAMPLES = "give a SQLAlchemy URL such as sqlite:///path.db or postgresql://user@host/db"
_POSTGRES_NAMES = {"postgresql", "postgres"}  # without a driver: use psycopg 3, the shipped driver
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def resolve_url(url: str | None) -> str:
    """The store's SQLAlchemy URL: `url` if given, else $EDGEDIFF_DB, else DEFAULT_URL.

    A bare file path (no "://") is a SQLite file; postgresql:// and postgres:// use psycopg 3.
    """
    if url is None:
        url = os.environ.get(ENV_VAR) or DEFAULT_URL
    url = url.strip()
    if url and "://" not in url:
        return "sqlite:///" + os.path.expanduser(url)
    parsed = parse_url(url)
    if _in_memory(parsed):
        raise StoreError(f"database URL '{redact(url)}' is an in-memory SQLite database: everything "
                         "stored would be gone when the command ends; give a file, e.g. "
                         "--db sqlite:///edgediff-out/edgediff.db")
    if parsed.drivername in _POSTGRES_NAMES:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _in_memory(parsed: URL) -> bool:
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return (database in ("", ":memory:") or database.startswith("file::memory:")
            or parsed.query.get("mode") == "memory")


def parse_url(url: str) -> URL:
    """`url` parsed by SQLAlchemy, or a StoreError naming it and the expected form."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StoreError(f"database URL '{redact(url)}' is not valid: {reason}; {_EXAMPLES}") from None


def redact(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", url)
