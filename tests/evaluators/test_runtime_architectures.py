"""The plan runtime on tiny random-weight versions of the real architectures, inside diffusers
pipelines (DiT, PixArt, Stable Diffusion, DDIM) and at model level."""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMPipeline,
    DDIMScheduler,
    DiTPipeline,
    DiTTransformer2DModel,
    PixArtAlphaPipeline,
    PixArtTransformer2DModel,
    StableDiffusionPipeline,
    Transformer2DModel,
    UNet2DConditionModel,
    UNet2DModel,
)

from evaluators.plan import AttentionPlan, DeepCache, DepthSkip, Plan, PlanError, Sampling, full_plan
from evaluators.runtime import apply_plan, model_ref
from evaluators.runtime.unet import unet_layout

STEPS = 4


def seeded(fn):
    torch.manual_seed(0)
    return fn().eval()


def tiny_vae():
    return seeded(lambda: AutoencoderKL(block_out_channels=(8,), latent_channels=4,
                                        norm_num_groups=4, down_block_types=("DownEncoderBlock2D",),
                                        up_block_types=("UpDecoderBlock2D",)))


def tiny_sd_unet():
    return seeded(lambda: UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(8, 16, 16), norm_num_groups=4, cross_attention_dim=16,
        attention_head_dim=4, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")))


def tiny_ddpm_unet():
    return seeded(lambda: UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=2,
        block_out_channels=(8, 16, 16), norm_num_groups=4,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")))


def tiny_dit():
    return seeded(lambda: DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=3,
        sample_size=8, patch_size=2, num_embeds_ada_norm=1000))


def tiny_pixart():
    return seeded(lambda: PixArtTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=3,
        sample_size=8, patch_size=2, cross_attention_dim=16, caption_channels=32,
        use_additional_conditions=False))


def attention(model, name, rows_fn, guidance=4.0):
    layers = len(model.transformer_blocks)
    rows = tuple(tuple("full" if t == 0 else rows_fn(layer, t) for t in range(STEPS))
                 for layer in range(layers))
    return Plan(model_ref(model, name), Sampling(STEPS, guidance),
                attention=AttentionPlan(rows, 4, 4))


def generate(pipe, **kwargs):
    out = pipe(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0),
               output_type="np", **kwargs)
    return torch.from_numpy(out.images)


def check_pipeline(pipe, identity, compressed, **kwargs):
    base = generate(pipe, **kwargs)
    with apply_plan(pipe, identity):
        assert torch.equal(generate(pipe, **kwargs), base)
    with apply_plan(pipe, compressed) as applied:
        out = generate(pipe, **kwargs)
        assert applied.state.generations == 1 and applied.state.step == STEPS - 1
    assert torch.isfinite(out).all() and not torch.equal(out, base)
    assert torch.equal(generate(pipe, **kwargs), base)  # removed exactly


def test_dit_pipeline():
    dit = tiny_dit()
    pipe = DiTPipeline(transformer=dit, vae=tiny_vae(), scheduler=DDIMScheduler())
    identity = full_plan(model_ref(dit, "tiny-dit"), STEPS, 4.0, 3)
    mixed = attention(dit, "tiny-dit", lambda layer, t: ("wars", "wars+asc", "ast")[(layer + t) % 3])
    check_pipeline(pipe, identity, mixed, class_labels=[1, 2], guidance_scale=4.0)


def test_pixart_pipeline():
    pixart = tiny_pixart()
    pipe = PixArtAlphaPipeline(tokenizer=None, text_encoder=None, vae=tiny_vae(),
                               transformer=pixart, scheduler=DDIMScheduler())
    g = torch.Generator().manual_seed(1)
    text = dict(prompt_embeds=torch.randn(2, 6, 32, generator=g),
                prompt_attention_mask=torch.ones(2, 6, dtype=torch.long),
                negative_prompt_embeds=torch.randn(2, 6, 32, generator=g),
                negative_prompt_attention_mask=torch.ones(2, 6, dtype=torch.long),
                negative_prompt=None, guidance_scale=4.0, use_resolution_binning=False, height=8,
                width=8)
    identity = full_plan(model_ref(pixart, "tiny-pixart"), STEPS, 4.0, 3)
    mixed = attention(pixart, "tiny-pixart", lambda layer, t: ("full+asc", "wars", "ast")[t - 1])
    check_pipeline(pipe, identity, mixed, **text)


