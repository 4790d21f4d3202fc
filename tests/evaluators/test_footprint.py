"""Parameter footprint: the parameters a plan never executes (Kim et al. report depth-skip so)."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel

from evaluators.cost import count_macs
from evaluators.plan import AttentionPlan, DeepCache, DepthSkip, Plan, Sampling
from evaluators.runtime import model_ref
from evaluators.zoo.configs import build_on_meta


def numel(*modules: torch.nn.Module | None) -> int:
    return sum(p.numel() for m in modules if m is not None for p in m.parameters())


def test_depth_skip_on_sd15_skips_the_dropped_levels():
    unet, _ = build_on_meta("sd-1.5")
    plan = Plan(model_ref(unet, "sd-1.5"), Sampling(1, 1.0), depth_skip=DepthSkip(1))  # d = 8
    footprint = count_macs(unet, plan).footprint
    # d = 8 keeps encoder outputs 0..8: the last level, its downsampler, the mid block and the
    # decoder level that consumed skips 9..11 never run.
    dropped = numel(unet.down_blocks[2].downsamplers, unet.down_blocks[3], unet.mid_block,
                    unet.up_blocks[0])
    assert footprint.params == numel(unet) and footprint.skipped == dropped
    assert round(footprint.skipped / 1e6, 1) == 336.3 and round(footprint.params / 1e6, 1) == 859.5
    assert round(100 * footprint.skipped_share, 1) == 39.1  # Kim et al.: -39.2% (InstructPix2Pix)
    assert footprint.skipped_bytes == {"float32": 4 * dropped}


def tiny_unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D")).eval()


def test_bytes_follow_the_models_dtype_and_caching_skips_no_parameter():
    unet = tiny_unet().half()
    ref = model_ref(unet, "tiny")
    skip = count_macs(unet, Plan(ref, Sampling(2, 1.0), depth_skip=DepthSkip(1))).footprint
    assert skip.skipped == numel(unet.down_blocks[0].downsamplers, unet.down_blocks[1],
                                 unet.mid_block, unet.up_blocks[0]) > 0
    assert skip.skipped_bytes == {"float16": 2 * skip.skipped}
    cached = count_macs(unet, Plan(ref, Sampling(4, 1.0), deepcache=DeepCache(0, 2))).footprint
    full = count_macs(unet, num_inference_steps=2).footprint
    assert cached.skipped == full.skipped == 0 and cached.params == numel(unet)


@pytest.mark.parametrize("convention", ["executed", "ditfastattn"])
def test_transformer_plans_keep_every_parameter(dit, convention):
    rows = tuple(("full", "ast", "wars+asc") for _ in dit.transformer_blocks)
    plan = Plan(model_ref(dit, "digits-dit"), Sampling(3, 1.5), attention=AttentionPlan(rows))
    footprint = count_macs(dit, plan, convention=convention).footprint
    assert footprint.params == numel(dit) and footprint.skipped == 0


def test_the_footprint_alone_is_the_counts_and_stops_once_every_parameter_ran():
    from evaluators.cost import count_footprint, meta_twin

    unet = meta_twin(tiny_unet())  # counted as it is: the hook below sees every call
    ref = model_ref(unet, "tiny")
    calls = []
    handle = unet.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        for plan in (Plan(ref, Sampling(3, 1.5), depth_skip=DepthSkip(1)),
                     Plan(ref, Sampling(4, 1.0), deepcache=DeepCache(0, 2))):
            calls.clear()
            alone = count_footprint(unet, plan)
            # depth-skip never runs its levels: every step is counted; step 0 of DeepCache runs
            # the whole U-Net, so the count ends there
            assert len(calls) == (plan.num_steps if plan.depth_skip else 1)
            assert alone == count_macs(unet, plan).footprint
    finally:
        handle.remove()
