"""The project's own sampling loop for class-conditional pixel-space models (the embedded default).

DDIM (eta = 0) with classifier-free guidance: the batch holds the conditional half first and the
unconditional (null-class) half second, as diffusers' DiTPipeline does. Each image's initial noise is
drawn from its own seed, so image k is the same whatever the batch size or the other images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from evaluators.defaults import DEFAULT_GUIDANCE, DEFAULT_STEPS
from evaluators.plan import Plan


@dataclass(frozen=True)
class SampleSpec:
    """What to generate.

    Attributes:
        num_images: how many images; image k has class `k % num_classes` and seed `seed + k`.
        num_inference_steps: DDIM steps.
        guidance_scale: classifier-free guidance scale; 1.0 turns guidance off (one pass per step).
        seed: the first image's seed.
        batch_size: images denoised together (memory only: results do not depend on it).
    """

    num_images: int = 100
    num_inference_steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    batch_size: int = 100

    def __post_init__(self) -> None:
        if self.num_images < 1 or self.num_inference_steps < 1 or self.batch_size < 1:
            raise ValueError("num_images, num_inference_steps and batch_size must be >= 1")
        if self.guidance_scale < 1.0:
            raise ValueError(f"guidance_scale {self.guidance_scale} < 1: use 1.0 for no guidance")


def null_class(model: torch.nn.Module) -> int | None:
    """The label of the unconditional (null) class, or None for an unconditional model."""
    config = model.config
    if getattr(config, "num_embeds_ada_norm", None):  # DiT: the table has one extra row
        return int(config.num_embeds_ada_norm)
    if getattr(config, "num_class_embeds", None):  # U-Net: the last class embedding
        return int(config.num_class_embeds) - 1
    return None


def sample_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(channels, height, width) of one sample."""
    size = model.config.sample_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return int(model.config.in_channels), int(h), int(w)


def initial_noise(shape: tuple[int, int, int], seeds: Sequence[int]) -> torch.Tensor:
    """One standard normal sample per seed, stacked."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])


def guided_noise(
    model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
    null: int | None, guidance_scale: float,
) -> torch.Tensor:
    """The model's noise prediction at timestep `t`, with classifier-free guidance if asked."""
    channels = x.shape[1]
    dtype = next(model.parameters()).dtype  # a half-precision model: its input cast, output float
    if labels is None or null is None or guidance_scale == 1.0:
        out = model(x.to(dtype), t.expand(x.shape[0]), class_labels=labels).sample
        return out[:, :channels].to(x.dtype)  # drop learned-sigma channels, if any
    x_in = torch.cat([x, x]).to(dtype)
    y_in = torch.cat([labels, torch.full_like(labels, null)])
    out = model(x_in, t.expand(x_in.shape[0]), class_labels=y_in).sample[:, :channels].to(x.dtype)
    cond, uncond = out.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


@torch.no_grad()
def denoise(
    model: torch.nn.Module, scheduler: object, labels: torch.Tensor | None, seeds: Sequence[int],
    num_inference_steps: int = DEFAULT_STEPS, guidance_scale: float = DEFAULT_GUIDANCE,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Generate one batch; returns images in the model range [-1, 1]. `on_step` is called after
    every denoising step (progress)."""
    device = next(model.parameters()).device
    scheduler.set_timesteps(num_inference_steps)
    x = initial_noise(sample_shape(model), seeds).to(device) * scheduler.init_noise_sigma
    labels = None if labels is None else labels.to(device)
    null = null_class(model)
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)  # DDIM: x itself; Euler-type schedulers scale
        eps = guided_noise(model, x_in, t.to(device), labels, null, guidance_scale)
        x = scheduler.step(eps, t, x).prev_sample
        if on_step is not None:
            on_step()
    return x.clamp(-1.0, 1.0).cpu()


def generate(
    model: torch.nn.Module, scheduler: object, spec: SampleSpec, num_classes: int = 10,
    progress: bool = True, plan: Plan | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate `spec.num_images` images in batches; returns (images in [-1, 1], class labels).

    With a `plan`, it is applied for the duration of the call and its sampling section (steps,
    guidance, timestep placement) replaces the spec's.
    """
    if plan is not None:
        from evaluators.runtime import apply_plan, plan_scheduler

        spec = replace(spec, num_inference_steps=plan.num_steps,
                       guidance_scale=plan.sampling.guidance_scale)
        with apply_plan(model, plan):
            return generate(model, plan_scheduler(scheduler, plan), spec, num_classes, progress)
    conditional = null_class(model) is not None
    labels = torch.arange(spec.num_images) % num_classes
    seeds = list(range(spec.seed, spec.seed + spec.num_images))
    out = []
    starts = range(0, spec.num_images, spec.batch_size)
    for start in tqdm(starts, desc="sampling", unit="batch", disable=not progress):
        stop = min(start + spec.batch_size, spec.num_images)
        batch_labels = labels[start:stop] if conditional else None
        out.append(denoise(model, scheduler, batch_labels, seeds[start:stop],
                           spec.num_inference_steps, spec.guidance_scale))
    return torch.cat(out), labels
