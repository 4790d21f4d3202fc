"""Fixtures of the evaluator tests: an empty reference cache, and the shipped DiT behind a subject
that counts what it generates."""

from __future__ import annotations

import pytest

from evaluators import references
from evaluators.zoo import load_scheduler
from tests.evaluators.counting import CountingSubject


@pytest.fixture()
def fresh_cache():
    references.clear()
    yield
    references.clear()


@pytest.fixture()
def dit_subject(dit, classifier):
    return CountingSubject("digits-dit", dit, load_scheduler("digits-dit"), classifier)
