"""Studies: creation, conflicts, lookup and the study list."""

from __future__ import annotations

from datetime import timezone

import pytest
from store_helpers import MODEL, SPEC_HASH, add_evaluated, add_plan, plan_hash, plan_json, record

from storage import StoreError


def test_create_and_get_a_study(store):
    created = store.create_study(
        "dit-a",
        model=MODEL,
        spec_json='{"images": 200}',
        spec_hash=SPEC_HASH,
        model_fingerprint="3f0c",
        objectives=("macs", "fid", "latency"),
        method="both",
        notes="first try",
    )
    assert store.get_study("dit-a") == created
    assert (created.name, created.model, created.model_fingerprint) == ("dit-a", MODEL, "3f0c")
    assert (created.spec_json, created.spec_hash) == ('{"images": 200}', SPEC_HASH)
    assert (created.method, created.notes) == ("both", "first try")
    assert created.objectives == ("macs", "fid", "latency")
    assert created.created_at.tzinfo == timezone.utc
    with pytest.raises(StoreError, match=r"^study 'dit-a' already exists; pass another --study name$"):
        store.create_study("dit-a", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)


def test_default_objectives_and_method(store):
    study = store.create_study("s", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    assert (study.objectives, study.method) == (("macs", "fid"), "manual")


def test_get_or_create_returns_the_existing_study(store):
    first, created = store.get_or_create_study("s", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    again, created_again = store.get_or_create_study("s", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    assert (created, created_again) == (True, False)
    assert again == first


def test_get_or_create_refuses_another_model_or_spec(store):
    store.create_study("s", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    with pytest.raises(StoreError) as caught:
        store.get_or_create_study("s", model="digits-unet", spec_json="{}", spec_hash=SPEC_HASH)
    assert str(caught.value) == (
        "study 's' is of model digits-dit, not digits-unet: pass --model digits-dit or another "
        "--study name"
    )
    with pytest.raises(StoreError) as caught:
        store.get_or_create_study("s", model=MODEL, spec_json="{}", spec_hash="6" * 64)
    assert str(caught.value) == (
        "study 's' was measured under 555555555555, this run under 666666666666 (the evaluation "
        "spec, model weights, device or FID features differ; a study compares plans under one "
        "measurement): rerun with the options it was created with, or pass another --study name"
    )


def test_unknown_study_names_the_known_ones(store):
    with pytest.raises(StoreError) as caught:
        store.get_study("nope")
    assert str(caught.value) == (
        "unknown study 'nope': the store has no studies yet; run 'edgediff evaluate' to create one"
    )
    for name in ("b", "a"):
        store.create_study(name, model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    with pytest.raises(StoreError) as caught:
        store.candidates("nope")
    assert str(caught.value) == "unknown study 'nope': known studies are a, b; 'edgediff studies' lists them"


def test_list_studies_counts_and_best_values(store, study):
    add_evaluated(store, study, "cheap", fid=30.0, macs=100)
    add_evaluated(store, study, "good", fid=12.5, macs=900)
    add_evaluated(store, study, "good", method="optuna", fid=12.5, macs=900)  # same plan: one evaluation
    store.record_candidate_evaluation(
        study,
        plan_json=plan_json("broken"),
        plan_hash=plan_hash("broken"),
        method="greedy",
        record=record("broken", status="failed", fid=None, macs=None, error="out of memory"),
    )
    add_plan(store, study, "screened")
    store.record_evaluation(record("screened", stage="screen", fid=1.0, macs=50))  # not a full evaluation
    store.create_study("empty", model=MODEL, spec_json="{}", spec_hash="6" * 64)

    summaries = {s.name: s for s in store.list_studies()}
    assert list(summaries) == [study, "empty"]  # oldest first
    summary = summaries[study]
    assert (summary.model, summary.method) == (MODEL, "greedy")
    assert (summary.candidates, summary.evaluations_ok, summary.evaluations_failed) == (5, 3, 1)
    assert (summary.best_fid, summary.min_macs) == (12.5, 100)
    empty = summaries["empty"]
    assert (empty.candidates, empty.evaluations_ok, empty.evaluations_failed) == (0, 0, 0)
    assert (empty.best_fid, empty.min_macs) == (None, None)


@pytest.mark.parametrize(("name", "problem"), [("", "cannot be empty"), ("  ", "cannot be empty"),
                                               ("runs/dit", "contains '/'"), ("x" * 201, "at most 200")])
def test_names_a_study_cannot_have(store, name, problem):
    with pytest.raises(StoreError, match=problem):
        store.create_study(name, model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    assert store.list_studies() == []
