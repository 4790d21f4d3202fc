"""Candidates and evaluations: idempotent adds, dedupe by hashes, all-or-nothing writes."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from store_helpers import MODEL, SPEC_HASH, add_evaluated, add_plan, find, plan_hash, plan_json, record

from storage import EvaluationInfo, StoreError, candidate_labels


def test_add_candidate_is_idempotent(store, study):
    first = add_plan(store, study, "p", label="delta=0.05")
    again = add_plan(store, study, "p", label="changed")
    other_method = add_plan(store, study, "p", method="optuna")
    assert again == first
    assert (first.study, first.method, first.label) == (study, "greedy", "delta=0.05")
    assert (first.plan_hash, first.plan_json) == (plan_hash("p"), plan_json("p"))
    assert other_method.id != first.id
    assert [c.method for c in store.candidates(study)] == ["greedy", "optuna"]
    assert store.candidates(study, method="optuna") == [other_method]


def test_candidate_labels_accumulate(store, study):
    add_plan(store, study, "p", label="δ=0.1")
    store.add_candidate_label(study, plan_hash=plan_hash("p"), method="greedy", label="δ=0.125")
    again = store.add_candidate_label(study, plan_hash=plan_hash("p"), method="greedy", label="δ=0.1")
    assert candidate_labels(again.label) == ["δ=0.1", "δ=0.125"]
    assert store.candidates(study)[0].label == "δ=0.1, δ=0.125"
    with pytest.raises(StoreError, match="no optuna candidate"):
        store.add_candidate_label(study, plan_hash=plan_hash("p"), method="optuna", label="x")


def test_record_and_find_an_evaluation(store):
    started = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    full = record(
        "p",
        macs_per_generation=50_000,
        latency_per_image_s=0.25,
        mse=0.01,
        psnr=30.5,
        similarity=0.97,
        class_accuracy=0.99,
        versions={"torch": "2.13.0", "diffusers": "0.42.0"},
        started_at=started,
        finished_at=started + timedelta(seconds=90),
        seconds=90.0,
        worker="host-1",
        extra={"seeds": [0, 1]},
        macs=12_000_000_000,  # needs a BigInteger
    )
    saved = store.record_evaluation(full)
    assert isinstance(saved, EvaluationInfo)
    found = find(store, "p")
    assert found == saved
    assert found.macs_per_image == 12_000_000_000 and found.extra == {"seeds": [0, 1]}
    assert found.started_at == started and found.started_at.tzinfo == timezone.utc
    assert find(store, "p", stage="screen") is None
    assert find(store, "p", model="digits-unet") is None


def test_an_ok_evaluation_is_never_overwritten(store):
    first = store.record_evaluation(record("p", fid=10.0))
    assert store.record_evaluation(record("p", fid=99.0)) == first
    assert store.record_evaluation(record("p", status="failed", fid=None, error="boom")) == first
    assert find(store, "p").fid == 10.0


def test_a_failed_evaluation_is_replaced(store):
    failed = store.record_evaluation(record("p", status="failed", fid=None, error="out of memory"))
    retried = store.record_evaluation(record("p", fid=11.0, worker="host-2"))
    assert (retried.status, retried.fid, retried.error, retried.worker) == ("ok", 11.0, None, "host-2")
    assert retried.id == failed.id  # one row per key
    assert find(store, "p") == retried


def test_the_same_plan_in_two_studies_shares_one_evaluation(store, study):
    store.create_study("other", model=MODEL, spec_json="{}", spec_hash=SPEC_HASH)
    store.create_study("other-spec", model=MODEL, spec_json="{}", spec_hash="6" * 64)
    add_evaluated(store, study, "p", fid=10.0)
    add_evaluated(store, "other", "p", method="optuna", fid=50.0)
    shared = find(store, "p")
    assert shared.fid == 10.0  # found by hashes, not recomputed or overwritten
    [mine], [theirs] = store.points(study), store.points("other")
    assert mine.evaluation_id == theirs.evaluation_id == shared.id
    add_plan(store, "other-spec", "p")
    assert store.points("other-spec") == []  # another spec: that evaluation does not count


def test_a_record_for_another_model_or_plan_is_refused_and_nothing_is_written(store, study):
    with pytest.raises(ValueError, match="does not belong to candidate"):
        store.record_candidate_evaluation(
            study, plan_json=plan_json("p"), plan_hash=plan_hash("p"), method="greedy", record=record("q")
        )
    assert store.candidates(study) == []
    assert find(store, "q") is None


def test_bad_stage_or_status_is_refused():
    with pytest.raises(ValueError, match="stage 'final'"):
        record("p", stage="final")
    with pytest.raises(ValueError, match="status 'done'"):
        record("p", status="done")
    with pytest.raises(ValueError, match="started_at 2025-01-01 00:00:00 has no time zone"):
        record("p", started_at=datetime(2025, 1, 1))


def run_in_threads(count: int, work) -> list:
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_concurrent_writers_of_one_plan_leave_one_candidate_and_one_evaluation(store, study):
    def work(index: int):
        return store.record_candidate_evaluation(
            study,
            plan_json=plan_json("p"),
            plan_hash=plan_hash("p"),
            method="greedy",
            record=record("p", fid=10.0 + index),
        )

    results = run_in_threads(6, work)
    assert len({candidate.id for candidate, _ in results}) == 1
    assert len({evaluation.id for _, evaluation in results}) == 1
    assert len({evaluation.fid for _, evaluation in results}) == 1  # the first ok result, kept


def test_concurrent_writers_of_different_plans_all_land(store, study):
    run_in_threads(6, lambda index: add_evaluated(store, study, f"p{index}", fid=float(index)))
    assert len(store.points(study)) == 6
