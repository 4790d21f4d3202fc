"""The front computed in the database (`Store.front`, `Store.best`) is the front of every point,
and reads only the few points that can be on it."""

from __future__ import annotations

import random

import pytest
from store_helpers import add_evaluated, plan_hash, plan_json, record

from storage import pareto_front
from storage import rows as store_rows


def _cloud(store, study, count: int = 150, seed: int = 0) -> None:
    """`count` plans on a coarse grid (ties in MACs, in FID and in both), some proposed by two
    methods, a few failed, a few measured only at the screen."""
    draw = random.Random(seed)
    for k in range(count):
        name = f"p{k}"
        step = draw.randint(1, 12)  # fewer MACs, higher FID: a front of several plans
        macs, fid = step * 100, float(16 - step + draw.randint(0, 6))
        kind = draw.random()
        if kind < 0.06:
            store.record_candidate_evaluation(
                study, plan_json=plan_json(name), plan_hash=plan_hash(name), method="optuna",
                record=record(name, fid=None, macs=None, status="failed", error="NaN images"))
            continue
        if kind < 0.1:
            store.record_candidate_evaluation(
                study, plan_json=plan_json(name), plan_hash=plan_hash(name), method="optuna",
                record=record(name, fid=fid, macs=macs, stage="screen"))
            continue
        method = "greedy" if kind < 0.4 else "optuna"
        add_evaluated(store, study, name, method=method, label=f"t{k}", fid=fid, macs=macs)
        if kind > 0.85:  # proposed again by the other method
            store.add_candidate(study, plan_json=plan_json(name), plan_hash=plan_hash(name),
                                method="greedy" if method == "optuna" else "optuna", label=f"u{k}")


@pytest.mark.parametrize("seed", [0, 1])
def test_front_in_sql_is_the_front_of_every_point(store, study, seed) -> None:
    _cloud(store, study, seed=seed)
    for method in (None, "greedy", "optuna"):
        expected = pareto_front(store.points(study, method=method))
        assert store.front(study, method=method) == expected
        assert len(expected) >= 2
    assert store.front(study, stage="screen") == pareto_front(store.points(study, stage="screen"))


def test_front_reads_only_the_points_near_the_front(store, study, monkeypatch) -> None:
    _cloud(store, study, count=120)
    built = []
    original = store_rows.point
    monkeypatch.setattr(store_rows, "point", lambda row: built.append(row) or original(row))
    front = store.front(study)
    assert built and len(built) <= 3 * len(front) + 4, (len(built), len(front))


def test_best_matches_a_choice_over_every_point(store, study) -> None:
    _cloud(store, study, seed=2)
    points = [p for p in store.points(study) if p.macs is not None and p.fid is not None]
    for bound in (1.0, 3.0, 7.5, 15.0):
        chosen = store.best(study, max_fid=bound) if any(p.fid <= bound for p in points) else None
        fits = [p for p in points if p.fid <= bound]
        if chosen is not None:
            assert chosen == min(fits, key=lambda p: (p.macs, p.fid, p.plan_hash))
    for budget in (100, 450, 1200):
        fits = [p for p in points if p.macs <= budget]
        if fits:
            assert store.best(study, max_macs=budget) == min(fits, key=lambda p: (p.fid, p.macs, p.plan_hash))


def test_front_of_a_study_without_points_is_empty(store, study) -> None:
    assert store.front(study) == []
