"""Real evaluations of the shipped models into the store (SQLite and PostgreSQL): reuse by hash,
failures recorded, the front and the constrained export checked against the measurements."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from evaluators import references
from evaluators.evaluate import Evaluator
from evaluators.images import SAMPLE_COUNT
from evaluators.plan import AttentionPlan, DeepCache, Plan, PlanError
from evaluators.runtime import apply_plan
from evaluators.sampling import denoise
from evaluators.spec import EvalSpec
from evaluators.subjects import DigitsSubject
from evaluators.zoo import load_scheduler
from search.evaluation import evaluate_candidate, open_study
from storage import Store
from tests.evaluators.counting import CountingSubject

SPEC = EvalSpec(num_images=12, num_inference_steps=8, screen_images=4, screen_min_psnr=12.0,
                batch_size=12)
METHODS = ("wars", "wars+asc", "full+asc", "ast")


@pytest.fixture()
def subject(dit, classifier):
    references.clear()
    yield CountingSubject("digits-dit", dit, load_scheduler("digits-dit"), classifier)
    references.clear()


def with_method(base: Plan, method: str) -> Plan:
    rows = tuple(tuple("full" if t == 0 else method for t in range(len(r)))
                 for r in base.attention.methods)
    return replace(base, attention=AttentionPlan(rows))


def test_shipped_dit_study_front_and_export(store_url, subject, tmp_path):
    evaluator = Evaluator("digits-dit", SPEC, subject=subject)
    with Store.open(store_url) as store:
        study = open_study(store, "dit", evaluator)
        outcomes = {m: evaluate_candidate(store, study, evaluator, with_method(evaluator.full_plan, m),
                                          method="manual", label=m) for m in METHODS}
        points = store.points("dit")
        front = store.front("dit")
        full = store.full_model_point("dit")
        assert full is not None and full.methods == ("full",) and full.mse == 0.0
        # every plan that passed its screen has a full evaluation; each is a point
        passed = {m for m, o in outcomes.items() if o.final.stage == "full"}
        assert {p.labels[0] for p in points if p.methods == ("manual",)} == passed
        for o in outcomes.values():
            assert o.evaluations[0].stage == "screen" and not o.reused
            assert (o.final.stage == "full") == (o.evaluations[0].psnr >= SPEC.screen_min_psnr)
        assert passed, "no plan passed the screen: the front below would be trivial"
        # every evaluated plan keeps its first images, on the uncompressed model's seeds
        full_samples = store.samples("dit", full.plan_hash)
        assert full_samples is not None and full_samples.count == min(SAMPLE_COUNT, SPEC.num_images)
        for o in outcomes.values():
            samples = store.samples("dit", o.candidate.plan_hash)
            assert samples is not None and samples.count == min(SAMPLE_COUNT, o.final.num_images)
            assert samples.seeds == full_samples.seeds[: samples.count]
            assert samples.captions == full_samples.captions[: samples.count]
        # the front is exactly the undominated measurements (checked by brute force)
        def dominated(p):
            return any(q.macs <= p.macs and q.fid <= p.fid and (q.macs, q.fid) != (p.macs, p.fid)
                       for q in points)
        assert {p.plan_hash for p in front} == {p.plan_hash for p in points if not dominated(p)}
        assert min(p.macs for p in front) < full.macs
        # "cheapest plan with FID within +X of the full model", judged on the upper end of each
        # plan's paired difference to the full model (its value where it has no interval)
        slack = max(p.fid - full.fid if p.delta_high is None else p.delta_high for p in points) + 1.0
        best = store.best("dit", fid_within=slack)
        assert best.macs == min(p.macs for p in points)
        lowest = store.best("dit", max_macs=full.macs)
        assert lowest.fid == min(p.fid for p in points)
        export = store.export_plan("dit", best, tmp_path / "best.json", f"fid <= full + {slack}")
    exported = Plan.load(export.path)
    assert exported.content_hash() == best.plan_hash
    with apply_plan(subject.denoiser, exported):  # what was exported runs
        out = denoise(subject.denoiser, load_scheduler("digits-dit"), torch.tensor([3]), [0],
                      exported.num_steps, exported.sampling.guidance_scale)
    assert torch.isfinite(out).all()


def test_identical_evaluations_are_reused_across_studies(store_url, subject):
    evaluator = Evaluator("digits-dit", SPEC, subject=subject)
    plan = with_method(evaluator.full_plan, "wars")
    with Store.open(store_url) as store:
        first = evaluate_candidate(store, open_study(store, "a", evaluator), evaluator, plan,
                                   method="manual")
        generated = subject.generated
        again = evaluate_candidate(store, open_study(store, "b", evaluator), evaluator, plan,
                                   method="optuna")
        assert subject.generated == generated and again.reused
        assert [e.id for e in again.evaluations] == [e.id for e in first.evaluations]
        assert store.candidates("b", method="optuna")[0].plan_hash == plan.content_hash()


def test_failures_are_recorded_and_bad_plans_write_nothing(store_url, subject, unet, dit, classifier):
    evaluator = Evaluator("digits-dit", SPEC, subject=subject)
    plan = with_method(evaluator.full_plan, "ast")
    unet_evaluator = Evaluator("digits-unet", SPEC, subject=DigitsSubject(
        "digits-unet", unet, load_scheduler("digits-unet"), classifier))
    with Store.open(store_url) as store:
        study = open_study(store, "dit", evaluator)
        before = store.candidates("dit")
        with pytest.raises(PlanError):
            evaluate_candidate(store, study, evaluator, unet_evaluator.full_plan, method="manual")
        assert store.candidates("dit") == before
        broken = CountingSubject("digits-dit", dit, load_scheduler("digits-dit"), classifier, fail=True)
        failing = Evaluator("digits-dit", SPEC, subject=broken)
        with pytest.raises(RuntimeError, match="device lost"):
            evaluate_candidate(store, study, failing, plan, method="manual")
        failed = store.find_evaluation(model="digits-dit", spec_hash=study.spec_hash,
                                       plan_hash=plan.content_hash(), stage="screen")
        assert failed.status == "failed" and "device lost" in failed.error  # the stage that failed
        assert failed.num_images == SPEC.screen_images
        assert store.samples("dit", plan.content_hash()) is None  # a failure keeps no images
        retried = evaluate_candidate(store, study, evaluator, plan, method="manual")
        assert retried.final.status == "ok" and not retried.reused
        assert store.samples("dit", plan.content_hash()) is not None

        # the screen passes, the full pass dies: the screen is kept, the failure is the full stage
        wars = with_method(evaluator.full_plan, "wars")
        late = CountingSubject("digits-dit", dit, load_scheduler("digits-dit"), classifier,
                               fail_from_seed=SPEC.screen_images)
        with pytest.raises(RuntimeError, match="device lost"):
            evaluate_candidate(store, study, Evaluator("digits-dit", SPEC, subject=late), wars,
                               method="manual")
        key = {"model": "digits-dit", "spec_hash": study.spec_hash, "plan_hash": wars.content_hash()}
        screen = store.find_evaluation(**key, stage="screen")
        assert screen.status == "ok" and screen.extra["passed_screen"] is True
        assert store.find_evaluation(**key, stage="full").status == "failed"
        assert store.samples("dit", wars.content_hash()).count == SPEC.screen_images  # the screen's


def test_unet_deepcache_study(store_url, unet, classifier):
    references.clear()
    subject = DigitsSubject("digits-unet", unet, load_scheduler("digits-unet"), classifier)
    evaluator = Evaluator("digits-unet", replace(SPEC, screen_images=0, screen_min_psnr=None),
                          subject=subject)
    with Store.open(store_url) as store:
        open_study(store, "unet", evaluator)
        for interval in (2, 4):
            plan = replace(evaluator.full_plan, deepcache=DeepCache(branch=0, interval=interval))
            evaluate_candidate(store, store.get_study("unet"), evaluator, plan, method="deepcache")
        points = store.points("unet")
        assert len(points) == 3
        macs = sorted(p.macs for p in points)
        assert macs[0] < macs[1] < macs[2] == store.full_model_point("unet").macs
        assert store.front("unet", method="deepcache")[0].macs == macs[0]
    references.clear()


def test_a_plan_giving_nan_images_is_a_failure_with_its_reason(store_url, subject, dit):
    """Non-finite pixels would quantise to black and score as a poor but valid point: the
    evaluation is recorded as failed, with the reason, and never reaches the front."""
    evaluator = Evaluator("digits-dit", SPEC, subject=subject)
    plan = with_method(evaluator.full_plan, "wars")
    with Store.open(store_url) as store:
        study = open_study(store, "dit", evaluator)  # the uncompressed run, on healthy weights
        bias = dit.proj_out_2.bias
        kept = bias.detach().clone()
        with torch.no_grad():
            bias[0] = float("nan")  # numerically broken from here on, as an fp16 overflow would be
        try:
            with pytest.raises(RuntimeError, match="NaN or infinite pixels in 4 of 4 images"):
                evaluate_candidate(store, study, evaluator, plan, method="manual")
        finally:
            with torch.no_grad():
                bias.copy_(kept)
        failed = store.find_evaluation(model="digits-dit", spec_hash=study.spec_hash,
                                       plan_hash=plan.content_hash(), stage="screen")
        assert failed.status == "failed" and "numerically unstable" in failed.error
        assert plan.content_hash() not in {p.plan_hash for p in store.points("dit")}
        assert store.samples("dit", plan.content_hash()) is None
