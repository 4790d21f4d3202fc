"""Points, fronts, the full model's point, choosing the best plan, and exporting it."""

from __future__ import annotations

import json
import os

import pytest
from store_helpers import add_evaluated, add_plan, plan_hash, plan_json, record

from storage import Point, StoreError, describe_constraint


def names(points: list[Point]) -> list[str]:
    return [p.plan_hash.rstrip("0") for p in points]


@pytest.fixture
def searched(store, study) -> str:
    """A study with the full model, a greedy front, an Optuna front, and a plan both found."""
    add_evaluated(store, study, "full", method="full", fid=20.0, macs=1000)
    add_evaluated(store, study, "g1", method="greedy", label="delta=0.1", fid=30.0, macs=300)
    add_evaluated(store, study, "g2", method="greedy", label="delta=0.05", fid=24.0, macs=600)
    add_evaluated(store, study, "gbad", method="greedy", fid=40.0, macs=700)
    add_evaluated(store, study, "shared", method="greedy", label="delta=0.02", fid=21.0, macs=800)
    add_evaluated(store, study, "shared", method="optuna", label="trial 7", fid=21.0, macs=800)
    add_evaluated(store, study, "o1", method="optuna", fid=22.0, macs=500)
    add_evaluated(store, study, "o2", method="optuna", fid=22.0, macs=500)
    return study


def test_points_are_one_per_plan_with_every_method(store, searched):
    points = store.points(searched)
    assert names(points) == ["g1", "o1", "o2", "g2", "gbad", "shared", "full"]
    shared = next(p for p in points if names([p]) == ["shared"])
    assert shared.methods == ("greedy", "optuna")
    assert shared.labels == ("delta=0.02", "trial 7")
    assert len(shared.candidate_ids) == 2
    assert [p.plan_hash for p in store.points(searched, method="full")] == [plan_hash("full")]


def test_points_leave_out_failed_unevaluated_and_other_stage_plans(store, study):
    add_evaluated(store, study, "ok", fid=10.0)
    add_plan(store, study, "pending")
    add_plan(store, study, "failed")
    store.record_evaluation(record("failed", status="failed", fid=None, error="boom"))
    add_plan(store, study, "screened")
    store.record_evaluation(record("screened", stage="screen", fid=3.0))
    assert names(store.points(study)) == ["ok"]
    assert names(store.points(study, stage="screen")) == ["screened"]


def test_points_of_one_plan(store, searched):
    (shared,) = store.points(searched, plan_hash=plan_hash("shared"))
    assert shared == next(p for p in store.points(searched) if p.plan_hash == plan_hash("shared"))
    assert store.points(searched, plan_hash=plan_hash("nope")) == []


def test_candidates_by_plan_hash_prefix(store, searched):
    assert [c.method for c in store.candidates(searched, plan_prefix="shared")] == ["greedy", "optuna"]
    found = {c.plan_hash for c in store.candidates(searched, plan_prefix="o")}
    assert found == {plan_hash("o1"), plan_hash("o2")}
    assert store.candidates(searched, plan_prefix="o%") == []  # LIKE wildcards are plain characters
    assert store.candidates(searched, plan_prefix="g_") == []
    assert len(store.candidates(searched, plan_prefix="")) == len(store.candidates(searched)) == 8


def test_methods_of_a_study(store, searched, study):
    assert store.methods(searched) == ["full", "greedy", "optuna"]
    store.create_study("empty", model="digits-dit", spec_json="{}", spec_hash="5" * 64)
    assert store.methods("empty") == []
    with pytest.raises(StoreError, match="unknown study 'nope'"):
        store.methods("nope")


def test_front_overall_and_per_method(store, searched):
    # o1 and o2 tie exactly: both stay. gbad is dominated; g2 loses to o1 overall only.
    assert names(store.front(searched)) == ["g1", "o1", "o2", "shared", "full"]
    assert names(store.front(searched, method="greedy")) == ["g1", "g2", "shared"]
    assert names(store.front(searched, method="optuna")) == ["o1", "o2", "shared"]
    shared = store.front(searched)[3]
    assert shared.methods == ("greedy", "optuna")


def test_full_model_point(store, searched, study):
    full = store.full_model_point(searched)
    assert (full.plan_hash, full.fid, full.macs, full.methods) == (plan_hash("full"), 20.0, 1000, ("full",))
    assert store.full_model_point(searched, store.points(searched)) == full
    store.create_study("no-full", model="digits-dit", spec_json="{}", spec_hash="5" * 64)
    assert store.full_model_point("no-full") is None


def test_best_under_a_max_fid(store, searched):
    assert names([store.best(searched, max_fid=22.0)]) == ["o1"]  # o1 and o2 tie: the lower hash
    assert names([store.best(searched, max_fid=24.0)]) == ["o1"]  # cheaper than g2
    assert names([store.best(searched, max_fid=24.0, method="greedy")]) == ["g2"]
    assert names([store.best(searched, max_fid=100)]) == ["g1"]


