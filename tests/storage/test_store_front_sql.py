"""The front computed in the database (`Store.front`, `Store.best`) is the front of every point,
and reads only the few points that can be on it."""

from __future__ import annotations

import functools
import random

import pytest
from store_helpers import add_evaluated, plan_hash, plan_json, record

from storage import StoreError, pareto_front
from storage import rows as store_rows
from storage.choose import choose


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


def _outcome(run):
    try:
        return run()
    except StoreError as err:
        return str(err)


def test_best_reads_few_points_and_chooses_as_over_every_point(store, study, monkeypatch) -> None:
    _cloud(store, study, seed=3)
    add_evaluated(store, study, "full", method="full", fid=12.0, macs=1300)
    add_evaluated(store, study, "wide", method="optuna", fid=4.0, macs=650,  # an interval off the front
                  extra={"quality": {"objective": "fid", "value": 4.0, "low": 1.0, "high": 30.0,
                                     "delta": -8.0, "delta_low": -11.0, "delta_high": 18.0}})
    everything = store.points(study)
    full = store.full_model_point(study)
    built = []
    original = store_rows.point
    monkeypatch.setattr(store_rows, "point", lambda row: built.append(row) or original(row))
    cases = [dict(max_fid=v) for v in (0.5, 4.0, 9.0, 14.0)] + [dict(fid_within=v) for v in (-20, -3, 0, 2)]
    cases += [dict(max_macs=v) for v in (50, 300, 650, 1200)]
    for given in cases:
        built.clear()
        chosen = _outcome(functools.partial(store.best, study, **given))
        assert len(built) < 20, given
        expected = _outcome(functools.partial(choose, everything, where=f"study '{study}'", full=full,
                                              **given))
        assert chosen == expected, given


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
