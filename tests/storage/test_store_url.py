"""Which database URL the store uses, and how bad ones are reported."""

from __future__ import annotations

import pytest

from storage import DEFAULT_URL, ENV_VAR, StoreError, resolve_url
from storage.url import redact


def test_explicit_url_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "sqlite:///from-env.db")
    assert resolve_url("sqlite:///explicit.db") == "sqlite:///explicit.db"
    assert resolve_url(None) == "sqlite:///from-env.db"


def test_default_url_without_environment(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_url(None) == DEFAULT_URL == "sqlite:///edgediff-out/edgediff.db"


def test_bare_path_is_a_sqlite_file():
    assert resolve_url("out/run.db") == "sqlite:///out/run.db"
    assert resolve_url("/tmp/run.db") == "sqlite:////tmp/run.db"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_urls_use_psycopg3(scheme):
    assert resolve_url(f"{scheme}://me:pw@db.example:5433/edgediff") == (
        "postgresql+psycopg://me:pw@db.example:5433/edgediff"
    )
    assert resolve_url("postgresql+psycopg2://me@h/db") == "postgresql+psycopg2://me@h/db"


@pytest.mark.parametrize("bad", ["://nothing", "postgresql://me@host:notaport/db", ""])
def test_unparseable_url_is_one_line_with_the_fix(bad):
    with pytest.raises(StoreError) as caught:
        resolve_url(bad)
    message = str(caught.value)
    assert message.startswith(f"database URL '{bad}' is not valid: ")
    assert "give a SQLAlchemy URL such as sqlite:///path.db or postgresql://user@host/db" in message
    assert "\n" not in message


def test_redact_hides_the_password():
    assert redact("postgresql+psycopg://me:secret@host/db") == "postgresql+psycopg://me:***@host/db"
    assert "secret" not in redact("postgresql://me:secret@host:notaport/db")
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
