"""Rung measurements of a multi-fidelity search are evaluations at stage "rung-<images>"; the store
gives Spearman's rank correlation of each rung with the final measurement and the confirmation."""

from __future__ import annotations

import pytest
from scipy.stats import spearmanr
from store_helpers import MODEL, SPEC_HASH, add_evaluated, plan_hash, record

from storage import EvaluationRecord


def quality(value: float, objective: str = "fid") -> dict:
    return {"quality": {"objective": objective, "value": value}}


def test_a_stage_is_screen_full_or_a_rung():
    assert record("a", stage="rung-8").stage == "rung-8"
    for bad in ("rung-", "rung-08", "rung-x", "final"):
        with pytest.raises(ValueError, match="rung-<images>"):
            record("a", stage=bad)


def test_rank_correlation_of_each_rung_with_the_final_and_the_confirmation(store):
    store.create_study("s", model=MODEL, spec_json='{"num_images": 16}', spec_hash=SPEC_HASH,
                       method="optuna")
    rung = {"a": 0.10, "b": 0.20, "c": 0.30, "d": 0.40}  # fidelity on 4 images
    final = {"a": 11.0, "b": 13.0, "c": 12.0}  # FID on 16: d stopped at the rung
    for name, value in rung.items():
        add_evaluated(store, "s", name, method="optuna", stage="rung-4", num_images=4, fid=None,
                      extra=quality(value, "fidelity"))
    for name, value in final.items():
        add_evaluated(store, "s", name, method="optuna", fid=value, num_images=16,
                      extra=quality(value))
    [only] = store.rung_correlations("s")  # no confirmation yet: the rung against the final
    assert (only.stage, only.against, only.plans) == ("rung-4", "full", 3)
    store.create_study("s-confirm-32", model=MODEL, spec_json='{"num_images": 32}',
                       spec_hash="6" * 64, method="confirm")
    confirmed = {"a": 10.0, "b": 14.0, "c": 15.0}
    for name, value in confirmed.items():
        store.record_candidate_evaluation(
            "s-confirm-32", plan_json='{"format": "edgediff-plan"}', plan_hash=plan_hash(name),
            method="confirm", label=None,
            record=EvaluationRecord(model=MODEL, spec_hash="6" * 64, plan_hash=plan_hash(name),
                                    status="ok", num_images=32, device="cpu", fid=value,
                                    macs_per_image=1000, extra=quality(value)))
    got = {(c.stage, c.against): c for c in store.rung_correlations("s")}
    assert set(got) == {("rung-4", "full"), ("rung-4", "s-confirm-32"), ("full", "s-confirm-32")}
    low = got[("rung-4", "full")]
    assert (low.images, low.objective, low.against_images, low.plans) == (4, "fidelity", 16, 3)
    expected = spearmanr([0.1, 0.2, 0.3], [11.0, 13.0, 12.0]).statistic
    assert low.rho == pytest.approx(expected) and low.rho == pytest.approx(0.5)
    assert got[("rung-4", "s-confirm-32")].rho == pytest.approx(1.0)
    assert got[("full", "s-confirm-32")].rho == pytest.approx(0.5)
    # the rung's measurements never mix into the study's front
    assert {p.plan_hash for p in store.points("s")} == {plan_hash(n) for n in final}


def test_a_study_without_rungs_has_no_correlations(store, study):
    add_evaluated(store, study, "a")
    assert store.rung_correlations(study) == []
