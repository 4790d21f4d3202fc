"""The GPU-scale evaluation settings (precision, image size, scheduler, negative prompt, VAE
decoding, latency repeats): each reaches the generation, bad values are one-line refusals, and
specs at the defaults keep their hashes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from evaluators import references
from evaluators.evaluate import Evaluator
from evaluators.spec import EvalSpec, SpecError
from evaluators.subjects import DigitsSubject
from evaluators.zoo import ModelLoadError, load_model, load_scheduler
from evaluators.zoo.tiny_pipelines import save_tiny_pipeline

PROMPTS = ("a cat", "a dog")
SEEDS = [0, 1]


@pytest.fixture(autouse=True)
def fresh_cache():
    references.clear()
    yield
    references.clear()


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    return str(save_tiny_pipeline("sdxl", tmp_path_factory.mktemp("tiny") / "sdxl", PROMPTS))


def _sdxl(folder: str, **settings) -> Evaluator:
    spec = EvalSpec(num_images=4, num_inference_steps=2, batch_size=4, prompts=PROMPTS,
                    guidance_scale=2.0, quality="fidelity", **settings)
    return Evaluator(folder, spec)


def _images(evaluator: Evaluator) -> torch.Tensor:
    return evaluator.subject.generate_batch(evaluator.full_plan, SEEDS, list(PROMPTS))


def _digits(**settings) -> Evaluator:
    """digits-dit on its own copy of the weights (a dtype change must not reach the fixtures)."""
    subject = DigitsSubject("digits-dit", load_model("digits-dit"), load_scheduler("digits-dit"))
    spec = EvalSpec(**{"num_images": 4, "num_inference_steps": 3, "batch_size": 4,
                       "quality": "fidelity", **settings})
    return Evaluator("digits-dit", spec, subject=subject)


def test_specs_at_the_defaults_keep_their_hashes():
    # the hashes of main before these fields existed: every stored study keeps its identity
    assert EvalSpec().content_hash() == (
        "af3b6e41c6844a89996a5e4cf56ca582780b96cfd7e91277aaca8005c11be0eb")
    assert EvalSpec(num_images=10, prompts=("a",), quality="kid").content_hash() == (
        "a9205627202861f5ebb4e644d3f854ba957823d177dbdaa52f48a70aa1087ebb")
    spec = EvalSpec(num_images=10, prompts=("a",))
    for field, value in (("dtype", "bf16"), ("height", 64), ("scheduler", "PNDMScheduler"),
                         ("negative_prompt", "blurry"), ("vae_decode", "tiling"),
                         ("latency_repeats", 3)):
        other = replace(spec, **({field: value, "width": 64} if field == "height" else {field: value}))
        assert other.content_hash() != spec.content_hash(), field
        assert EvalSpec.from_json(other.to_json()) == other, field


@pytest.mark.parametrize(("settings", "message"), [
    ({"dtype": "fp8"}, "spec.dtype: unknown dtype 'fp8'; use one of fp32, fp16, bf16"),
    ({"vae_decode": "chunks"}, "spec.vae_decode: unknown mode 'chunks'"),
    ({"height": 64}, "spec.height: height and width go together"),
    ({"height": 60, "width": 64}, "spec.height: 60 is out of range; give a multiple of 8"),
    ({"scheduler": "dpm++"}, "spec.scheduler: 'dpm\\+\\+' is not a scheduler class name"),
    ({"negative_prompt": "blurry"}, "spec.negative_prompt: is set but there are no prompts"),
    ({"latency_repeats": 101}, "spec.latency_repeats: 101 is out of range"),
])
def test_bad_settings_are_one_line_refusals(settings, message):
    with pytest.raises(SpecError, match=message) as err:
        EvalSpec(**settings)
    assert "\n" not in str(err.value)


def test_dtype_and_scheduler_reach_the_digits_loop():
    base = _digits()
    fast = _digits(dtype="bf16", scheduler="DPMSolverMultistepScheduler")
    assert fast.denoiser.dtype == torch.bfloat16
    assert type(fast.subject.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert fast.spec_hash != base.spec_hash  # the weights' precision is part of the measurement
    a, b = (e.subject.generate_batch(e.full_plan, SEEDS, [3, 7]) for e in (base, fast))
    assert a.dtype == b.dtype == torch.float32 and torch.isfinite(b).all()
    assert 0 < (a - b).abs().max() < 0.5  # another sampler at another precision: close, not equal


def test_settings_a_model_cannot_take_are_refused_in_one_line():
    for settings, message in (({"scheduler": "FlowMatchEulerDiscreteScheduler"},
                               "does not fit 'digits-dit' .*use one of DDIMScheduler, .*PNDMScheduler"),
                              ({"height": 32, "width": 32}, "generates at its own fixed size"),
                              ({"vae_decode": "slicing"}, "has no VAE")):
        with pytest.raises(ModelLoadError, match=message) as err:
            _digits(**settings)
        assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def sdxl_plain(sdxl_folder):
    base = _sdxl(sdxl_folder)
    return base, _images(base)


def test_size_and_vae_decoding_reach_the_pipeline(sdxl_folder, sdxl_plain):
    base, plain = sdxl_plain
    assert plain.shape[-2:] == (16, 16)
    larger = _sdxl(sdxl_folder, height=32, width=32, vae_decode="slicing+tiling")
    assert _images(larger).shape[-2:] == (32, 32)
    assert larger.macs(larger.full_plan)[0] > 3 * base.macs(base.full_plan)[0]  # 4x the latents
    vae = larger.subject.pipeline.vae
    assert vae.use_slicing and vae.use_tiling and not base.subject.pipeline.vae.use_slicing


def test_negative_prompt_and_scheduler_reach_the_pipeline(sdxl_folder, sdxl_plain):
    _, plain = sdxl_plain
    negative = _sdxl(sdxl_folder, negative_prompt="a dog")
    assert (_images(negative) - plain).abs().max() > 1e-3  # CFG pushed away from another prompt
    other = _sdxl(sdxl_folder, scheduler="DPMSolverMultistepScheduler", vae_decode="slicing")
    assert type(other.subject.pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert (_images(other) - plain).abs().max() > 1e-4


def test_latency_repeats_store_the_median_and_the_spread():
    evaluator = _digits(latency_repeats=3, num_inference_steps=1)
    measured = evaluator.evaluate(evaluator.full_plan)
    stats = measured.extra["latency"]
    assert stats["repeats"] == 3 and stats["images_per_call"] == 4
    assert measured.latency_per_image_s == stats["median_s"]
    assert stats["min_s"] <= stats["median_s"] <= stats["max_s"]
    assert 0 <= stats["iqr_s"] <= stats["max_s"] - stats["min_s"] and stats["std_s"] >= 0
    assert stats["pass_s"] > 0
