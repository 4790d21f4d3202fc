"""Whole-pipeline cost of the models people deploy now, counted on `meta` from published configs.

For every entry of `evaluators.zoo.deployed.DEPLOYED` (FLUX.1-dev 1024^2, SD3.5-large 1024^2,
Qwen-Image 1328^2, Wan2.1-14B T2V 480p 81 frames, SDXL 1024^2) this builds the denoiser, its VAE
and its text encoders on the `meta` device (no weights) and counts with torch's FlopCounterMode:

* the denoiser: MACs of one call on one latent, and of one denoising step (two calls' worth where
  the pipeline runs classifier-free guidance: SD3, Qwen-Image, Wan, SDXL; FLUX.1-dev is
  guidance-distilled, one call);
* the VAE decode of the final latent (once per image or video);
* the text encoders of one prompt (once per prompt, outside any plan).

    .venv/bin/python bench/deployed.py                  # all five, markdown on stdout
    .venv/bin/python bench/deployed.py --models flux.1-dev-1024 --out deployed.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_tables import markdown_table
from torch.utils.flop_counter import FlopCounterMode

from evaluators.calls import Geometry, denoiser_call, image_tokens
from evaluators.executed import text_encoder_macs, vae_decode_macs
from evaluators.zoo.deployed import DEPLOYED, Deployed, build_component, build_deployed

T = 1e12


def _latent_shape(entry: Deployed) -> tuple[int, ...]:
    assert entry.vae is not None
    channels = entry.vae.config.get("latent_channels", entry.vae.config.get("z_dim"))
    h, w = entry.height // 8, entry.width // 8
    if entry.vae.model_class in ("AutoencoderKLWan", "AutoencoderKLQwenImage"):
        return (channels, 1 + (entry.frames - 1) // 4, h, w)
    return (channels, h, w)


def row(name: str) -> list[object]:
    start = time.perf_counter()
    model, entry = build_deployed(name)
    geometry = Geometry(entry.height, entry.width, entry.frames, entry.text_tokens)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**denoiser_call(model, 1, geometry, device="meta"))
    call = counter.get_total_flops() // 2
    per_step = call * (1 if entry.cfg == "distilled" else 2)
    seconds = time.perf_counter() - start
    vae = vae_decode_macs(build_component(entry.vae), _latent_shape(entry)) if entry.vae else 0
    text = sum(text_encoder_macs(build_component(c), c.tokens) for c in entry.text_encoders)
    tokens = image_tokens(model, geometry) if entry.model_class != "UNet2DConditionModel" else "-"
    size = f"{entry.width}x{entry.height}" + (f", {entry.frames} frames" if entry.frames > 1 else "")
    return [name, entry.model_class, size, tokens, entry.text_tokens, f"{call / T:.2f}",
            entry.cfg, f"{per_step / T:.2f}", f"{vae / T:.2f}", f"{text / T:.2f}",
            f"{seconds:.1f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DEPLOYED), choices=list(DEPLOYED))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    headers = ["model", "denoiser", "size", "image tokens", "text tokens", "TMACs / call",
               "CFG", "TMACs / step", "VAE decode TMACs", "text encoders TMACs / prompt",
               "count s"]
    text = markdown_table(headers, [row(n) for n in args.models])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
