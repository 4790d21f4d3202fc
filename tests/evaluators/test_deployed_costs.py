"""Meta counts of the deployed families' published configs, and the cost of what executed."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from evaluators.calls import Geometry, denoiser_call, image_tokens
from evaluators.executed import ExecutionTrace, unit_macs
from evaluators.zoo.deployed import DEPLOYED, build_deployed, build_tiny

aten = torch.ops.aten
_SDPA = {aten._scaled_dot_product_flash_attention_for_cpu,
         aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_flash_attention,
         aten.bmm}  # on meta, attention runs as its math decomposition (two bmm)
TINY_GEOMETRY = Geometry(16, 16, frames=5, text_tokens=6, vae_scale=2)


def _attention_macs(name: str) -> tuple[int, int, int]:
    """(counted attention MACs, MACs from the shapes, total MACs) of one batch-1 call."""
    model, entry = build_deployed(name)
    geometry = Geometry(entry.height, entry.width, entry.frames, entry.text_tokens)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**denoiser_call(model, 1, geometry, device="meta"))
    glob = counter.get_flop_counts()["Global"]
    counted = sum(v for op, v in glob.items() if op in _SDPA) // 2
    cfg = model.config
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    n_img, n_txt = image_tokens(model, geometry), entry.text_tokens
    if name.startswith("flux"):  # joint attention over text + image tokens in every block
        expected = (cfg.num_layers + cfg.num_single_layers) * 2 * (n_img + n_txt) ** 2 * dim
    elif name.startswith("wan"):  # self-attention over video tokens, cross-attention to text
        expected = cfg.num_layers * 2 * (n_img * n_img + n_img * n_txt) * dim
    else:  # MMDiT: joint attention
        expected = cfg.num_layers * 2 * (n_img + n_txt) ** 2 * dim
    return counted, expected, counter.get_total_flops() // 2


@pytest.mark.parametrize("name", ["flux.1-dev-1024", "sd3.5-large-1024", "qwen-image-1328",
                                  "wan2.1-t2v-14b-480p"])
def test_published_transformers_count_on_meta_with_attention_from_their_shapes(name):
    counted, expected, total = _attention_macs(name)
    assert counted == expected
    assert total > counted  # plus the linear layers


def test_wan_tokens_are_latent_frames_times_height_times_width():
    model, entry = build_deployed("wan2.1-t2v-14b-480p")
    geometry = Geometry(entry.height, entry.width, entry.frames, entry.text_tokens)
    assert image_tokens(model, geometry) == 21 * (480 // 16) * (832 // 16)


def test_sdxl_counts_on_meta_with_added_conditioning():
    model, entry = build_deployed("sdxl-1024")
    geometry = Geometry(entry.height, entry.width, text_tokens=entry.text_tokens)
    kwargs = denoiser_call(model, 2, geometry, device="meta")
    assert set(kwargs["added_cond_kwargs"]) == {"text_embeds", "time_ids"}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**kwargs)
    per_image = counter.get_total_flops() // 2 // 2
    assert 2.5e12 < per_image < 4.5e12  # SDXL's U-Net: about 3 TMACs per image at 1024^2
    assert set(DEPLOYED) >= {"flux.1-dev-1024", "sd3.5-large-1024", "qwen-image-1328",
                             "wan2.1-t2v-14b-480p", "sdxl-1024"}


@pytest.mark.parametrize("cls", ["FluxTransformer2DModel", "SD3Transformer2DModel",
                                 "QwenImageTransformer2DModel", "WanTransformer3DModel"])
def test_trace_of_a_full_run_equals_the_counter_on_the_real_run(cls):
    model = build_tiny(cls)
    kwargs = denoiser_call(model, 2, TINY_GEOMETRY)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**kwargs)
    per_sample = unit_macs(model, TINY_GEOMETRY)
    with ExecutionTrace(model) as trace, torch.no_grad():
        model(**kwargs)
    assert trace.macs(per_sample) == counter.get_total_flops() // 2 == 2 * per_sample.call
    assert all(v == 2 for v in trace.blocks_run().values())
    assert "_diffusers_hook" not in model.__dict__ and "forward" not in model.__dict__
