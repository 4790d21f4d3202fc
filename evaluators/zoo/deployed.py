"""The models people deploy now (FLUX.1-dev, SD3.5-large, Qwen-Image, Wan2.1-14B, SDXL): their
published configs for counting on the `meta` device, and tiny random-weight twins for tests.

Values are those of the checkpoints' public config.json files. Each entry also holds the geometry
of one generation at the model's native size (latent tokens, text tokens, frames), the pipeline's
CFG layout, and the configs of the VAE and text encoders so their cost can be reported beside the
denoiser's. Built from the real diffusers / transformers classes, so a count runs the real code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

CfgLayout = Literal["distilled", "batched", "separate", "none"]


@dataclass(frozen=True)
class Component:
    """A non-denoiser part of a pipeline: a diffusers or transformers class and its config."""

    library: Literal["diffusers", "transformers"]
    model_class: str
    config: dict[str, Any]
    config_class: str | None = None  # transformers: the *Config class the config dict builds
    tokens: int = 0  # text encoders: tokens per prompt


@dataclass(frozen=True)
class Deployed:
    """One published denoiser with the geometry of one generation at its native size.

    Attributes:
        name: the short name (`flux.1-dev-1024`).
        model_class: the diffusers class of the denoiser.
        config: its published config.
        height, width: the image size in pixels.
        frames: video frames (1 for images).
        text_tokens: tokens of the text conditioning the denoiser attends to.
        cfg: `distilled` (guidance embedded, one call per step: FLUX.1-dev), `batched` (both CFG
            halves in one call: SD3, SDXL), `separate` (one call per half: Qwen-Image, Wan).
        vae: the VAE whose decoder turns the final latent into pixels.
        text_encoders: run once per prompt, outside the plan.
    """

    name: str
    model_class: str
    config: dict[str, Any]
    height: int
    width: int
    frames: int = 1
    text_tokens: int = 0
    cfg: CfgLayout = "batched"
    vae: Component | None = None
    text_encoders: tuple[Component, ...] = field(default_factory=tuple)


_CLIP_L = Component("transformers", "CLIPTextModel",
                    {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                     "num_attention_heads": 12, "max_position_embeddings": 77,
                     "hidden_act": "quick_gelu"}, "CLIPTextConfig", tokens=77)
_CLIP_G = Component("transformers", "CLIPTextModelWithProjection",
                    {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                     "num_attention_heads": 20, "max_position_embeddings": 77,
                     "hidden_act": "gelu", "projection_dim": 1280}, "CLIPTextConfig", tokens=77)


def _t5_xxl(tokens: int, vocab: int = 32128) -> Component:
    return Component("transformers", "T5EncoderModel",
                     {"d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_layers": 24,
                      "num_heads": 64, "feed_forward_proj": "gated-gelu", "vocab_size": vocab},
                     "T5Config", tokens=tokens)


_QWEN25_VL_7B_TEXT = Component(  # the language model of Qwen2.5-VL-7B (Qwen-Image's text encoder)
    "transformers", "Qwen2Model",
    {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
     "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
     "max_position_embeddings": 128000}, "Qwen2Config", tokens=128)

_VAE_16 = Component("diffusers", "AutoencoderKL",  # FLUX.1 and SD3 VAE (16 latent channels)
                    {"in_channels": 3, "out_channels": 3, "latent_channels": 16,
                     "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2,
                     "down_block_types": ("DownEncoderBlock2D",) * 4,
                     "up_block_types": ("UpDecoderBlock2D",) * 4,
                     "use_quant_conv": False, "use_post_quant_conv": False})
_VAE_SDXL = Component("diffusers", "AutoencoderKL",
                      {"in_channels": 3, "out_channels": 3, "latent_channels": 4,
                       "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2,
                       "down_block_types": ("DownEncoderBlock2D",) * 4,
                       "up_block_types": ("UpDecoderBlock2D",) * 4})
_VAE_WAN = Component("diffusers", "AutoencoderKLWan",
                     {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
                      "temperal_downsample": [False, True, True]})
_VAE_QWEN = Component("diffusers", "AutoencoderKLQwenImage",
                      {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
                       "temperal_downsample": [False, True, True]})

_SDXL_UNET = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280), "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048, "transformer_layers_per_block": (1, 2, 10),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816, "use_linear_projection": True,
}

DEPLOYED: dict[str, Deployed] = {d.name: d for d in [
    Deployed("flux.1-dev-1024", "FluxTransformer2DModel",
             {"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
              "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
              "pooled_projection_dim": 768, "guidance_embeds": True,
              "axes_dims_rope": (16, 56, 56)},
             1024, 1024, text_tokens=512, cfg="distilled", vae=_VAE_16,
             text_encoders=(_CLIP_L, _t5_xxl(512))),
    Deployed("sd3.5-large-1024", "SD3Transformer2DModel",
             {"sample_size": 128, "patch_size": 2, "in_channels": 16, "num_layers": 38,
              "attention_head_dim": 64, "num_attention_heads": 38, "joint_attention_dim": 4096,
              "caption_projection_dim": 2432, "pooled_projection_dim": 2048, "out_channels": 16,
              "pos_embed_max_size": 192, "qk_norm": "rms_norm", "dual_attention_layers": ()},
             1024, 1024, text_tokens=77 + 256, cfg="batched", vae=_VAE_16,
             text_encoders=(_CLIP_L, _CLIP_G, _t5_xxl(256))),
    Deployed("qwen-image-1328", "QwenImageTransformer2DModel",
             {"patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60,
              "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 3584,
              "guidance_embeds": False, "axes_dims_rope": (16, 56, 56)},
             1328, 1328, text_tokens=128, cfg="separate", vae=_VAE_QWEN,
             text_encoders=(_QWEN25_VL_7B_TEXT,)),
    Deployed("wan2.1-t2v-14b-480p", "WanTransformer3DModel",
             {"patch_size": (1, 2, 2), "num_attention_heads": 40, "attention_head_dim": 128,
              "in_channels": 16, "out_channels": 16, "text_dim": 4096, "freq_dim": 256,
              "ffn_dim": 13824, "num_layers": 40, "cross_attn_norm": True,
              "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024},
             480, 832, frames=81, text_tokens=512, cfg="separate", vae=_VAE_WAN,
             text_encoders=(_t5_xxl(512, vocab=256384),)),  # umT5-XXL: T5-XXL's shape
    Deployed("sdxl-1024", "UNet2DConditionModel", _SDXL_UNET, 1024, 1024, text_tokens=77,
             cfg="batched", vae=_VAE_SDXL, text_encoders=(_CLIP_L, _CLIP_G)),
]}

# Tiny random-weight twins: the same classes with small dims, for offline tests (seconds on CPU).
TINY: dict[str, dict[str, Any]] = {
    "FluxTransformer2DModel": {"patch_size": 1, "in_channels": 16, "num_layers": 1,
                               "num_single_layers": 2, "attention_head_dim": 8,
                               "num_attention_heads": 2, "joint_attention_dim": 32,
                               "pooled_projection_dim": 16, "guidance_embeds": True,
                               "axes_dims_rope": (2, 2, 4)},
    "SD3Transformer2DModel": {"sample_size": 8, "patch_size": 2, "in_channels": 4, "num_layers": 2,
                              "attention_head_dim": 8, "num_attention_heads": 2,
                              "joint_attention_dim": 32, "caption_projection_dim": 16,
                              "pooled_projection_dim": 16, "out_channels": 4,
                              "pos_embed_max_size": 16},
    "QwenImageTransformer2DModel": {"patch_size": 2, "in_channels": 16, "out_channels": 4,
                                    "num_layers": 2, "attention_head_dim": 8,
                                    "num_attention_heads": 2, "joint_attention_dim": 32,
                                    "axes_dims_rope": (2, 2, 4)},
    "WanTransformer3DModel": {"patch_size": (1, 2, 2), "num_attention_heads": 2,
                              "attention_head_dim": 8, "in_channels": 4, "out_channels": 4,
                              "text_dim": 32, "freq_dim": 16, "ffn_dim": 32, "num_layers": 2,
                              "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 32},
    "UNet2DConditionModel": {"sample_size": 8, "in_channels": 4, "out_channels": 4,
                             "layers_per_block": 1, "block_out_channels": (16, 32),
                             "attention_head_dim": (2, 4), "cross_attention_dim": 32,
                             "norm_num_groups": 8, "transformer_layers_per_block": (1, 1),
                             "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
                             "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
                             "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
                             "projection_class_embeddings_input_dim": 32 + 6 * 8,
                             "use_linear_projection": True},
}


def build(model_class: str, config: dict[str, Any], device: str = "cpu", seed: int = 0) -> Any:
    """A diffusers model of this class and config (random weights, seeded; `meta`: no memory)."""
    import diffusers
    import torch

    cls = getattr(diffusers, model_class)
    if device == "meta":
        with torch.device("meta"):
            return cls.from_config(config).eval()
    torch.manual_seed(seed)
    return cls.from_config(config).to(device).eval()


def build_deployed(name: str) -> tuple[Any, Deployed]:
    """(the denoiser on `meta`, its entry) for a name of DEPLOYED."""
    if name not in DEPLOYED:
        raise KeyError(f"no published config for '{name}': use one of {', '.join(DEPLOYED)}")
    entry = DEPLOYED[name]
    return build(entry.model_class, entry.config, "meta"), entry


def build_tiny(model_class: str, seed: int = 0) -> Any:
    """A tiny random-weight model of a deployed family's class, on CPU."""
    return build(model_class, TINY[model_class], "cpu", seed)


def build_component(component: Component, device: str = "meta") -> Any:
    """A VAE or text encoder of a deployed pipeline (random weights; `meta` by default)."""
    import torch

    if component.library == "diffusers":
        return build(component.model_class, component.config, device)
    import transformers

    config = getattr(transformers, component.config_class or "")(**component.config)
    with torch.device(device):
        model = getattr(transformers, component.model_class)(config)
    return model.eval()
