"""One denoiser call of the deployed families with inputs of the right shapes, for counting MACs.

A generation's geometry (image size, frames, text tokens) fixes every shape; the values are random
(the count does not depend on them, except for input-dependent caches, which `evaluators.executed`
counts from a real generation instead). Shapes follow what each diffusers pipeline passes:

- FLUX: latents packed 2x2 into tokens, `(B, (H/16)(W/16), in_channels)`, with `img_ids`/`txt_ids`
  for RoPE, the pooled CLIP vector and, for guidance-distilled checkpoints, `guidance`; the
  timestep is t / 1000.
- SD3: latents `(B, C, H/8, W/8)` patchified inside the model; the text sequence is CLIP + T5.
- Qwen-Image: packed tokens as FLUX, a text mask and `img_shapes`; the timestep is t / 1000.
- Wan: video latents `(B, C, 1 + (frames - 1) / 4, H/8, W/8)`; tokens = latent frames x h x w.
- SDXL: the U-Net's latents plus `added_cond_kwargs` (pooled text embeddings and the six
  size/crop time ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

CALL_FAMILIES = ("FluxTransformer2DModel", "SD3Transformer2DModel", "QwenImageTransformer2DModel",
                 "WanTransformer3DModel", "UNet2DConditionModel")


@dataclass(frozen=True)
class Geometry:
    """The shape of one generation.

    Attributes:
        height, width: image size in pixels.
        frames: video frames (1 for an image).
        text_tokens: tokens of the prompt's embedding sequence.
        vae_scale: pixels per latent pixel (8 for every deployed VAE; 2 for the tiny test VAE).
    """

    height: int
    width: int
    frames: int = 1
    text_tokens: int = 77
    vae_scale: int = 8

    @property
    def latent(self) -> tuple[int, int]:
        return self.height // self.vae_scale, self.width // self.vae_scale

    @property
    def latent_frames(self) -> int:
        return 1 + (self.frames - 1) // 4  # Wan's VAE: 4x temporal compression, first frame kept


def image_tokens(model: torch.nn.Module, geometry: Geometry) -> int:
    """Image (or video) tokens the denoiser's attention runs over."""
    cls = type(model).__name__
    h, w = geometry.latent
    if cls in ("FluxTransformer2DModel", "QwenImageTransformer2DModel"):
        return (h // 2) * (w // 2)
    if cls == "SD3Transformer2DModel":
        p = model.config.patch_size
        return (h // p) * (w // p)
    if cls == "WanTransformer3DModel":
        pt, ph, pw = model.config.patch_size
        return (geometry.latent_frames // pt) * (h // ph) * (w // pw)
    raise ValueError(f"{cls} has no image-token count here")


def latent_tokens(model: torch.nn.Module, geometry: Geometry) -> int:
    """Positions per sample of the denoiser's input at `geometry` (`input_tokens` of its call):
    image tokens of a transformer, latent pixels of a U-Net."""
    cls = type(model).__name__
    if cls in ("FluxTransformer2DModel", "QwenImageTransformer2DModel", "SD3Transformer2DModel",
               "WanTransformer3DModel"):
        return image_tokens(model, geometry)
    h, w = geometry.latent
    p = getattr(model.config, "patch_size", None) or 1
    return (h // p) * (w // p) if isinstance(p, int) else h * w


def input_tokens(model: torch.nn.Module, sample: torch.Tensor) -> int | None:
    """Positions per sample of one call's main input (`hidden_states` / `sample`): the tokens of
    a packed (B, N, C) sequence, or the patches of a (B, C, H, W) / (B, C, F, H, W) latent."""
    p = getattr(model.config, "patch_size", None) or 1
    if sample.ndim == 3:
        return int(sample.shape[1])
    if sample.ndim == 4:
        p = p if isinstance(p, int) else 1
        return (sample.shape[2] // p) * (sample.shape[3] // p)
    if sample.ndim == 5:
        pt, ph, pw = p if isinstance(p, (tuple, list)) else (1, p, p)
        return (sample.shape[2] // pt) * (sample.shape[3] // ph) * (sample.shape[4] // pw)
    return None


def _flux(model: Any, batch: int, g: Geometry, t: float, device: Any) -> dict[str, Any]:
    cfg = model.config
    h, w = g.latent
    n = (h // 2) * (w // 2)
    img_ids = torch.zeros(h // 2, w // 2, 3, device=device)
    img_ids[..., 1] += torch.arange(h // 2, device=device)[:, None]
    img_ids[..., 2] += torch.arange(w // 2, device=device)[None, :]
    kwargs = {
        "hidden_states": torch.randn(batch, n, cfg.in_channels, device=device),
        "encoder_hidden_states": torch.randn(batch, g.text_tokens, cfg.joint_attention_dim,
                                             device=device),
        "pooled_projections": torch.randn(batch, cfg.pooled_projection_dim, device=device),
        "timestep": torch.full((batch,), t / 1000, device=device),
        "img_ids": img_ids.reshape(n, 3),
        "txt_ids": torch.zeros(g.text_tokens, 3, device=device),
        "return_dict": False,
    }
    if cfg.guidance_embeds:
        kwargs["guidance"] = torch.full((batch,), 3.5, device=device)
    return kwargs


def _sd3(model: Any, batch: int, g: Geometry, t: float, device: Any) -> dict[str, Any]:
    cfg = model.config
    h, w = g.latent
    return {"hidden_states": torch.randn(batch, cfg.in_channels, h, w, device=device),
            "encoder_hidden_states": torch.randn(batch, g.text_tokens, cfg.joint_attention_dim,
                                                 device=device),
            "pooled_projections": torch.randn(batch, cfg.pooled_projection_dim, device=device),
            "timestep": torch.full((batch,), float(t), device=device), "return_dict": False}


def _qwen(model: Any, batch: int, g: Geometry, t: float, device: Any) -> dict[str, Any]:
    cfg = model.config
    h, w = g.latent
    n = (h // 2) * (w // 2)
    return {"hidden_states": torch.randn(batch, n, cfg.in_channels, device=device),
            "encoder_hidden_states": torch.randn(batch, g.text_tokens, cfg.joint_attention_dim,
                                                 device=device),
            "encoder_hidden_states_mask": torch.ones(batch, g.text_tokens, dtype=torch.long,
                                                     device=device),
            "timestep": torch.full((batch,), t / 1000, device=device),
            "img_shapes": [[(1, h // 2, w // 2)]] * batch, "return_dict": False}


def _wan(model: Any, batch: int, g: Geometry, t: float, device: Any) -> dict[str, Any]:
    cfg = model.config
    h, w = g.latent
    return {"hidden_states": torch.randn(batch, cfg.in_channels, g.latent_frames, h, w,
                                         device=device),
            "encoder_hidden_states": torch.randn(batch, g.text_tokens, cfg.text_dim, device=device),
            "timestep": torch.full((batch,), int(t), dtype=torch.long, device=device),
            "return_dict": False}


def _sdxl(model: Any, batch: int, g: Geometry, t: float, device: Any) -> dict[str, Any]:
    cfg = model.config
    h, w = g.latent
    time_ids = 6 * cfg.addition_time_embed_dim
    text_embeds = cfg.projection_class_embeddings_input_dim - time_ids
    added = {"text_embeds": torch.randn(batch, text_embeds, device=device),
             "time_ids": torch.tensor([[g.height, g.width, 0, 0, g.height, g.width]] * batch,
                                      dtype=torch.float32, device=device)}
    return {"sample": torch.randn(batch, cfg.in_channels, h, w, device=device),
            "timestep": torch.full((batch,), int(t), dtype=torch.long, device=device),
            "encoder_hidden_states": torch.randn(batch, g.text_tokens, cfg.cross_attention_dim,
                                                 device=device),
            "added_cond_kwargs": added, "return_dict": False}


_BUILDERS = {"FluxTransformer2DModel": _flux, "SD3Transformer2DModel": _sd3,
             "QwenImageTransformer2DModel": _qwen, "WanTransformer3DModel": _wan,
             "UNet2DConditionModel": _sdxl}


def denoiser_call(model: torch.nn.Module, batch: int, geometry: Geometry, timestep: float = 500.0,
                  device: str | torch.device | None = None) -> dict[str, Any]:
    """Keyword arguments of one forward of `model` (a deployed family) for `batch` latents at
    `geometry`, with the pipeline's timestep convention (`timestep` on the 0..1000 scale)."""
    cls = type(model).__name__
    if cls not in _BUILDERS:
        raise ValueError(f"{cls}: no call shapes here (families: {', '.join(CALL_FAMILIES)})")
    if device is None:
        device = next(model.parameters()).device
    if cls == "UNet2DConditionModel" and model.config.addition_embed_type != "text_time":
        raise ValueError("only SDXL-style U-Nets (addition_embed_type 'text_time') are built here")
    return _BUILDERS[cls](model, batch, geometry, timestep, device)
