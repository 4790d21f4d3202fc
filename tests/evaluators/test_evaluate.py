"""The evaluator: one plan, one model, one spec -> MACs, latency, FID, fidelity; the uncompressed
model's run computed once and reused; multi-fidelity stages; the real-pipeline path."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiTPipeline
from PIL import Image

from evaluators import references
from evaluators.cost import count_macs
from evaluators.errors import EvaluatorError
from evaluators.evaluate import Evaluator, Measurement
from evaluators.images import SAMPLE_COUNT
from evaluators.plan import AttentionPlan, DeepCache, DepthSkip, Plan, PlanError
from evaluators.quality import PSNR_CAP_DB, ditfastattn_loss, load_image_folder
from evaluators.spec import EvalSpec, SpecError
from evaluators.subjects import DigitsSubject, PipelineSubject
from evaluators.zoo import load_scheduler
from tests.evaluators.test_images import cells

SPEC = EvalSpec(num_images=12, num_inference_steps=8, screen_images=4, batch_size=12)


def attention_plan(base: Plan, method: str) -> Plan:
    rows = base.attention.methods
    methods = tuple(tuple("full" if t == 0 else method for t in range(len(r))) for r in rows)
    return replace(base, attention=AttentionPlan(methods))


def test_spec_validation_and_hash():
    with pytest.raises(SpecError, match=r"spec.screen_images: 30 is out of range"):
        EvalSpec(num_images=10, screen_images=30)
    with pytest.raises(SpecError, match=r"spec.feature: unknown feature 'clip'; use one of"):
        EvalSpec(feature="clip")
    with pytest.raises(SpecError, match=r"spec.screen_min_psnr: is set but there is no first pass"):
        EvalSpec(screen_min_psnr=20.0)
    with pytest.raises(SpecError, match=r"spec.colour: unknown field"):
        EvalSpec.from_dict({"colour": 1})
    spec = EvalSpec(num_images=10, classes=[3, 4])
    assert EvalSpec.from_json(spec.to_json()) == spec
    assert replace(spec, seed=1).content_hash() != spec.content_hash()
    assert replace(spec, batch_size=3).content_hash() != spec.content_hash()  # latency differs
    assert spec.labels(5, 10) == [3, 4, 3, 4, 3]


def test_full_plan_is_the_reference_and_generated_once(dit_subject, fresh_cache):
    evaluator = Evaluator("digits-dit", SPEC, subject=dit_subject)
    full = evaluator.evaluate(evaluator.full_plan)
    assert dit_subject.generated == SPEC.num_images + 1  # + one untimed warm-up image
    assert full.mse == 0.0 and full.psnr == PSNR_CAP_DB and full.similarity == 0.0
    assert full.fid is not None and full.fid > 0 and full.num_images == SPEC.num_images
    assert full.macs_per_image == count_macs(dit_subject.denoiser, evaluator.full_plan).total
    assert full.macs_per_generation == full.macs_per_image * SPEC.batch_size
    assert full.latency_per_image_s > 0 and full.device.startswith("cpu")
    assert set(full.versions) >= {"torch", "diffusers", "torchmetrics", "edgediff"}
    # a second evaluator for the same measurement reuses the run: nothing is generated again
    again = Evaluator("digits-dit", SPEC, subject=dit_subject)
    assert again.spec_hash == evaluator.spec_hash
    assert again.evaluate(again.full_plan, "screen").psnr == PSNR_CAP_DB
    assert dit_subject.generated == SPEC.num_images + 1


def test_compressed_plan_is_cheaper_deterministic_and_batch_independent(dit_subject, fresh_cache):
    evaluator = Evaluator("digits-dit", SPEC, subject=dit_subject)
    plan = attention_plan(evaluator.full_plan, "wars+asc")
    first = evaluator.evaluate(plan)
    full = evaluator.evaluate(evaluator.full_plan)
    assert first.macs_per_image < full.macs_per_image
    assert first.mse > 0 and first.psnr < PSNR_CAP_DB and first.similarity > 0
    assert first.plan_hash == plan.content_hash() and first.spec_hash == evaluator.spec_hash
    second = Evaluator("digits-dit", replace(SPEC, batch_size=5), subject=dit_subject).evaluate(plan)
    assert (second.fid, second.mse, second.similarity, second.class_accuracy) == (
        first.fid, first.mse, first.similarity, first.class_accuracy)


def test_screen_then_full_reuses_the_screened_images(dit_subject, fresh_cache):
    evaluator = Evaluator("digits-dit", replace(SPEC, screen_min_psnr=0.0), subject=dit_subject)
    plan = attention_plan(evaluator.full_plan, "ast")
    evaluator.reference()
    before = dit_subject.generated
    screen, full = evaluator.evaluate_staged(plan)
    assert dit_subject.generated - before == SPEC.num_images  # 4 screened + 8 more, not 4 + 12
    assert screen.stage == "screen" and screen.num_images == 4 and screen.fid is None
    assert screen.passed_screen is True
    direct = evaluator.evaluate(plan, "full")
    assert (full.fid, full.mse, full.num_images) == (direct.fid, direct.mse, SPEC.num_images)

    strict = Evaluator("digits-dit", replace(SPEC, screen_min_psnr=99.0), subject=dit_subject)
    (only,) = strict.evaluate_staged(plan)
    assert only.stage == "screen" and only.passed_screen is False


def test_reference_run_is_cached_on_disk(dit_subject, fresh_cache, tmp_path):
    evaluator = Evaluator("digits-dit", SPEC, subject=dit_subject, cache_dir=tmp_path)
    ref = evaluator.reference()
    files = list(tmp_path.glob("reference-digits-dit-*.safetensors"))
    assert len(files) == 1
    references.clear()  # a new process: only the file is left
    generated = dit_subject.generated
    loaded = Evaluator("digits-dit", SPEC, subject=dit_subject, cache_dir=tmp_path).reference()
    assert dit_subject.generated == generated
    assert torch.equal(loaded.images, ref.images) and loaded.measurement == ref.measurement
    plan = attention_plan(evaluator.full_plan, "wars")
    fresh = Evaluator("digits-dit", SPEC, subject=dit_subject, cache_dir=tmp_path).evaluate(plan)
    assert fresh.fid == pytest.approx(evaluator.evaluate(plan).fid, rel=1e-6)


def same_images(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
    return len(first) == len(second) and all(map(np.array_equal, first, second))


def test_every_evaluation_keeps_its_first_images_on_the_reference_seeds(dit_subject, fresh_cache,
                                                                        tmp_path):
    evaluator = Evaluator("digits-dit", SPEC, subject=dit_subject, cache_dir=tmp_path)
    ref = evaluator.reference()
    n = min(SAMPLE_COUNT, SPEC.num_images)
    full = evaluator.evaluate(evaluator.full_plan).samples
    assert full is not None and full.count == n and full.seeds == tuple(SPEC.seeds(n))
    assert full.captions == tuple(str(c) for c in dit_subject.conditions(SPEC, n))
    assert (full.width, full.height) == tuple(ref.images.shape[-2:])
    reference_cells = list(ref.images[:n, 0].numpy())  # 8-bit grey images
    assert same_images(cells(full), reference_cells)
    screen = evaluator.evaluate(evaluator.full_plan, "screen").samples
    assert screen.count == SPEC.screen_images and screen.seeds == full.seeds[:SPEC.screen_images]
    assert same_images(cells(screen), reference_cells[:SPEC.screen_images])
    # a compressed plan: the screen's images, then the full pass's, on the same seeds
    screened, done = evaluator.evaluate_staged(attention_plan(evaluator.full_plan, "wars+asc"))
    assert (screened.samples.count, done.samples.count) == (SPEC.screen_images, n)
    assert (done.samples.seeds, done.samples.captions) == (full.seeds, full.captions)
    assert done.samples.png != full.png
    assert same_images(cells(screened.samples), cells(done.samples)[:SPEC.screen_images])
    # what a search worker sends through Ray comes back whole
    assert Measurement.from_dict(json.loads(json.dumps(done.to_dict()))) == done
    # a new process reading the cache file draws the same sheet from the images in it
    references.clear()
    loaded = Evaluator("digits-dit", SPEC, subject=dit_subject, cache_dir=tmp_path).reference()
    assert loaded.measurement.samples == ref.measurement.samples == full


def test_unet_deepcache_plan(unet, classifier, fresh_cache):
    subject = DigitsSubject("digits-unet", unet, load_scheduler("digits-unet"), classifier)
    evaluator = Evaluator("digits-unet", SPEC, subject=subject)
    plan = replace(evaluator.full_plan, deepcache=DeepCache(branch=0, interval=3))
    result = evaluator.evaluate(plan)
    full = evaluator.evaluate(evaluator.full_plan)
    assert result.macs_per_image < full.macs_per_image / 2
    assert result.fid is not None and 0 < result.psnr < PSNR_CAP_DB
    assert 0.0 <= result.class_accuracy <= 1.0
    params = sum(p.numel() for p in unet.parameters())
    assert result.extra["params"] == {"params": params, "skipped": 0, "skipped_bytes": {}}
    # depth-skip: the evaluation reports the parameters that never run (counted on meta, no images)
    dropped = replace(evaluator.full_plan, depth_skip=DepthSkip(1))
    footprint = evaluator.macs(dropped)[1]["params"]
    skipped = count_macs(unet, dropped).footprint.skipped
    assert footprint == {"params": params, "skipped": skipped, "skipped_bytes": {"float32": 4 * skipped}}
    assert 0 < skipped < params


def test_plan_for_another_model_is_refused(dit_subject, unet, classifier, fresh_cache):
    subject = DigitsSubject("digits-unet", unet, load_scheduler("digits-unet"), classifier)
    unet_plan = Evaluator("digits-unet", SPEC, subject=subject).full_plan
    with pytest.raises(PlanError, match="plan.model.model_class"):
        Evaluator("digits-dit", SPEC, subject=dit_subject).evaluate(unet_plan)


def test_dit_pipeline_subject_with_a_passed_in_feature(fresh_cache):
    from tests.evaluators.test_runtime_architectures import tiny_dit, tiny_vae

    pipe = DiTPipeline(transformer=tiny_dit(), vae=tiny_vae(), scheduler=DDIMScheduler())
    subject = PipelineSubject("tiny-dit", pipe)
    assert subject.conditioning == "class" and subject.num_classes == 1000
    feature = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()).eval()
    real = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    spec = EvalSpec(num_images=6, num_inference_steps=4, guidance_scale=4.0, classes=(7, 9),
                    batch_size=3)
    evaluator = Evaluator("tiny-dit", spec, subject=subject, feature=feature, reference_images=real)
    full = evaluator.evaluate(evaluator.full_plan)
    mixed = evaluator.evaluate(attention_plan(evaluator.full_plan, "wars+asc"))
    assert full.mse == 0.0 and full.fid is not None and full.class_accuracy is None
    assert mixed.mse > 0 and mixed.macs_per_image < full.macs_per_image
    assert mixed.extra["feature"].startswith("custom:")


def test_inception_features_offline_fail_with_a_clear_message(dit_subject, fresh_cache,
                                                              monkeypatch):
    def offline(*args, **kwargs):  # what torchmetrics raises without torch-fidelity or its weights
        raise ModuleNotFoundError("FrechetInceptionDistance metric requires that `Torch-fidelity` "
                                  "is installed.")

    monkeypatch.setattr("evaluators.quality.FrechetInceptionDistance", offline)
    evaluator = Evaluator("digits-dit", replace(SPEC, feature="inception"), subject=dit_subject)
    with pytest.raises(EvaluatorError, match=r"InceptionV3 FID features are not available .*torch-fidelity"):
        evaluator.reference()
    assert dit_subject.generated == 0  # it failed before generating anything


def test_measurement_identity_covers_weights_features_and_references(dit, classifier, fresh_cache,
                                                                     tmp_path):
    base = Evaluator("digits-dit", SPEC, subject=DigitsSubject("digits-dit", dit, None, classifier))
    tweaked = type(dit).from_config(dit.config)
    tweaked.load_state_dict(dit.state_dict())
    with torch.no_grad():
        tweaked.proj_out_2.bias.add_(1e-3)
    other = Evaluator("digits-dit", SPEC,
                      subject=DigitsSubject("digits-dit", tweaked.eval(), None, classifier))
    assert other.spec_hash != base.spec_hash  # retrained weights never reuse old numbers
    feature = torch.nn.Flatten()
    real = torch.rand(8, 1, 16, 16)
    with_feature = Evaluator("digits-dit", SPEC, subject=base.subject, feature=feature)
    with_refs = Evaluator("digits-dit", SPEC, subject=base.subject, feature=feature,
                          reference_images=real)
    other_refs = Evaluator("digits-dit", SPEC, subject=base.subject, feature=feature,
                           reference_images=real + 0.5)
    hashes = {e.spec_hash for e in (base, with_feature, with_refs, other_refs)}
    assert len(hashes) == 4


def test_a_cache_file_of_another_measurement_is_not_used(dit_subject, fresh_cache, tmp_path):
    evaluator = Evaluator("digits-dit", SPEC, subject=dit_subject, cache_dir=tmp_path)
    evaluator.reference()
    (path,) = tmp_path.glob("reference-*.safetensors")
    other = Evaluator("digits-dit", replace(SPEC, seed=5), subject=dit_subject, cache_dir=tmp_path)
    # a file under the right name but with another run inside
    path.rename(references.cache_path(tmp_path, "digits-dit", other.spec_hash))
    references.clear()
    generated = dit_subject.generated
    ref = other.reference()
    assert dit_subject.generated > generated and ref.measurement.spec_hash == other.spec_hash


def test_reference_image_folder(tmp_path):
    with pytest.raises(EvaluatorError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "a.png")
    with pytest.raises(EvaluatorError, match="holds 1 images"):
        load_image_folder(tmp_path)
    Image.new("L", (8, 8), 128).save(tmp_path / "b.png")
    images = load_image_folder(tmp_path, size=32)
    assert images.shape == (2, 3, 32, 32)
    assert images[0, 0].mean() == pytest.approx(1.0) and images[0, 1].max() == 0.0


def test_ditfastattn_loss_definition():
    a = torch.tensor([1.0, -2.0, 0.0])
    b = torch.tensor([0.5, -1.0, 0.0])
    # |(1-.5)/1|, |(-2+1)/(-1)| (signed max), 0/1e-6 -> 0.5, 1, 0
    assert ditfastattn_loss(a, b) == pytest.approx(0.5, rel=1e-5)
    assert ditfastattn_loss(torch.tensor([0.0]), torch.tensor([1.0])) == pytest.approx(1.0, rel=1e-5)
    assert ditfastattn_loss(torch.tensor([0.0]), torch.tensor([-1.0])) == 10.0  # clipped
