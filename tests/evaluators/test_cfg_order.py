"""`asc` computes the conditional CFG half and copies it, as the DiTFastAttn reference does; which
half that is follows the model family's batch order (DiT: cond first; PixArt: uncond first)."""

from __future__ import annotations

import pytest
import torch
from diffusers import DiTTransformer2DModel, PixArtTransformer2DModel, Transformer2DModel
from diffusers.models.attention_processor import AttnProcessor2_0

from evaluators.plan import AttentionPlan, Plan, Sampling
from evaluators.runtime import apply_plan, model_ref
from evaluators.runtime.attention import cond_first


def tiny(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    common = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                  num_layers=2, sample_size=8, patch_size=2)
    if kind == "dit":
        return DiTTransformer2DModel(**common, num_embeds_ada_norm=10).eval()
    return PixArtTransformer2DModel(**common, cross_attention_dim=16, caption_channels=32,
                                    use_additional_conditions=False).eval()


def inputs(kind: str) -> dict:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 8, 8, generator=g).expand(2, -1, -1, -1)  # CFG: the halves share latents
    t = torch.tensor([500, 500])
    if kind == "dit":  # DiTPipeline: (cond, uncond = null class)
        return dict(hidden_states=x, timestep=t, class_labels=torch.tensor([3, 10]))
    # PixArt pipelines: (uncond = negative prompt, cond = prompt)
    return dict(hidden_states=x, timestep=t, encoder_hidden_states=torch.randn(2, 6, 32, generator=g),
                added_cond_kwargs={"resolution": None, "aspect_ratio": None})


class CopyHalf:
    """The reference's asc, written independently: the model's own attention on one half, copied."""

    def __init__(self, second: bool) -> None:
        self.second = second

    def __call__(self, attn, hidden_states, *args, **kwargs):
        half = hidden_states.shape[0] // 2
        part = hidden_states[half:] if self.second else hidden_states[:half]
        out = AttnProcessor2_0()(attn, part, *args, **kwargs)
        return torch.cat([out, out])


def reference_asc(model: torch.nn.Module, kw: dict, second: bool) -> torch.Tensor:
    originals = [block.attn1.processor for block in model.transformer_blocks]
    for block in model.transformer_blocks:
        block.attn1.set_processor(CopyHalf(second))
    try:
        return model(**kw).sample
    finally:
        for block, p in zip(model.transformer_blocks, originals, strict=True):
            block.attn1.set_processor(p)


@pytest.mark.parametrize("kind", ["dit", "pixart"])
@torch.no_grad()
def test_full_asc_computes_the_conditional_half(kind):
    model, kw = tiny(kind), inputs(kind)
    rows = tuple(("full", "full+asc") for _ in model.transformer_blocks)
    plan = Plan(model_ref(model, kind), Sampling(2, 4.0), attention=AttentionPlan(rows))
    with apply_plan(model, plan):
        model(**dict(kw, timestep=torch.tensor([900, 900])))  # step 0: full
        out = model(**kw).sample  # step 1 (a lower timestep): full+asc everywhere
    cond_is_second = kind == "pixart"
    torch.testing.assert_close(out, reference_asc(model, kw, second=cond_is_second),
                               atol=1e-5, rtol=1e-5)
    wrong_half = reference_asc(model, kw, second=not cond_is_second)
    assert (out - wrong_half).abs().max() > 1e-3  # the old behaviour on PixArt, visibly different


def test_cfg_order_by_model_family():
    assert cond_first(tiny("dit")) and not cond_first(tiny("pixart"))
    torch.manual_seed(0)
    generic = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                   num_layers=1, sample_size=8, patch_size=2)
    assert cond_first(Transformer2DModel(**generic, norm_type="ada_norm_zero",
                                         num_embeds_ada_norm=10))
    assert not cond_first(Transformer2DModel(**generic, norm_type="ada_norm_single",
                                             cross_attention_dim=16, caption_channels=32))
