"""A study with the latency objective: its front, best plan and hypervolume use the measured
latency per image (relative to the full model's), not the MACs."""

from __future__ import annotations

import pytest
from store_helpers import MODEL, SPEC_HASH, add_evaluated, plan_hash

from storage import FULL_METHOD, Point, normalized_hypervolume, pareto_front, reference_point

# (plan, MACs, latency s/img, FID): "lean" has the fewest MACs but runs slowly (say a windowed
# attention whose kernel is slower than full attention), "quick" saves time with more MACs.
PLANS = [("full", 1000, 0.10, 10.0), ("lean", 400, 0.09, 12.0), ("quick", 700, 0.05, 12.0),
         ("slow", 800, 0.11, 11.0)]


def _points() -> list[Point]:
    return [Point(plan_hash=p, macs=m, fid=f, latency=t) for p, m, t, f in PLANS]


def test_the_latency_front_ranks_by_measured_latency():
    points = _points()
    assert [p.plan_hash for p in pareto_front(points)] == ["lean", "slow", "full"]
    assert [p.plan_hash for p in pareto_front(points, "latency")] == ["quick", "full"]
    full = points[0]
    assert reference_point(full, "latency") == (0.10, 20.0)
    # quick covers (0.05..0.10 of latency) x (12..20 of FID) = 0.4 of the full model's box
    assert normalized_hypervolume(points, full, "latency") == pytest.approx(0.4)
    unknown = [Point(plan_hash="n", macs=1, fid=1.0)]  # no latency measured: not on the front
    assert pareto_front(unknown, "latency") == [] and pareto_front(unknown) != []


@pytest.fixture
def latency_study(store) -> str:
    store.create_study("lat", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH,
                       objectives=("latency", "fid"))
    for name, macs, latency, fid in PLANS:
        add_evaluated(store, "lat", name, method=FULL_METHOD if name == "full" else "optuna",
                      macs=macs, fid=fid, latency_per_image_s=latency)
    return "lat"


def test_store_front_and_best_follow_the_study_objective(store, latency_study, study):
    assert store.cost(latency_study) == "latency" and store.cost(study) == "macs"
    assert [p.plan_hash for p in store.front(latency_study)] == [plan_hash("quick"), plan_hash("full")]
    # the cheapest plan within +2 FID: the quickest, although "lean" has fewer MACs
    assert store.best(latency_study, fid_within=2.0).plan_hash == plan_hash("quick")
    assert store.best(latency_study, max_fid=12.0).plan_hash == plan_hash("quick")
    # a bound on MACs stays a bound on MACs
    assert store.best(latency_study, max_macs=500).plan_hash == plan_hash("lean")
