"""MAC counting: cross-checked against analytic formulas per technique, on CPU and on meta."""

from __future__ import annotations

import math

import pytest
import torch

from evaluators.cost import count_macs, measure_latency
from evaluators.plan import AttentionPlan, DeepCache, DepthSkip, Plan, Sampling
from evaluators.runtime import model_ref
from evaluators.runtime.attention import query_block_size
from evaluators.zoo import load_scheduler
from evaluators.zoo.configs import PUBLISHED, build_on_meta

STEPS = 4


def dit_plan(dit, method, window=(16, 16)):
    rows = tuple(tuple(["full"] + [method] * (STEPS - 1)) for _ in dit.transformer_blocks)
    return Plan(model_ref(dit, "digits-dit"), Sampling(STEPS, 1.5),
                attention=AttentionPlan(rows, *window))


def window_keys(n, left, right):
    """Keys each query block of the window attention reads, summed over blocks (x block size)."""
    block = query_block_size(n)
    total = 0
    for start in range(0, n, block):
        stop = min(n, start + block)
        total += (stop - start) * (min(n, stop + right) - max(0, start - left))
    return total


def test_cpu_attention_is_counted_like_meta(dit):
    cpu = count_macs(dit, num_inference_steps=1, guidance_scale=1.5, device="cpu")
    meta = count_macs(dit, num_inference_steps=1, guidance_scale=1.5)
    assert cpu.per_step == meta.per_step and cpu.by_type == meta.by_type
    b, n, c, layers = 2, 256, 64, 8  # CFG batch, tokens, width, layers
    assert cpu.by_type["attention"] == layers * 2 * b * n * n * c  # scores + weighted sum
    assert cpu.by_type["attention_proj"] == layers * 4 * b * n * c * c  # q, k, v, out


@pytest.mark.parametrize("method", ["ast", "full+asc", "wars", "wars+asc"])
def test_attention_methods_match_their_formula(dit, method):
    full = count_macs(dit, num_inference_steps=STEPS, guidance_scale=1.5)
    plan = count_macs(dit, dit_plan(dit, method))
    b, n, c, layers = 2, 256, 64, 8
    core, proj = 2 * b * n * n * c, 4 * b * n * c * c
    win = 2 * b * c * window_keys(n, 16, 16)
    step0, later = full.per_step[0], full.per_step[1]
    expected = {  # MACs saved (or spent) per layer, at step 0 and at each later step
        "ast": (0, core + proj),
        "full+asc": (0, (core + proj) / 2),
        "wars": (-win, core - win),
        "wars+asc": (-win, core - win / 2 + proj / 2),
    }[method]
    assert plan.per_step[0] == step0 - layers * expected[0]
    assert plan.per_step[1:] == [later - layers * expected[1]] * (STEPS - 1)
    assert plan.total < full.total


def test_ditfastattn_reference_convention(dit):
    plan = dit_plan(dit, "wars")
    executed = count_macs(dit, plan)
    reference = count_macs(dit, plan, convention="ditfastattn")
    # Symmetric window: the reference charges nothing for window steps nor for the residual pass.
    assert all(step["attention"] == 0 for step in reference.per_step_by_type[1:])
    assert reference.per_step_by_type[0]["attention"] == 8 * 2 * 2 * 256 * 256 * 64
    assert executed.per_step_by_type[1]["attention"] > 0
    assert reference.by_type["linear"] == executed.by_type["linear"]


@pytest.mark.parametrize("method", ["asc", "full+asc", "wars+asc"])
def test_ditfastattn_convention_halves_both_products_under_asc(dit, method):
    b, n, c, layers = 2, 256, 64, 8  # CFG batch, tokens, width, layers
    left, right = 8, 24  # asymmetric, so the reference charges window steps (right - left) / N
    product = b * n * n * c  # one of the two products (scores, weighted sum) of full attention
    count = count_macs(dit, dit_plan(dit, method, (left, right)), convention="ditfastattn")
    if method == "wars+asc":  # step 0 also computes the residual; later steps: window, one half
        step0, later = 2 * product * (1 + (right - left) / n), product * (right - left) / n
    else:  # full attention on one CFG half: half of both products
        step0, later = 2 * product, product
    assert count.per_layer_attention[0] == [int(step0)] * layers
    assert count.per_layer_attention[1:] == [[int(later)] * layers] * (STEPS - 1)


