"""digits-flux: loads like a FLUX checkpoint, samples the way FluxPipeline does, makes the digits it
is asked for, and diffusers' own caches install and come off its trained weights exactly."""

import pytest
import torch

from evaluators.subjects import DigitsFluxSubject, load_subject
from evaluators.zoo import load_model, load_scheduler
from evaluators.zoo.flux import image_ids, pack, unpack
from evaluators.zoo.flux_pipeline import DigitsFluxPipeline, load_flux_pipeline


@pytest.fixture(scope="module")
def pipe() -> DigitsFluxPipeline:
    return load_flux_pipeline("digits-flux")


def _sample(pipe, seeds, labels, steps=6, guidance=1.5):
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    return pipe(class_labels=labels, num_inference_steps=steps, guidance_scale=guidance,
                generator=gens, output_type="pt").images


def test_loads_as_a_flux_transformer_with_dual_and_single_stream_blocks():
    model = load_model("digits-flux")
    assert type(model).__name__ == "FluxTransformer2DModel"
    assert len(model.transformer_blocks) == 2 and len(model.single_transformer_blocks) == 6
    assert model.config.in_channels == 4 and not model.config.guidance_embeds
    head_dim = model.config.attention_head_dim
    assert sum(model.config.axes_dims_rope) == head_dim  # rotary axes cover every head channel
    assert type(load_scheduler("digits-flux")).__name__ == "FlowMatchEulerDiscreteScheduler"


def test_packing_and_ids_are_fluxpipelines():
    from diffusers import FluxPipeline

    latents = torch.randn(3, 1, 16, 16)
    packed = pack(latents)
    assert packed.shape == (3, 64, 4)  # 64 image tokens of one 2x2 patch each
    assert torch.equal(packed, FluxPipeline._pack_latents(latents, 3, 1, 16, 16))
    assert torch.equal(unpack(packed, 16, 16), latents)
    assert torch.equal(image_ids(16, 16, packed),
                       FluxPipeline._prepare_latent_image_ids(3, 8, 8, "cpu", torch.float32))


def test_samples_are_deterministic_and_independent_of_the_batch(pipe):
    a = _sample(pipe, [5, 6, 7], [1, 2, 3])
    b = _sample(pipe, [5, 6, 7], [1, 2, 3])
    assert torch.equal(a, b)
    alone = _sample(pipe, [6], [2])
    torch.testing.assert_close(alone[0], a[1], atol=1e-5, rtol=0)
    by_seed = pipe(class_labels=[1, 2, 3], num_inference_steps=6, seed=5, output_type="pt").images
    assert torch.equal(by_seed, a)  # seed=s is one generator per image, s + k
    assert not torch.allclose(a[0], _sample(pipe, [8], [1])[0])  # another seed, another image


def test_samples_are_the_requested_digits_in_few_steps(pipe, classifier):
    labels = torch.arange(50) % 10
    images = _sample(pipe, range(2000, 2050), labels, steps=10)
    assert images.shape == (50, 1, 16, 16) and 0.0 <= images.min() and images.max() <= 1.0
    assert classifier.accuracy(images * 2.0 - 1.0, labels) >= 0.9


def test_guidance_scale_one_runs_only_the_conditional_pass(pipe):
    calls = []
    handle = pipe.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        _sample(pipe, [0], [4], steps=3, guidance=1.0)
        assert len(calls) == 3
        _sample(pipe, [0], [4], steps=3, guidance=2.0)
        assert len(calls) == 3 + 6
    finally:
        handle.remove()


def _cache_configs():
    from diffusers import FirstBlockCacheConfig, TaylorSeerCacheConfig

    return {
        "first-block-cache": FirstBlockCacheConfig(threshold=0.5),
        "taylorseer": TaylorSeerCacheConfig(cache_interval=3, disable_cache_before_step=2),
    }


@pytest.mark.parametrize("technique", list(_cache_configs()))
def test_diffusers_caches_apply_and_remove_exactly(pipe, technique):
    model = pipe.transformer
    # A layer inside the last block's attention runs only when it really computes (the caches
    # wrap the block's or the attention's forward, so a hook on those would fire when cached too).
    inner = model.single_transformer_blocks[-1].attn.to_q
    calls = []
    handle = inner.register_forward_hook(lambda *a: calls.append(1))
    try:
        full = _sample(pipe, [1, 2], [3, 8], steps=8)
        full_calls = len(calls)
        model.enable_cache(_cache_configs()[technique])
        try:
            cached = _sample(pipe, [1, 2], [3, 8], steps=8)
            cached_calls = len(calls) - full_calls
        finally:
            model.disable_cache()
        restored = _sample(pipe, [1, 2], [3, 8], steps=8)
    finally:
        handle.remove()
    assert cached_calls < full_calls  # the cache skipped the last block on some steps
    assert not torch.equal(cached, full)
    assert (cached - full).abs().mean() < 0.1  # an approximation of the image, not noise
    assert torch.equal(restored, full)
    assert not model._diffusers_hook.hooks  # nothing left installed


def test_the_shipped_pipeline_loader_gives_the_flux_pipeline():
    from evaluators.zoo.pipeline import load_pipeline

    pipe = load_pipeline("digits-flux")
    assert isinstance(pipe, DigitsFluxPipeline)
    images = pipe(class_labels=[0, 9], num_inference_steps=2).images  # PIL, as FluxPipeline
    assert len(images) == 2 and images[0].size == (16, 16)


