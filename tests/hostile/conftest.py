"""Fixtures of the hostile-input tests: a store holding one study, and plan files."""

from __future__ import annotations

import pytest

from storage import Store

SPEC_HASH = "5" * 64


@pytest.fixture
def seeded_url(tmp_path) -> str:
    """A SQLite store with one study 's' of digits-unet (its rows are what must not change)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Store.open(url) as store:
        store.create_study("s", model="digits-unet", spec_json="{}", spec_hash=SPEC_HASH)
    return url


@pytest.fixture(scope="session")
def unet_plan(tmp_path_factory):
    """A valid 4-step DeepCache plan file for digits-unet."""
    from edgediff.cli import main

    path = tmp_path_factory.mktemp("plans") / "unet.json"
    assert main(["plan", "--model", "digits-unet", "-o", str(path), "--plan-steps", "4",
                 "--deepcache-branch", "1", "--interval", "2"]) == 0
    return path
