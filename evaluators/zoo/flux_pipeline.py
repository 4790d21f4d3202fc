"""A diffusers pipeline for digits-flux that samples the way `FluxPipeline` samples a real FLUX
checkpoint: Gaussian latents packed into 2×2 patches, rotary ids for the image grid and the prompt
tokens, timesteps in [0, 1], flow-matching Euler steps, and each transformer call inside
`cache_context("cond")` / `cache_context("uncond")` so diffusers' caches (`enable_cache`) work.

Guidance is real classifier-free guidance (FluxPipeline's `true_cfg_scale` with the null prompt as
the negative prompt): the model was trained with label dropout, not guidance-distilled.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from evaluators.data import IMAGE_SIZE, to_unit
from evaluators.zoo.flux import DigitsPromptEncoder, image_ids, pack, text_ids, unpack


def calculate_shift(image_seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096,
                    base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """FLUX's resolution-dependent shift mu: linear in the number of image tokens."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * slope + base_shift - slope * base_seq_len


class DigitsFluxPipeline(DiffusionPipeline):
    """Class-conditional FLUX sampling for the digits: `pipe(class_labels=[3, 7], ...)`.

    Components: `transformer` (FluxTransformer2DModel), `text_encoder` (DigitsPromptEncoder: the
    learned prompt of each digit and the null prompt) and `scheduler`
    (FlowMatchEulerDiscreteScheduler). The 16×16 image is its own latent (no VAE).
    """

    model_cpu_offload_seq = "text_encoder->transformer"
    default_sample_size = IMAGE_SIZE
    cfg_layout = "separate"  # one transformer call per CFG half, at the same timestep

    def __init__(self, transformer: Any, text_encoder: DigitsPromptEncoder,
                 scheduler: FlowMatchEulerDiscreteScheduler) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, text_encoder=text_encoder,
                              scheduler=scheduler)

    @property
    def geometry(self) -> Any:
        """The shape of one generation for MAC counts (`evaluators.calls.Geometry`): the 16×16 image
        is its own latent (vae_scale 1, so 8×8 = 64 packed tokens) and the prompt's tokens."""
        from evaluators.calls import Geometry

        size = self.default_sample_size
        return Geometry(size, size, 1, int(self.text_encoder.config.num_tokens), vae_scale=1)

    def prompt_embeds(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt tokens, pooled vector) of each label; the null label is the empty prompt."""
        return self.text_encoder(labels.to(self.transformer.device))

    def _timesteps(self, num_inference_steps: int, image_seq_len: int) -> torch.Tensor:
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)  # as FluxPipeline
        config = self.scheduler.config
        mu = None
        if config.get("use_dynamic_shifting", False):
            mu = calculate_shift(image_seq_len, config.get("base_image_seq_len", 256),
                                 config.get("max_image_seq_len", 4096),
                                 config.get("base_shift", 0.5), config.get("max_shift", 1.15))
        self.scheduler.set_timesteps(sigmas=sigmas, mu=mu, device=self.transformer.device)
        self.scheduler.set_begin_index(0)
        return self.scheduler.timesteps

    def _velocity(self, latents: torch.Tensor, timestep: torch.Tensor, embeds: tuple,
                  guidance: torch.Tensor | None, img_ids: torch.Tensor) -> torch.Tensor:
        prompt, pooled = embeds
        return self.transformer(hidden_states=latents, timestep=timestep / 1000, guidance=guidance,
                                pooled_projections=pooled, encoder_hidden_states=prompt,
                                txt_ids=text_ids(prompt.shape[1], latents), img_ids=img_ids,
                                return_dict=False)[0]

    @torch.no_grad()
    def __call__(
        self,
        class_labels: Sequence[int] | torch.Tensor,
        num_inference_steps: int = 28,
        guidance_scale: float = 1.5,
        generator: torch.Generator | list[torch.Generator] | None = None,
        seed: int | None = None,
        height: int | None = None,
        width: int | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict] | None = None,
    ) -> Any:
        """Generate one image per label.

        Args:
            class_labels: the digits to draw (0..9).
            num_inference_steps: Euler steps, sigmas evenly spaced from 1 down to 1/N.
            guidance_scale: classifier-free guidance scale; 1.0 runs only the conditional pass.
            generator: one generator per image makes image k depend only on its own seed.
            seed: instead of `generator`: image k uses seed + k (as DigitsPipeline).
            output_type: "pil", "np" (N, H, W, 1) in [0, 1], "pt" (N, 1, H, W) in [0, 1], or
                "latent" (the packed tokens).
            callback_on_step_end: called as `callback(pipe, i, t, {})` after every step.
        """
        device = self.transformer.device
        labels = torch.as_tensor(list(class_labels) if not torch.is_tensor(class_labels)
                                 else class_labels, dtype=torch.long)
        n = int(labels.shape[0])
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type '{output_type}': use pil, np, pt or latent")
        if generator is None and seed is not None:
            generator = [torch.Generator(device).manual_seed(seed + k) for k in range(n)]
        height, width = height or self.default_sample_size, width or self.default_sample_size
        channels = self.transformer.config.in_channels // 4
        noise = randn_tensor((n, channels, height, width), generator=generator, device=device)
        latents = pack(noise)
        img_ids = image_ids(height, width, latents)
        cond = self.prompt_embeds(labels)
        do_cfg = guidance_scale > 1.0
        uncond = self.prompt_embeds(torch.full_like(labels, self.text_encoder.null_label))
        guidance = None
        if self.transformer.config.guidance_embeds:  # a guidance-distilled checkpoint
            guidance = torch.full((n,), guidance_scale, device=device)
        for i, t in enumerate(self._timesteps(num_inference_steps, latents.shape[1])):
            timestep = t.expand(n).to(latents.dtype)
            with self.transformer.cache_context("cond"):
                velocity = self._velocity(latents, timestep, cond, guidance, img_ids)
            if do_cfg:
                with self.transformer.cache_context("uncond"):
                    neg = self._velocity(latents, timestep, uncond, guidance, img_ids)
                velocity = neg + guidance_scale * (velocity - neg)
            latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]
            if callback_on_step_end is not None:
                callback_on_step_end(self, i, t, {})
        if output_type == "latent":
            images = latents
        else:
            images = to_unit(unpack(latents, height, width).clamp(-1.0, 1.0)).cpu()
            if output_type != "pt":
                images = images.permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)


def load_flux_pipeline(name_or_path: str, device: str | torch.device = "cpu") -> DigitsFluxPipeline:
    """digits-flux (or a folder laid out like it) as a pipeline, each part by `from_pretrained`."""
    from evaluators.zoo import ModelLoadError, load_model, resolve

    entry = resolve(name_or_path)
    transformer = load_model(name_or_path, device)
    kwargs = {} if importlib.util.find_spec("accelerate") else {"low_cpu_mem_usage": False}
    try:
        text_encoder = DigitsPromptEncoder.from_pretrained(entry.source, subfolder="text_encoder",
                                                           **kwargs)
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(entry.source,
                                                                    subfolder="scheduler")
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"could not load the prompt encoder or scheduler of "
                             f"'{name_or_path}' from {entry.source}: {err}") from err
    pipe = DigitsFluxPipeline(transformer, text_encoder.to(device).eval(), scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate_spec(pipe: DigitsFluxPipeline, spec: Any,
                  progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`evaluators.sampling.generate` for digits-flux: image k has class k % 10 and seed
    `spec.seed + k`; returns (images in [-1, 1], labels)."""
    from tqdm.auto import tqdm

    num_classes = int(pipe.text_encoder.config.num_classes)
    labels = torch.arange(spec.num_images) % num_classes
    out = []
    starts = range(0, spec.num_images, spec.batch_size)
    for start in tqdm(starts, desc="sampling", unit="batch", disable=not progress):
        stop = min(start + spec.batch_size, spec.num_images)
        gens = [torch.Generator().manual_seed(spec.seed + k) for k in range(start, stop)]
        images = pipe(class_labels=labels[start:stop], num_inference_steps=spec.num_inference_steps,
                      guidance_scale=spec.guidance_scale, generator=gens, output_type="pt").images
        out.append(images * 2.0 - 1.0)
    return torch.cat(out), labels
