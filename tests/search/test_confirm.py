"""Confirmation before export: a plan whose search numbers admit it but whose held-out
re-measurement breaks the constraint is refused, and the next admitted plan is exported with its
confirmed numbers; when none holds, nothing is exported and the line says what would qualify."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edgediff.cli import main
from evaluators.evaluate import Evaluator
from evaluators.plan import Plan
from evaluators.spec import EvalSpec
from evaluators.templates import uniform_plan
from search.confirm import CONFIRM_SEED_OFFSET, confirmation_spec
from search.evaluation import open_study
from storage import EvaluationRecord, Store

# fidelity (1 - SSIM to the uncompressed model on the same seeds): meaningful at 4 images, where
# FID is noise; the confirmation reads whatever metric the study minimises
SPEC = EvalSpec(num_images=4, num_inference_steps=4, batch_size=4, quality="fidelity")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def lying_study(url: str, cache) -> tuple[str, str]:
    """A study whose plan of two sampling steps claims the full model's numbers; returns the
    hashes of (the full plan, the lying plan)."""
    evaluator = Evaluator("digits-dit", SPEC, cache_dir=cache)
    with Store.open(url) as store:
        study = open_study(store, "s", evaluator)
        full = store.full_model_point("s")
        # a valid 2-step plan (the full plan with only its step count changed would not load:
        # its attention section lists one method per step of the 4)
        lying = uniform_plan("digits-dit", evaluator.denoiser, steps=2,
                             guidance_scale=SPEC.guidance_scale)
        claim = {"objective": "fidelity", "value": 0.0, "low": 0.0, "high": 0.01,
                 "delta": 0.0, "delta_low": 0.0, "delta_high": 0.01}
        record = EvaluationRecord(model="digits-dit", spec_hash=study.spec_hash,
                                  plan_hash=lying.content_hash(), status="ok", num_images=4,
                                  device="cpu", macs_per_image=full.macs // 2,
                                  extra={"quality": claim})
        store.record_candidate_evaluation("s", plan_json=lying.to_json(), plan_hash=lying.content_hash(),
                                          method="manual", label=None, record=record)
        assert store.best("s", fid_within=0.05).plan_hash == lying.content_hash()
    return full.plan_hash, lying.content_hash()


def test_confirmation_spec_holds_out_the_seeds():
    spec = confirmation_spec(replace(SPEC, screen_images=4), 40)
    assert (spec.seed, spec.num_images, spec.screen_images) == (CONFIRM_SEED_OFFSET, 40, 0)
    assert set(spec.seeds(40)).isdisjoint(SPEC.seeds(SPEC.num_images))


def test_export_refuses_a_plan_that_breaks_its_constraint_on_held_out_seeds(tmp_path, cache, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    full_hash, lying_hash = lying_study(url, cache)
    out = tmp_path / "plan.json"
    assert main(["export", "s", "-o", str(out), "--fid-within", "0.05", "--confirm-images", "4",
                 "--db", url, "--cache-dir", str(cache)]) == 0
    printed = capsys.readouterr().out
    assert f"refused plan {lying_hash[:12]}: on 4 held-out images FIDELITY - full reads" in printed
    exported = Plan.from_json(out.read_text())
    assert exported.content_hash() == full_hash
    assert "predicted from MACs" in printed
    with Store.open(url) as store:
        [export] = store.exports("s")
        assert "confirmed on 4 held-out images: dFIDELITY 0.000 [0.000, 0.000]" in export.constraint
        confirmed = {p.plan_hash: p for p in store.points("s-confirm-4")}
        assert set(confirmed) == {full_hash, lying_hash}
        assert json.loads(store.get_study("s-confirm-4").spec_json)["seed"] == CONFIRM_SEED_OFFSET
    # the plan file carries its confirmed numbers (notes: the plan hash is unchanged)
    notes = exported.notes["confirmation"]
    assert (notes["images"], notes["study"], notes["delta"]) == (4, "s-confirm-4", 0.0)
    assert notes["value"] == pytest.approx(confirmed[full_hash].quality)


def test_export_refuses_in_one_line_when_no_plan_holds(tmp_path, cache, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    _, lying_hash = lying_study(url, cache)
    out = tmp_path / "plan.json"
    code = main(["export", "s", "-o", str(out), "--fid-within", "0.05", "--confirm-images", "4",
                 "--method", "manual", "--db", url, "--cache-dir", str(cache)])
    captured = capsys.readouterr()
    assert code == 2
    [line] = captured.err.strip().splitlines()
    assert "no plan of study 's' meets 'fid <= full + 0.05' on 4 held-out images (1 tried)" in line
    assert f"would admit plan {lying_hash[:12]}" in line
    assert not out.exists()
    with Store.open(url) as store:
        assert store.exports("s") == []
        [refused] = store.points("s-confirm-4", method="confirm", plan_hash=lying_hash)
        assert refused.delta_bound(store.full_model_point("s-confirm-4")) > 0.05