def test_the_subject_is_the_flux_pipeline():
    subject = load_subject("digits-flux")
    assert isinstance(subject, DigitsFluxSubject)
    assert subject.conditioning == "class" and subject.num_classes == 10
    assert type(subject.denoiser).__name__ == "FluxTransformer2DModel"


def test_macs_are_counted_at_digits_flux_geometry_and_match_a_real_generation(pipe):
    """64 packed image tokens and 4 prompt tokens, both CFG halves: the meta count equals what
    FlopCounterMode sees in a real generation, not FLUX.1-dev's 1024², 512-token default."""
    from torch.utils.flop_counter import FlopCounterMode

    import edgediff
    from evaluators.cost import count_macs

    subject = DigitsFluxSubject("digits-flux", pipe)
    assert subject.geometry.latent == (16, 16) and subject.geometry.text_tokens == 4
    options = {"num_inference_steps": 2, "guidance_scale": 1.5}
    counted = count_macs(pipe.transformer, None, geometry=subject.geometry, **options)
    with FlopCounterMode(display=False) as counter:
        _sample(pipe, [0], [3], steps=2, guidance=1.5)
    assert counted.per_image == counter.get_total_flops() // 2  # one MAC is two FLOPs
    assert edgediff.count_macs(pipe, None, **options).per_image == counted.per_image
    fallback = count_macs(pipe.transformer, None, **options)  # no geometry: 1024², 512 tokens
    assert fallback.per_image > 100 * counted.per_image


def test_a_first_block_cache_plan_is_charged_what_executed(pipe):
    """FirstBlockCache decides while generating: the subject traces the calls (2 steps x 2 CFG
    halves) and charges them at its geometry; a high threshold runs less than the full count."""
    import dataclasses

    from evaluators.cost import count_macs
    from evaluators.families import facts_of
    from evaluators.runtime import model_ref
    from evaluators.techniques.first_block_cache import FirstBlockCache

    subject = DigitsFluxSubject("digits-flux", pipe)
    full = facts_of(pipe.transformer).full_plan(model_ref(pipe.transformer, "digits-flux"), 2, 1.5)
    full_macs = count_macs(pipe.transformer, full, geometry=subject.geometry).per_image
    plan = dataclasses.replace(full, first_block_cache=FirstBlockCache(threshold=100.0))
    subject.generate_batch(plan, [0], [3])
    macs, images, per_call = subject.executed[plan.content_hash()]
    assert images == 1 and len(per_call) == 4 and sum(per_call) == macs
    assert 0 < macs < full_macs
    from evaluators.executed import unit_macs

    # the per-unit count is made once per process, not inside every timed generation
    assert unit_macs(pipe.transformer, subject.geometry) is unit_macs(pipe.transformer,
                                                                      subject.geometry)
    subject.generate_batch(plan, [0], [3])
    assert subject.executed[plan.content_hash()][0] == 2 * macs  # the same seed: the same calls


def _family_sections(steps):
    """One plan section of each technique the FLUX family lists, at settings that skip work on a
    6-step generation with guidance."""
    from evaluators.techniques.faster_cache import FasterCache
    from evaluators.techniques.first_block_cache import FirstBlockCache
    from evaluators.techniques.mag_cache import MagCache
    from evaluators.techniques.pyramid_attention_broadcast import PyramidAttentionBroadcast
    from evaluators.techniques.taylorseer_cache import TaylorSeerCache

    return {
        "first_block_cache": FirstBlockCache(threshold=0.5),
        "taylorseer_cache": TaylorSeerCache(cache_interval=3, disable_cache_before_step=2),
        # equal ratios accumulate no error: every step after the retained quarter may be skipped
        "mag_cache": MagCache((1.0,) * steps, threshold=1.0, max_skip_steps=2,
                              retention_ratio=0.25),
        "faster_cache": FasterCache(spatial_attention_block_skip_range=2,
                                    spatial_attention_timestep_skip_range=(-1, 801)),
        "pyramid_attention_broadcast": PyramidAttentionBroadcast(2, (100, 800)),
    }


def test_every_technique_of_the_family_has_a_section_here():
    from evaluators.families import family_of

    assert set(family_of("FluxTransformer2DModel").techniques) == set(_family_sections(6))


@pytest.mark.parametrize("section", list(_family_sections(6)))
def test_every_family_technique_applies_through_a_plan_and_comes_off_exactly(pipe, section):
    """On the trained weights: each of the family's caches, as a plan section installed by
    apply_plan, changes the image a little (it skipped work) and leaves the model exactly as it
    was: the uncompressed plan's image is the pipeline's own without a plan, bit for bit, and
    every module's attributes are as before."""
    import dataclasses

    from evaluators.families import facts_of
    from evaluators.runtime import model_ref

    steps, seeds, labels = 6, [11], [4]
    subject = DigitsFluxSubject("digits-flux", pipe)
    model = pipe.transformer
    full = facts_of(model).full_plan(model_ref(model, "digits-flux"), steps, 1.5)
    before = {name: set(m.__dict__) for name, m in model.named_modules()}
    reference = subject.generate_batch(full, seeds, labels)
    plan = dataclasses.replace(full, **{section: _family_sections(steps)[section]})
    cached = subject.generate_batch(plan, seeds, labels)
    assert not torch.equal(cached, reference)  # some computation was reused
    assert (cached - reference).abs().mean() < 0.15  # an approximation of the image, not noise
    assert {name: set(m.__dict__) for name, m in model.named_modules()} == before
    assert torch.equal(_sample(pipe, seeds, labels, steps=steps), reference)  # no plan at all