def test_stable_diffusion_pipeline_deepcache_and_depth_skip():
    unet = tiny_sd_unet()
    pipe = StableDiffusionPipeline(vae=tiny_vae(), text_encoder=None, tokenizer=None, unet=unet,
                                   scheduler=DDIMScheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    g = torch.Generator().manual_seed(1)
    text = dict(prompt_embeds=torch.randn(1, 5, 16, generator=g),
                negative_prompt_embeds=torch.randn(1, 5, 16, generator=g), guidance_scale=5.0,
                height=8, width=8)
    ref = model_ref(unet, "tiny-sd")
    identity = Plan(ref, Sampling(STEPS, 5.0), deepcache=DeepCache(3, 1))
    check_pipeline(pipe, identity, Plan(ref, Sampling(STEPS, 5.0), deepcache=DeepCache(3, 2)),
                   **text)
    check_pipeline(pipe, identity, Plan(ref, Sampling(STEPS, 5.0), depth_skip=DepthSkip(1)), **text)


def test_ddim_pipeline_gamma_timesteps_and_deepcache():
    unet = tiny_ddpm_unet()
    pipe = DDIMPipeline(unet=unet, scheduler=DDIMScheduler())
    ref = model_ref(unet, "tiny-ddpm")
    plan = Plan(ref, Sampling(STEPS, 1.0, spacing="gamma", gamma=2.0), deepcache=DeepCache(2, 2))
    seen = []
    hook = unet.register_forward_pre_hook(lambda m, args: seen.append(int(args[1])))
    try:
        check_pipeline(pipe, Plan(ref, Sampling(STEPS, 1.0)), plan)
    finally:
        hook.remove()
    # base, identity, compressed, base again: the compressed run used floor(999 * ((4 - i) / 4) ** 2)
    assert seen[2 * STEPS:3 * STEPS] == [999, 561, 249, 62] and seen[:STEPS] == [750, 500, 250, 0]
    assert isinstance(pipe.scheduler, DDIMScheduler) and type(pipe.scheduler) is DDIMScheduler


def sd_step(unet, step_inputs, plan, steps):
    outs = []
    with torch.no_grad(), apply_plan(unet, plan) as applied:
        applied.state.manual = True
        for step in steps:
            applied.state.set_step(step)
            outs.append(unet(**step_inputs).sample)
    return outs


@pytest.mark.parametrize("branch", [0, 4, 8])
def test_sd_unet_partial_step_reuses_deep_features_exactly(branch):
    unet = tiny_sd_unet()
    assert unet_layout(unet).num_branches == 9
    g = torch.Generator().manual_seed(2)
    inputs = dict(sample=torch.randn(2, 4, 8, 8, generator=g), timestep=torch.tensor([500, 500]),
                  encoder_hidden_states=torch.randn(2, 5, 16, generator=g))
    plan = Plan(model_ref(unet, "tiny-sd"), Sampling(STEPS, 5.0), deepcache=DeepCache(branch, 2))
    full, partial = sd_step(unet, inputs, plan, [0, 1])
    assert torch.equal(full, partial)
    moved = dict(inputs, sample=inputs["sample"] + 0.5)
    full, partial = sd_step(unet, inputs | {}, plan, [0])[0], sd_step(unet, moved, plan, [0])[0]
    assert not torch.equal(full, partial)


def test_transformer2d_patched_dit_and_unsupported_models():
    dit = seeded(lambda: Transformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
        sample_size=8, patch_size=2, norm_type="ada_norm_zero", num_embeds_ada_norm=1000))
    plan = attention(dit, "tiny-t2d", lambda layer, t: "wars+asc")
    x = torch.randn(2, 4, 8, 8)
    y = torch.tensor([3, 1000])
    with torch.no_grad():
        base = dit(x, timestep=torch.tensor([10, 10]), class_labels=y).sample
        with apply_plan(dit, plan) as applied:
            out = dit(x, timestep=torch.tensor([10, 10]), class_labels=y).sample
            assert applied.state.step == 0
        assert torch.equal(out, base)  # step 0 is full
    with pytest.raises(PlanError, match="not supported"):
        apply_plan(AutoencoderKL(block_out_channels=(8,), norm_num_groups=4), plan)