def conv_macs(conv, batch, h, w):
    k = conv.kernel_size[0] * conv.kernel_size[1]
    out_h, out_w = h // conv.stride[0], w // conv.stride[1]
    return batch * out_h * out_w * conv.out_channels * conv.in_channels // conv.groups * k


def test_deepcache_partial_step_matches_the_shallow_branch(unet):
    full = count_macs(unet, num_inference_steps=1, guidance_scale=1.5).per_step[0]
    plan = Plan(model_ref(unet, "digits-unet"), Sampling(10, 1.5), deepcache=DeepCache(0, 3))
    count = count_macs(unet, plan)
    b = 2
    last = unet.up_blocks[-1].resnets[-1]  # the up layer that consumes skip 0
    shallow = (conv_macs(unet.conv_in, b, 16, 16) + conv_macs(unet.conv_out, b, 16, 16)
               + conv_macs(last.conv1, b, 16, 16) + conv_macs(last.conv2, b, 16, 16)
               + conv_macs(last.conv_shortcut, b, 16, 16)
               + b * last.time_emb_proj.in_features * last.time_emb_proj.out_features
               + sum(b * lin.in_features * lin.out_features
                     for lin in (unet.time_embedding.linear_1, unet.time_embedding.linear_2)))
    full_steps = set(range(0, 10, 3))
    assert count.per_step == [full if s in full_steps else shallow for s in range(10)]
    assert count.total == len(full_steps) * full + (10 - len(full_steps)) * shallow


def test_depth_skip_counts_only_the_kept_levels(unet):
    full = count_macs(unet, num_inference_steps=2, guidance_scale=1.5)
    ref = model_ref(unet, "digits-unet")
    one = count_macs(unet, Plan(ref, Sampling(2, 1.5), depth_skip=DepthSkip(1)))
    two = count_macs(unet, Plan(ref, Sampling(2, 1.5), depth_skip=DepthSkip(2)))
    assert two.total < one.total < full.total
    # Dropping both lower levels leaves no attention (it lives at level 1) in the U-Net.
    assert two.by_type["attention"] == 0 and one.by_type["attention"] > 0
    down0 = sum(conv_macs(m, 2, 16, 16) for m in unet.down_blocks[0].resnets.modules()
                if isinstance(m, torch.nn.Conv2d))
    assert two.per_step[0] > down0  # the level-0 encoder still runs


def test_published_architectures_count_in_seconds_on_meta():
    dit, _ = build_on_meta("dit-xl-2-256")
    per_step = count_macs(dit, num_inference_steps=1).per_step[0]
    assert math.isclose(per_step / 1e9, 118.6, rel_tol=0.005)  # the DiT paper's 118.6 Gflops
    ddpm, _ = build_on_meta("ddpm-cifar10")
    types = count_macs(ddpm, num_inference_steps=1).per_step_by_type[0]
    no_attention = types["conv"] + types["linear"] + types["attention_proj"]
    assert math.isclose(no_attention / 1e9, 6.05, rel_tol=0.01)
    for name in ("sd-1.5", "pixart-sigma-1024"):
        model, tokens = build_on_meta(name)
        assert count_macs(model, num_inference_steps=1, text_tokens=tokens).per_step[0] > 1e11
    assert set(PUBLISHED) >= {"dit-xl-2-512", "pixart-alpha-512", "pixart-alpha-1024"}


def test_measure_latency_runs_the_plan(unet):
    plan = Plan(model_ref(unet, "digits-unet"), Sampling(STEPS, 1.5), deepcache=DeepCache(0, 2))
    latency = measure_latency(unet, load_scheduler("digits-unet"), plan, num_images=2,
                              warmup=1, repeats=2)
    assert len(latency.times) == 2 and all(t > 0 for t in latency.times)
    assert latency.per_image == pytest.approx(latency.median / 2)
