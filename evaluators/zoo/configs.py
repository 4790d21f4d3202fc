"""Published architecture configs of the real checkpoints, for counting their cost on the `meta`
device without downloading weights (values from the models' public config.json files)."""

from __future__ import annotations

from typing import Any

_DIT = {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8,
        "num_layers": 28, "patch_size": 2, "num_embeds_ada_norm": 1000, "norm_type": "ada_norm_zero",
        "activation_fn": "gelu-approximate", "attention_bias": True,
        "norm_elementwise_affine": False}
_PIXART = {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8,
           "num_layers": 28, "patch_size": 2, "cross_attention_dim": 1152, "caption_channels": 4096,
           "norm_type": "ada_norm_single", "activation_fn": "gelu-approximate",
           "attention_bias": True, "norm_elementwise_affine": False, "norm_eps": 1e-6}
_SD15 = {"sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
         "block_out_channels": (320, 640, 1280, 1280), "cross_attention_dim": 768,
         "attention_head_dim": 8,
         "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
         "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3}
_DDPM_CIFAR10 = {"sample_size": 32, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
                 "block_out_channels": (128, 256, 256, 256), "downsample_padding": 0,
                 "flip_sin_to_cos": False, "freq_shift": 1, "norm_eps": 1e-6,
                 "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                 "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")}

# name -> (diffusers class, config, text tokens of the conditioning, latent side)
PUBLISHED: dict[str, tuple[str, dict[str, Any], int]] = {
    "dit-xl-2-256": ("DiTTransformer2DModel", {**_DIT, "sample_size": 32}, 0),
    "dit-xl-2-512": ("DiTTransformer2DModel", {**_DIT, "sample_size": 64}, 0),
    "pixart-alpha-512": ("PixArtTransformer2DModel", {**_PIXART, "sample_size": 64}, 120),
    "pixart-alpha-1024": ("PixArtTransformer2DModel",
                          {**_PIXART, "sample_size": 128, "use_additional_conditions": True}, 120),
    "pixart-sigma-512": ("PixArtTransformer2DModel",
                         {**_PIXART, "sample_size": 64, "use_additional_conditions": False}, 300),
    "pixart-sigma-1024": ("PixArtTransformer2DModel",
                          {**_PIXART, "sample_size": 128, "interpolation_scale": 2,
                           "use_additional_conditions": False}, 300),
    "sd-1.5": ("UNet2DConditionModel", _SD15, 77),
    "ddpm-cifar10": ("UNet2DModel", _DDPM_CIFAR10, 0),
}


def build_on_meta(name: str) -> tuple[Any, int]:
    """(model on the meta device, text tokens) for a registry name in PUBLISHED."""
    import diffusers
    import torch

    if name not in PUBLISHED:
        raise KeyError(f"no published config for '{name}': use one of {', '.join(PUBLISHED)}")
    cls_name, config, tokens = PUBLISHED[name]
    with torch.device("meta"):
        model = getattr(diffusers, cls_name).from_config(config)
    return model.eval(), tokens
