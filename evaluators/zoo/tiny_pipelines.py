"""Tiny random-weight pipelines of the deployed families, saved as ordinary diffusers folders.

The real pipeline classes (FluxPipeline, StableDiffusion3Pipeline, StableDiffusionXLPipeline)
with the tiny denoisers of `evaluators.zoo.deployed.TINY`, a two-level VAE (latents at half the
image size) and no text encoders: their prompts are stored as embeddings beside the pipeline
(`prompt_embeds.safetensors`, see `evaluators.prompt_embeds`). For offline tests and demos:
`DiffusionPipeline.from_pretrained` on the folder loads them like any pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from evaluators.zoo.deployed import TINY, build_tiny

TINY_IMAGE = 16  # pixels per side of the tiny pipelines' images
_TINY_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4,
             "block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4,
             "down_block_types": ("DownEncoderBlock2D",) * 2,
             "up_block_types": ("UpDecoderBlock2D",) * 2, "sample_size": TINY_IMAGE}


def _vae(seed: int, **extra: Any) -> Any:
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL.from_config({**_TINY_VAE, **extra}).eval()


def _embeddings(prompts: Sequence[str], tokens: int, dim: int, pooled_dim: int | None,
                seed: int) -> Any:
    from evaluators.prompt_embeds import PromptEmbeddings

    gen = torch.Generator().manual_seed(seed)
    table = {}
    for prompt in ("", *prompts):
        embeds = torch.randn(tokens, dim, generator=gen)
        pooled = None if pooled_dim is None else torch.randn(pooled_dim, generator=gen)
        table[prompt] = (embeds, pooled)
    return PromptEmbeddings(table)


def tiny_flux_pipeline(seed: int = 0) -> Any:
    """A FluxPipeline with a tiny guidance-distilled FluxTransformer2DModel and no encoders."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    transformer = build_tiny("FluxTransformer2DModel", seed)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True,
                                                base_image_seq_len=16, max_image_seq_len=256)
    return FluxPipeline(scheduler=scheduler, vae=_vae(seed, shift_factor=0.0),
                        text_encoder=None, tokenizer=None, text_encoder_2=None,
                        tokenizer_2=None, transformer=transformer)


def tiny_sdxl_pipeline(seed: int = 0) -> Any:
    """A StableDiffusionXLPipeline with a tiny SDXL-style U-Net and no encoders."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    unet = build_tiny("UNet2DConditionModel", seed)
    return StableDiffusionXLPipeline(vae=_vae(seed), text_encoder=None, text_encoder_2=None,
                                     tokenizer=None, tokenizer_2=None, unet=unet,
                                     scheduler=EulerDiscreteScheduler())


def tiny_sd3_pipeline(seed: int = 0) -> Any:
    """A StableDiffusion3Pipeline with a tiny SD3Transformer2DModel and no encoders."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    transformer = build_tiny("SD3Transformer2DModel", seed)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(seed, shift_factor=0.0), text_encoder=None, tokenizer=None,
        text_encoder_2=None, tokenizer_2=None, text_encoder_3=None, tokenizer_3=None)


def save_tiny_transformer(model_class: str, folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny denoiser of a deployed family alone (a model folder, no pipeline)."""
    build_tiny(model_class, seed).save_pretrained(folder)
    return Path(folder)


def save_tiny_pipeline(kind: str, folder: str | Path, prompts: Sequence[str],
                       seed: int = 0) -> Path:
    """Write a tiny `flux`, `sd3` or `sdxl` pipeline and its prompts' embeddings to `folder`."""
    folder = Path(folder)
    if kind == "sd3":
        pipe = tiny_sd3_pipeline(seed)
        cfg = TINY["SD3Transformer2DModel"]
        embeds = _embeddings(prompts, 6, cfg["joint_attention_dim"],
                             cfg["pooled_projection_dim"], seed + 1)
    elif kind == "flux":
        pipe = tiny_flux_pipeline(seed)
        cfg = TINY["FluxTransformer2DModel"]
        embeds = _embeddings(prompts, 6, cfg["joint_attention_dim"],
                             cfg["pooled_projection_dim"], seed + 1)
    elif kind == "sdxl":
        pipe = tiny_sdxl_pipeline(seed)
        cfg = TINY["UNet2DConditionModel"]
        pooled = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
        embeds = _embeddings(prompts, 6, cfg["cross_attention_dim"], pooled, seed + 1)
    else:
        raise ValueError(f"unknown tiny pipeline '{kind}': use flux, sd3 or sdxl")
    pipe.save_pretrained(folder)
    embeds.size = (TINY_IMAGE, TINY_IMAGE)
    embeds.save(folder)
    return folder
