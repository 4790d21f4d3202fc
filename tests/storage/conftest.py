"""Store fixtures: every store test runs on a temporary SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import pytest
from store_helpers import MODEL, SPEC_HASH

from storage import Store


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as opened:
        yield opened


@pytest.fixture
def study(store) -> str:
    """A study on MODEL under SPEC_HASH; its name."""
    store.create_study("s", model=MODEL, spec_json='{"images": 10}', spec_hash=SPEC_HASH, method="greedy")
    return "s"
