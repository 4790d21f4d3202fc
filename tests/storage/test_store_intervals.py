"""Choosing plans on the paired difference's interval: the store reads the interval an evaluation
keeps in extra["quality"], and `best` trusts only its upper end."""

from __future__ import annotations

import pytest
from store_helpers import add_evaluated, plan_hash

from storage import StoreError


def quality(value: float, low: float, high: float, delta: float, delta_low: float, delta_high: float,
            objective: str = "fid") -> dict:
    return {"quality": {"objective": objective, "value": value, "low": low, "high": high,
                        "delta": delta, "delta_low": delta_low, "delta_high": delta_high}}


@pytest.fixture
def noisy(store, study) -> str:
    """The full model at FID 20; a cheap plan whose FID reads BELOW the full model's on these
    images but whose paired difference is uncertain, and a dearer plan known to be close."""
    add_evaluated(store, study, "full", method="full", fid=20.0, macs=1000,
                  extra=quality(20, 17, 24, 0, 0, 0))
    add_evaluated(store, study, "lucky", fid=19.0, macs=300, extra=quality(19, 15, 26, -1, -3, 7.5))
    add_evaluated(store, study, "close", fid=21.0, macs=600, extra=quality(21, 18, 25, 1, 0.2, 1.8))
    return study


def test_points_carry_the_interval_of_the_paired_difference(store, noisy):
    by_hash = {p.plan_hash: p for p in store.points(noisy)}
    lucky = by_hash[plan_hash("lucky")]
    assert (lucky.quality, lucky.quality_low, lucky.quality_high) == (19, 15, 26)
    assert (lucky.delta, lucky.delta_low, lucky.delta_high) == (-1, -3, 7.5)
    assert lucky.objective == "fid"


def test_fid_within_trusts_the_upper_bound_of_the_paired_difference(store, noisy):
    # a plain comparison of FIDs would take "lucky" (19 <= 20 + 5); its difference may be +7.5
    assert store.best(noisy, fid_within=5).plan_hash == plan_hash("close")
    assert store.best(noisy, fid_within=7.5).plan_hash == plan_hash("lucky")
    assert store.best(noisy, fid_within=1).plan_hash == plan_hash("full")
    with pytest.raises(StoreError) as caught:
        store.best(noisy, fid_within=-0.5)  # the full model itself qualifies for any X >= 0
    assert str(caught.value) == (
        "no plan in study 's' has FID <= full + -0.5 at the upper end of its 95% interval (lowest is "
        f"0, plan {plan_hash('full')[:12]}: --fid-within 0 would pick it); relax --fid-within or "
        "measure more images to narrow the intervals")


def test_max_fid_trusts_the_upper_bound_of_the_fid(store, noisy):
    assert store.best(noisy, max_fid=25).plan_hash == plan_hash("close")
    assert store.best(noisy, max_fid=26).plan_hash == plan_hash("lucky")


def test_the_front_uses_the_studys_quality_metric(store, study):
    add_evaluated(store, study, "full", method="full", fid=None, macs=1000,
                  extra=quality(0, 0, 0, 0, 0, 0, objective="fidelity"))
    add_evaluated(store, study, "a", fid=None, macs=300,
                  extra=quality(0.2, 0.1, 0.3, 0.2, 0.1, 0.3, "fidelity"))
    add_evaluated(store, study, "b", fid=None, macs=400,
                  extra=quality(0.3, 0.2, 0.4, 0.3, 0.2, 0.4, "fidelity"))
    assert [p.plan_hash for p in store.front(study)] == [plan_hash("a"), plan_hash("full")]
    assert store.best(study, fid_within=0.35).plan_hash == plan_hash("a")
