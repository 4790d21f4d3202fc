"""A plan runs only on a generation it fits: fewer steps than it holds, a second-order scheduler,
no CFG halves (or the other CFG order) under `asc`, and another resolution than the one it was
measured at are refused in one line naming the mismatch and the fix (before, each ran silently
and did something else than what was measured)."""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiTPipeline,
    DiTTransformer2DModel,
    HeunDiscreteScheduler,
    PixArtTransformer2DModel,
)

from evaluators.calls import Geometry
from evaluators.plan import AttentionPlan, Plan, PlanError, Sampling, full_plan
from evaluators.runtime import apply_plan, model_ref
from evaluators.runtime.fit import check_geometry, geometry_note

STEPS = 4
NULL = 1000  # the tiny DiT's null class (DiTPipeline passes 1000)


def tiny_dit() -> DiTTransformer2DModel:
    torch.manual_seed(0)
    return DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                 out_channels=8, num_layers=2, sample_size=8, patch_size=2,
                                 num_embeds_ada_norm=NULL).eval()


def dit_pipeline(scheduler=None) -> DiTPipeline:
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8,), latent_channels=4, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",)).eval()
    return DiTPipeline(transformer=tiny_dit(), vae=vae, scheduler=scheduler or DDIMScheduler())


def asc_plan(model, guidance: float = 4.0) -> Plan:
    rows = tuple(("full",) + ("full+asc",) * (STEPS - 1) for _ in model.transformer_blocks)
    return Plan(model_ref(model, "tiny"), Sampling(STEPS, guidance), attention=AttentionPlan(rows))


def identity(model) -> Plan:
    return full_plan(model_ref(model, "tiny"), STEPS, 4.0, len(model.transformer_blocks))


def run(model, timesteps, labels=(3, NULL), x=None):
    x = torch.randn(1, 4, 8, 8).expand(len(labels), -1, -1, -1) if x is None else x
    y = torch.tensor(labels)
    for t in timesteps:
        model(x, timestep=torch.tensor([t] * len(labels)), class_labels=y)


def generate(pipe, steps=STEPS, **kwargs):
    return pipe(class_labels=[1, 2], num_inference_steps=steps, output_type="np",
                generator=torch.Generator().manual_seed(0), **kwargs).images


@torch.no_grad()
def test_a_generation_with_fewer_steps_than_the_plan_is_refused():
    model = tiny_dit()
    with apply_plan(model, identity(model)) as applied:
        run(model, (900, 600, 300))  # 3 of 4 steps
        with pytest.raises(PlanError, match=r"^a generation ran 3 of the plan's 4 steps before "
                                            r"the next one started: .*num_inference_steps=4"):
            run(model, (900,))
        run(model, (900, 700, 500, 300))  # the plan stays usable after the refusal
        run(model, (900, 700, 500, 300))
        assert applied.state.generations == 3 and applied.state.step == 3
    pipe = dit_pipeline()
    with apply_plan(pipe, identity(pipe.transformer)):
        with pytest.raises(PlanError, match=r"^the pipeline runs 3 steps but the plan holds 4; "
                                            r"call it with num_inference_steps=4"):
            generate(pipe, steps=3, guidance_scale=4.0)
        assert generate(pipe, guidance_scale=4.0).shape[0] == 2  # then the right call works


@torch.no_grad()
def test_a_second_order_scheduler_is_refused():
    pipe = dit_pipeline(HeunDiscreteScheduler())
    with apply_plan(pipe, identity(pipe.transformer)), \
            pytest.raises(PlanError, match=r"HeunDiscreteScheduler is a second-order scheduler "
                                           r"\(2 denoiser calls per step\)"):
        generate(pipe, guidance_scale=4.0)
    model = tiny_dit()
    with apply_plan(model, identity(model)), \
            pytest.raises(PlanError, match=r"called twice at timestep 600 in step 2 of the plan's "
                                           r"4: a second-order scheduler"):
        run(model, (900, 600, 600, 300))  # Heun's repeated timesteps


@torch.no_grad()
def test_asc_without_cfg_halves_is_refused():
    pipe = dit_pipeline()
    plan = asc_plan(pipe.transformer)
    with apply_plan(pipe, plan):
        with pytest.raises(PlanError, match=r"^plan.attention: 'asc' copies one CFG half onto the "
                                            r"other, but this batch of 2 does not hold two CFG "
                                            r"halves .*guidance_scale=4"):
            generate(pipe, guidance_scale=1.0)  # two unrelated images in one batch
        assert generate(pipe, guidance_scale=4.0).shape[0] == 2
    model = tiny_dit()
    with apply_plan(model, plan), pytest.raises(PlanError, match="does not hold two CFG halves"):
        run(model, (900, 700, 500, 300), labels=(3, 4))
    torch.manual_seed(0)
    pixart = PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                      out_channels=8, num_layers=2, sample_size=8, patch_size=2,
                                      cross_attention_dim=16, caption_channels=32,
                                      use_additional_conditions=False).eval()
    text = torch.randn(2, 6, 32)
    added = {"resolution": None, "aspect_ratio": None}
    with apply_plan(pixart, asc_plan(pixart)), pytest.raises(PlanError, match="two CFG halves"):
        pixart(torch.randn(2, 4, 8, 8), timestep=torch.tensor([900, 900]),
               encoder_hidden_states=text, added_cond_kwargs=added)  # two images' latents


@torch.no_grad()
def test_asc_on_the_other_cfg_order_is_refused():
    model = tiny_dit()
    with apply_plan(model, asc_plan(model)):
        run(model, (900, 700, 500, 300))  # (cond, uncond): the DiT family's order
        with pytest.raises(PlanError, match=r"conditional half of a \(cond, uncond\) batch \(the "
                                            r"dit family's CFG order\), but this batch holds the "
                                            r"halves the other way round"):
            run(model, (900, 700, 500, 300), labels=(NULL, 3))


@torch.no_grad()
def test_another_resolution_than_the_plan_records_is_refused():
    from evaluators.zoo.tiny_pipelines import tiny_flux_pipeline

    pipe = tiny_flux_pipeline()
    model = pipe.transformer
    note = geometry_note(model, Geometry(16, 16, 1, 6, vae_scale=2))
    assert note == {"height": 16, "width": 16, "frames": 1, "tokens": 16}
    plan = Plan(model_ref(model, "tiny"), Sampling(2, 1.0), notes={"geometry": note})
    assert plan.content_hash() == Plan(model_ref(model, "tiny"), Sampling(2, 1.0)).content_hash()
    embeds = dict(prompt_embeds=torch.randn(1, 6, 32), pooled_prompt_embeds=torch.randn(1, 16),
                  num_inference_steps=2, output_type="np")
    with apply_plan(pipe, plan):
        assert pipe(height=16, width=16, **embeds).images.shape[1:3] == (16, 16)
        with pytest.raises(PlanError, match=r"^the plan was measured at 16x16 px \(16 tokens per "
                                            r"sample\) but this generation has 64 tokens"):
            pipe(height=32, width=32, **embeds)
    with apply_plan(pipe, Plan(model_ref(model, "tiny"), Sampling(2, 1.0))):
        pipe(height=32, width=32, **embeds)  # a plan that records no geometry is not checked
    wider = Plan(model_ref(model, "tiny"), Sampling(2, 1.0), notes={
        "geometry": geometry_note(model, Geometry(32, 32, 1, 6, vae_scale=2))})
    with pytest.raises(PlanError, match=r"measured at 32x32 px \(64 tokens per sample\) but this "
                                        r"model generates at 16x16 px"):
        check_geometry(wider, plan)
