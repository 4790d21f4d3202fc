"""A diffusers pipeline for the shipped class-conditional digits models (`digits-dit`,
`digits-unet`), so a plan is applied to them exactly as to a stock pipeline:

    pipe = load_pipeline("digits-dit")
    with apply_plan(pipe, plan):
        images = pipe(class_labels=[0, 1, 2], num_inference_steps=plan.num_steps).images

The stock pipelines do not fit them: they work in pixel space (no VAE, unlike DiTPipeline), take a
class label (unlike DDIMPipeline), and their null class is the model's own (the last row of the
label table: `num_embeds_ada_norm` for the DiT, `num_class_embeds - 1` for the U-Net; DiTPipeline
hard-codes 1000). Sampling is edgediff's own loop (`evaluators.sampling.denoise`): DDIM, the
(cond, uncond) CFG batch and one seed per image, so image k equals what `edgediff evaluate` makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

from evaluators.defaults import DEFAULT_GUIDANCE, DEFAULT_STEPS
from evaluators.sampling import denoise


class DigitsPipeline(DiffusionPipeline):
    """Class-conditional pixel-space sampling for a `transformer` or a `unet` with a scheduler.

    Call with `class_labels` (digits 0-9), `num_inference_steps`, `guidance_scale` (1.0: no
    guidance), `seed` (image k uses seed + k) and `output_type` ("pil", "np" in [0, 1] NHWC, or
    "pt" in [-1, 1] NCHW); returns an `ImagePipelineOutput`.
    """

    def __init__(self, scheduler: Any, transformer: torch.nn.Module | None = None,
                 unet: torch.nn.Module | None = None) -> None:
        super().__init__()
        if (transformer is None) == (unet is None):
            raise ValueError("DigitsPipeline takes exactly one denoiser: transformer= or unet=")
        self.register_modules(scheduler=scheduler, transformer=transformer, unet=unet)

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.transformer if self.transformer is not None else self.unet

    @torch.no_grad()
    def __call__(self, class_labels: Sequence[int], num_inference_steps: int = DEFAULT_STEPS,
                 guidance_scale: float = DEFAULT_GUIDANCE, seed: int = 0,
                 output_type: str = "pil") -> ImagePipelineOutput:
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type '{output_type}': use pil, np or pt")
        labels = torch.as_tensor(list(class_labels), dtype=torch.long)
        seeds = list(range(seed, seed + len(labels)))
        images = denoise(self.denoiser, self.scheduler, labels, seeds, num_inference_steps,
                         guidance_scale)
        if output_type == "pt":
            return ImagePipelineOutput(images=images)
        array = ((images + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).float().numpy()
        return ImagePipelineOutput(images=array if output_type == "np" else self.numpy_to_pil(array))


def load_pipeline(name: str, device: str | torch.device = "cpu") -> Any:
    """The pipeline of a shipped generator: DigitsPipeline with its DDIM scheduler for `digits-dit`
    and `digits-unet`; for `digits-flux` its FLUX-style DigitsFluxPipeline (flow-matching Euler,
    packed latents), which takes the same `class_labels`, `num_inference_steps`, `guidance_scale`."""
    from evaluators.zoo import REGISTRY, SHIPPED_GENERATORS, load_model, load_scheduler

    if name not in SHIPPED_GENERATORS:
        raise ValueError(f"'{name}' is not a shipped generator: use one of "
                         f"{', '.join(SHIPPED_GENERATORS)} (real checkpoints have their own "
                         "diffusers pipelines)")
    if REGISTRY[name].is_flux:
        from evaluators.zoo.flux_pipeline import load_flux_pipeline

        return load_flux_pipeline(name, device)
    model = load_model(name, device)
    role = "transformer" if REGISTRY[name].kind == "dit" else "unet"
    return DigitsPipeline(load_scheduler(name), **{role: model})
