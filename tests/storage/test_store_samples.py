"""Sample images kept with evaluations, and every evaluation of a study in the order it finished."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from store_helpers import add_plan, find, plan_hash, plan_json, record, sheet

from storage import SampleImages, StoreError

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)


def evaluate(store, study: str, plan: str, *, method: str = "greedy", samples=None, **fields):
    """Record an evaluation of plan `plan` as a candidate of `study` by `method`."""
    return store.record_candidate_evaluation(
        study,
        plan_json=plan_json(plan),
        plan_hash=plan_hash(plan),
        method=method,
        record=record(plan, **fields),
        samples=samples,
    )


def test_samples_are_kept_with_an_ok_evaluation(store, study):
    binary = bytes(range(256)) * 4  # every byte value survives the round trip
    evaluate(store, study, "p", samples=sheet("p", png=binary))
    found = store.samples(study, plan_hash("p"))
    assert isinstance(found, SampleImages)
    assert found == sheet("p", png=binary) and type(found.png) is bytes
    assert found.captions == ("0", "1", "2", "3") and found.seeds == (0, 1, 2, 3)
    assert store.samples(study, plan_hash("other")) is None


def test_no_samples_with_a_failed_evaluation(store, study):
    evaluate(store, study, "p", status="failed", error="boom", samples=sheet("p"))
    assert find(store, "p").status == "failed"
    assert store.samples(study, plan_hash("p")) is None
    evaluate(store, study, "p", samples=sheet("p", png=b"retried"))  # the retry that worked
    assert store.samples(study, plan_hash("p")).png == b"retried"


def test_the_first_samples_are_kept_unless_a_later_stage_has_more_images(store, study):
    evaluate(store, study, "p", stage="screen", samples=sheet("p", png=b"screen"))
    store.record_evaluation(record("p", stage="full"), samples=sheet("p", png=b"full, same images"))
    assert store.samples(study, plan_hash("p")).png == b"screen"
    store.record_evaluation(record("p", stage="full"), samples=sheet("p", count=3, png=b"fewer"))
    assert store.samples(study, plan_hash("p")).png == b"screen"
    # a screen of 4 images, then a full pass keeping 16: the larger sheet (same first seeds) wins
    store.record_evaluation(record("p", stage="full"), samples=sheet("p", count=16, png=b"more"))
    found = store.samples(study, plan_hash("p"))
    assert (found.png, found.count, found.seeds) == (b"more", 16, tuple(range(16)))


def test_record_evaluation_keeps_samples_too(store, study):
    add_plan(store, study, "p")
    store.record_evaluation(record("p"), samples=sheet("p"))
    assert store.samples(study, plan_hash("p")) == sheet("p")


def test_samples_of_another_plan_are_refused_and_nothing_is_written(store, study):
    with pytest.raises(ValueError, match="do not belong to the evaluation"):
        evaluate(store, study, "p", samples=sheet("q"))
    assert find(store, "p") is None and store.candidates(study) == []
    assert store.samples(study, plan_hash("q")) is None


def test_a_sheet_must_have_a_caption_and_a_seed_per_image():
    with pytest.raises(ValueError, match="sample sheet of 4 images has 4 captions and 2 seeds"):
        sheet("p", seeds=(0, 1))


def test_samples_of_an_unknown_study(store):
    with pytest.raises(StoreError, match="unknown study 'nope'"):
        store.samples("nope", plan_hash("p"))


def at(minutes: int) -> dict:
    return {"finished_at": T0 + timedelta(minutes=minutes)}


def test_outcomes_candidates_with_their_evaluations_in_finish_order(store, study):
    evaluate(store, study, "c", method="optuna", status="failed", error="killed")  # unfinished
    evaluate(store, study, "a", **at(3))
    evaluate(store, study, "b", stage="screen", **at(1))
    evaluate(store, study, "b", **at(4))
    evaluate(store, study, "d", method="optuna", **at(2))
    evaluate(store, study, "a", method="optuna", **at(9))  # the stored evaluation is kept (at 3)
    evaluate(store, study, "f", stage="screen", **at(5))
    evaluate(store, study, "f", **at(5))  # a tie: by evaluation id
    evaluate(store, study, "g", status="failed", error="oom")  # unfinished, after c by id
    add_plan(store, study, "e")  # never evaluated: absent
    store.record_evaluation(record("a", spec_hash="6" * 64, **at(0)))  # another measurement: absent
    outcomes = store.outcomes(study)
    seen = [(o.plan_hash[0], o.method, o.stage, o.status) for o in outcomes]
    assert seen == [
        ("b", "greedy", "screen", "ok"),
        ("d", "optuna", "full", "ok"),
        ("a", "greedy", "full", "ok"),
        ("a", "optuna", "full", "ok"),
        ("b", "greedy", "full", "ok"),
        ("f", "greedy", "screen", "ok"),
        ("f", "greedy", "full", "ok"),
        ("c", "optuna", "full", "failed"),
        ("g", "greedy", "full", "failed"),
    ]
    kept = find(store, "a")  # both candidates of plan a see the one stored evaluation (at 3)
    assert outcomes[2].evaluation_id == outcomes[3].evaluation_id == kept.id
    assert outcomes[2].finished_at == kept.finished_at == T0 + timedelta(minutes=3)
    assert outcomes[2].candidate_id != outcomes[3].candidate_id
    assert outcomes[0].candidate_id == outcomes[4].candidate_id  # one candidate, two stages
    assert (outcomes[2].macs_per_image, outcomes[2].fid) == (kept.macs_per_image, kept.fid)
    assert outcomes[0].proposed_at.tzinfo is not None
    optuna = [(o.plan_hash[0], o.status) for o in store.outcomes(study, method="optuna")]
    assert optuna == [("d", "ok"), ("a", "ok"), ("c", "failed")]
    assert store.outcomes(study, method="manual") == []


def test_outcomes_carry_the_screens_verdict(store, study):
    evaluate(store, study, "p", stage="screen", extra={"passed_screen": False}, **at(1))
    evaluate(store, study, "q", stage="screen", extra={"passed_screen": True}, **at(2))
    evaluate(store, study, "q", **at(3))
    verdicts = [(o.plan_hash[0], o.stage, o.passed_screen) for o in store.outcomes(study)]
    assert verdicts == [("p", "screen", False), ("q", "screen", True), ("q", "full", None)]


def test_outcomes_is_one_query(store, study):
    for k, plan in enumerate("abcdef"):
        evaluate(store, study, plan, stage="screen", **at(k))
        evaluate(store, study, plan, **at(10 + k))
    statements: list[str] = []

    def capture(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        outcomes = store.outcomes(study)
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    assert len(outcomes) == 12
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_outcomes_of_an_unknown_or_empty_study(store, study):
    assert store.outcomes(study) == []
    with pytest.raises(StoreError, match="unknown study 'nope'"):
        store.outcomes("nope")


def test_evaluated_marker_changes_with_every_write_outcomes_would_show(store, study):
    markers = [store.evaluated_marker(study)]
    evaluate(store, study, "a", finished_at=T0)
    markers.append(store.evaluated_marker(study))
    add_plan(store, study, "a", method="optuna")  # a second method proposes a measured plan
    markers.append(store.evaluated_marker(study))
    evaluate(store, study, "b", status="failed", fid=None, macs=None, error="boom", finished_at=T0)
    markers.append(store.evaluated_marker(study))
    evaluate(store, study, "b", finished_at=T0 + timedelta(minutes=1))  # the retry replaces it
    markers.append(store.evaluated_marker(study))
    assert len(set(markers)) == len(markers)
    assert store.evaluated_marker(study) == markers[-1]  # and nothing else moves it
    assert all(ch.isalnum() or ch == "-" for ch in markers[-1])  # safe in a URL as it is
    with pytest.raises(StoreError, match="unknown study"):
        store.evaluated_marker("nope")
