"""Faults from outside (a full disk, a locked or read-only database, a Ray cluster that refuses the
client, a plan folder given as a file) are each named with their fix in one line."""

from __future__ import annotations

import errno

import pytest

from edgediff.boundary import expected_message, one_line, store_failure_message
from search.cluster import start_ray
from search.errors import SearchError


@pytest.mark.parametrize("reason, fix", [
    ("database or disk is full", "the disk is full"),
    ("attempt to write a readonly database", "read-only"),
    ("database disk image is malformed", "damaged"),
    ("malformed JSON", "where JSON belongs"),
    ("file is not a database", "damaged"),
    ("database is locked", "another process holds the store"),
    ("server closed the connection unexpectedly", "check the database"),
])
def test_database_faults_name_their_fix(reason, fix):
    message = store_failure_message(reason)
    assert reason in message and fix in message and "\n" not in message


def test_os_faults_name_the_path_and_fix():
    full = expected_message(OSError(errno.ENOSPC, "No space left on device", "/data/plan.json"))
    assert "disk is full" in full and "/data/plan.json" in full
    denied = expected_message(PermissionError(errno.EACCES, "Permission denied", "/etc/x"))
    assert "permissions" in denied
    assert "UTF-8" in expected_message(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))
    assert expected_message(ZeroDivisionError()) is None  # a bug, not an expected failure


def test_names_with_control_characters_stay_on_one_line():
    assert one_line("a\nb\tc\x1b") == "a\\nb\\tc\\x1b"
    assert one_line("Zürich ✓") == "Zürich ✓"


def test_a_ray_token_refusal_is_not_called_an_address_problem(monkeypatch):
    import ray
    import ray.exceptions

    def refuse(*args, **kwargs):
        raise ray.exceptions.AuthenticationError(
            "Token authentication is enabled but no authentication token was found")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(SearchError) as err:
        start_ray("10.0.0.5:6379")
    assert "RAY_AUTH_TOKEN" in str(err.value) and "10.0.0.5:6379" in str(err.value)