def test_best_within_the_full_models_fid(store, searched):
    assert names([store.best(searched, fid_within=1.0)]) == ["shared"]  # fid <= 21
    assert names([store.best(searched, fid_within=2.0)]) == ["o1"]  # fid <= 22
    assert names([store.best(searched, fid_within=0.0)]) == ["full"]


def test_best_under_a_macs_budget(store, searched):
    assert names([store.best(searched, max_macs=550)]) == ["o1"]
    assert names([store.best(searched, max_macs=1e9)]) == ["full"]
    assert names([store.best(searched, max_macs=800, method="greedy")]) == ["shared"]


def test_best_prefers_the_lower_macs_on_equal_fid(store, study):
    add_evaluated(store, study, "dear", fid=10.0, macs=900)
    add_evaluated(store, study, "cheap", fid=10.0, macs=400)
    assert names([store.best(study, max_macs=1000)]) == ["cheap"]
    assert names([store.best(study, max_fid=10.0)]) == ["cheap"]


def test_best_names_the_constraint_and_the_best_available_value(store, searched):
    with pytest.raises(StoreError) as caught:
        store.best(searched, max_fid=5.0)
    assert str(caught.value) == (f"no plan in study 's' has FID <= 5 (lowest is 20, plan "
                                 f"{plan_hash('full')[:12]}: --max-fid 20 would pick it); relax --max-fid")
    with pytest.raises(StoreError) as caught:
        store.best(searched, max_macs=1e2)
    assert str(caught.value) == "no plan in study 's' has MACs <= 100 (lowest is 300); relax --max-macs"
    with pytest.raises(StoreError) as caught:
        store.best(searched, fid_within=-1.5)
    assert str(caught.value) == (
        f"no plan in study 's' has FID <= full + -1.5 = 18.5 (lowest is 20, plan {plan_hash('full')[:12]}: "
        "--fid-within 0 would pick it); relax --fid-within"
    )
    with pytest.raises(StoreError) as caught:
        store.best(searched, max_fid=20.5, method="optuna")
    assert str(caught.value) == (
        f"no plan in study 's' (method optuna) has FID <= 20.5 (lowest is 21, plan "
        f"{plan_hash('shared')[:12]}: --max-fid 21 would pick it); relax --max-fid"
    )


def test_best_needs_exactly_one_constraint(store, searched):
    with pytest.raises(StoreError) as caught:
        store.best(searched)
    assert str(caught.value) == "choose a plan by exactly one of --max-fid, --fid-within, --max-macs"
    with pytest.raises(StoreError, match=r"\(got --max-fid, --max-macs\)$"):
        store.best(searched, max_fid=30.0, max_macs=500)


def test_best_within_needs_the_full_model(store, study):
    add_evaluated(store, study, "g1", fid=30.0)
    with pytest.raises(StoreError) as caught:
        store.best(study, fid_within=2.0)
    assert str(caught.value) == (
        "study 's' has no evaluation of the full (uncompressed) plan to compare --fid-within with; "
        "evaluate the full plan first"
    )


def test_best_of_a_study_without_evaluations(store, study):
    with pytest.raises(StoreError, match=r"^study 's' has no evaluated plans yet"):
        store.best(study, max_fid=30.0)


def test_describe_constraint():
    assert describe_constraint(max_fid=25.0) == "fid <= 25"
    assert describe_constraint(fid_within=2) == "fid <= full + 2"
    assert describe_constraint(max_macs=1e9) == "macs <= 1e9"
    assert describe_constraint(max_macs=2.5e9) == "macs <= 2.5e9"


def test_export_writes_the_exact_plan_and_records_it(store, searched, tmp_path):
    point = store.best(searched, max_fid=22.0)
    target = tmp_path / "plans" / "best.json"
    exported = store.export_plan(searched, point, target, describe_constraint(max_fid=22.0))
    assert target.read_text() == plan_json("o1") == store.plan_json(searched, point.plan_hash)
    assert json.loads(target.read_text())["name"] == "o1"
    assert (exported.path, exported.plan_hash) == (str(target), point.plan_hash)
    assert exported.constraint == "fid <= 22"
    assert store.exports(searched) == [exported]
    assert sorted(os.listdir(target.parent)) == ["best.json"]  # no temporary file left


@pytest.mark.parametrize("where", ["a-folder", "under-a-file"])
def test_export_to_an_unwritable_path_raises_and_records_nothing(store, searched, tmp_path, where):
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-folder" if where == "a-folder" else tmp_path / "a-file" / "plan.json"
    point = store.best(searched, max_fid=22.0)
    with pytest.raises(StoreError) as caught:
        store.export_plan(searched, point, target, "fid <= 22")
    assert str(caught.value).startswith(f"cannot write the plan to '{target}': ")
    assert str(caught.value).endswith("; choose a writable path")
    assert store.exports(searched) == []
    assert os.listdir(tmp_path / "a-folder") == []
    assert (tmp_path / "a-file").read_text() == "x"


def test_plan_json_of_an_unknown_plan(store, searched):
    with pytest.raises(StoreError, match=r"^study 's' has no plan with hash 'abc'"):
        store.plan_json(searched, "abc")
