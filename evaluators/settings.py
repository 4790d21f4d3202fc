"""The GPU-scale settings of an evaluation spec, applied to a loaded subject: precision, image
size, scheduler, negative prompt and VAE decoding (`EvalSpec.dtype`, `height`/`width`,
`scheduler`, `negative_prompt`, `vae_decode`).

    configure_subject(subject, spec)   # once, right after loading; defaults change nothing

A setting the model cannot take (an image size for a model of fixed size, a negative prompt for a
class-conditional model, VAE decoding for a pixel-space model, a scheduler of another family)
is one ModelLoadError naming the value and the fix, raised before any image is generated.
"""

from __future__ import annotations

from typing import Any

import torch

from evaluators.spec import EvalSpec
from evaluators.zoo import ModelLoadError

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def configure_subject(subject: Any, spec: EvalSpec) -> None:
    """Apply the spec's runtime settings to `subject` (in place; nothing at their defaults)."""
    if spec.dtype != "fp32":
        _set_dtype(subject, TORCH_DTYPES[spec.dtype])
    if spec.height is not None:
        _set_size(subject, spec.height, spec.width)
    if spec.scheduler is not None:
        _set_scheduler(subject, spec.scheduler)
    if spec.negative_prompt is not None:
        if subject.conditioning != "prompt":
            raise ModelLoadError(f"'{subject.name}' takes no prompts, so no negative prompt: "
                                 "leave --negative-prompt out")
        subject.negative_prompt = spec.negative_prompt
    if spec.vae_decode != "batch":
        _set_vae_decode(subject, spec.vae_decode)


def _set_dtype(subject: Any, dtype: torch.dtype) -> None:
    from diffusers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()  # diffusers' advice to load in the dtype instead: one per call
    try:
        pipeline = getattr(subject, "pipeline", None)
        (pipeline if pipeline is not None else subject.denoiser).to(dtype=dtype)
    finally:
        logging.set_verbosity(level)


def _set_size(subject: Any, height: int, width: int | None) -> None:
    if not hasattr(subject, "height"):  # only pipelines whose MAC count follows the size
        raise ModelLoadError(f"'{subject.name}' generates at its own fixed size: leave --height "
                             "and --width out")
    subject.height, subject.width = height, width


def _set_scheduler(subject: Any, name: str) -> None:
    owner = getattr(subject, "pipeline", subject)
    current = owner.scheduler
    accepted = sorted({type(current).__name__, *(c.__name__ for c in current.compatibles)})
    if name not in accepted:
        raise ModelLoadError(f"scheduler '{name}' does not fit '{subject.name}' (it uses "
                             f"{type(current).__name__}): use one of {', '.join(accepted)}")
    import diffusers

    owner.scheduler = getattr(diffusers, name).from_config(current.config)


def _set_vae_decode(subject: Any, mode: str) -> None:
    vae = getattr(getattr(subject, "pipeline", None), "vae", None)
    if vae is None or not hasattr(vae, "enable_slicing"):
        raise ModelLoadError(f"'{subject.name}' has no VAE to decode with (it denoises pixels): "
                             "leave --vae-decode out")
    if "slicing" in mode:
        vae.enable_slicing()
    if "tiling" in mode:
        vae.enable_tiling()
