"""The evaluator's quality objectives: intervals kept with every evaluation, the fidelity objective
without a reference set, statistics files as the reference, and the feature-space mismatch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from diffusers import DDIMScheduler, DiTPipeline

from evaluators.errors import EvaluatorError
from evaluators.evaluate import Evaluator
from evaluators.metrics import QualityResult
from evaluators.metrics.features import RealStats, extract
from evaluators.spec import EvalSpec, SpecError
from evaluators.subjects import PipelineSubject
from tests.evaluators.test_evaluate import attention_plan

SPEC = EvalSpec(num_images=12, num_inference_steps=8, screen_images=4, batch_size=12)


def test_every_evaluation_keeps_its_intervals_and_the_paired_difference(dit_subject, fresh_cache):
    evaluator = Evaluator("digits-dit", SPEC, subject=dit_subject)
    full = evaluator.evaluate(evaluator.full_plan)
    plan = attention_plan(evaluator.full_plan, "wars+asc")
    screen, measured = evaluator.evaluate_staged(plan)
    own = QualityResult.from_dict(full.extra["quality"])
    assert own.value.estimate == pytest.approx(full.fid, rel=1e-4)  # the FID column's number
    assert own.delta.estimate == own.delta.low == own.delta.high == 0
    quality = QualityResult.from_dict(measured.extra["quality"])
    assert quality.value.estimate == pytest.approx(measured.fid, rel=1e-4)
    assert quality.value.low <= quality.value.estimate <= quality.value.high
    assert quality.delta.estimate == pytest.approx(measured.fid - full.fid, rel=1e-3, abs=1e-6)
    assert quality.metrics["psnr"].estimate > 0 and "ssim" in quality.metrics
    first = QualityResult.from_dict(screen.extra["quality"])
    assert first.value is None and "psnr" in first.metrics  # the screen measures no FID


def test_the_fidelity_objective_needs_no_reference_set(dit_subject, fresh_cache, tmp_path):
    spec = replace(SPEC, quality="fidelity", reference=str(tmp_path / "absent"))
    evaluator = Evaluator("digits-dit", spec, subject=dit_subject)
    full = evaluator.evaluate(evaluator.full_plan)
    measured = evaluator.evaluate(attention_plan(evaluator.full_plan, "wars+asc"))
    assert full.fid is None and measured.fid is None
    quality = QualityResult.from_dict(measured.extra["quality"])
    assert quality.objective == "fidelity" and quality.value.estimate > 0
    assert QualityResult.from_dict(full.extra["quality"]).value.estimate == pytest.approx(0)


def test_a_statistics_file_is_a_reference_set(dit_subject, classifier, digits, fresh_cache, tmp_path):
    from evaluators.data import to_unit
    from evaluators.zoo.classifier import DigitsFeatures

    stats = RealStats.from_features(extract(DigitsFeatures(classifier), to_unit(digits.images)))
    path = stats.save(tmp_path / "digits.npz")
    by_file = Evaluator("digits-dit", replace(SPEC, reference=str(path)), subject=dit_subject)
    by_images = Evaluator("digits-dit", SPEC, subject=dit_subject)
    assert by_file.evaluate(by_file.full_plan).fid == pytest.approx(
        by_images.evaluate(by_images.full_plan).fid, rel=1e-4)
    bad = Evaluator("digits-dit", replace(SPEC, reference=str(tmp_path / "none.npz")), subject=dit_subject)
    with pytest.raises(EvaluatorError, match="reference statistics file .*none.npz' does not exist"):
        bad.reference()


def test_digits_features_on_an_rgb_model_is_an_error_naming_the_options(fresh_cache):
    from tests.evaluators.test_runtime_architectures import tiny_dit, tiny_vae

    pipe = DiTPipeline(transformer=tiny_dit(), vae=tiny_vae(), scheduler=DDIMScheduler())
    spec = EvalSpec(num_images=4, num_inference_steps=2, classes=(7,), batch_size=4)
    with pytest.raises(EvaluatorError, match="--feature inception .*--quality fidelity"):
        Evaluator("tiny-dit", spec, subject=PipelineSubject("tiny-dit", pipe))
    Evaluator("tiny-dit", replace(spec, quality="fidelity"), subject=PipelineSubject("tiny-dit", pipe))


def test_the_quality_field_keeps_earlier_spec_hashes():
    spec = EvalSpec(num_images=10)
    assert "quality" not in spec.to_dict() and "clip_model" not in spec.to_dict()
    assert replace(spec, quality="kid").content_hash() != spec.content_hash()
    assert EvalSpec.from_json(replace(spec, quality="kid").to_json()).quality == "kid"
    with pytest.raises(SpecError, match="unknown quality objective 'lpips'"):
        EvalSpec(quality="lpips")


def test_kid_objective_measures_kid_with_an_interval(dit_subject, fresh_cache):
    evaluator = Evaluator("digits-dit", replace(SPEC, quality="kid"), subject=dit_subject)
    measured = evaluator.evaluate(attention_plan(evaluator.full_plan, "wars+asc"))
    quality = QualityResult.from_dict(measured.extra["quality"])
    assert quality.objective == "kid" and "kid" in quality.metrics and quality.delta is not None
    assert torch.isfinite(torch.tensor(quality.value.estimate))
