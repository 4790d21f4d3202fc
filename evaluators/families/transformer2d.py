"""Patch-based 2D diffusion transformers: DiT (class labels) and PixArt (T5 captions).

Both run DiTFastAttn plans on the self-attention (`attn1`) of every `transformer_blocks` entry.
They differ in conditioning and in the order of the CFG halves: diffusers' DiTPipeline (and
edgediff's own sampling loop) batch (cond, uncond); the PixArt pipelines batch (uncond, cond)
(`torch.cat([negative_prompt_embeds, prompt_embeds])`, the DiTFastAttn reference's
`cond_first=False`). PixArt weights may also load as a generic Transformer2DModel with
`norm_type="ada_norm_single"`: that one is PixArt-ordered too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluators.families.base import CfgOrder, Family, ModelFacts, register_family

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TransformerFamily(Family):
    def read(self, model: torch.nn.Module) -> ModelFacts:
        from evaluators.runtime.attention import self_attention_layers

        config = model.config
        height, width = _sample_size(config)
        patch = int(config.patch_size or 1)
        return ModelFacts(self, type(model).__name__,
                          num_layers=len(self_attention_layers(model)),
                          num_tokens=(height // patch) * (width // patch),
                          hidden_dim=config.num_attention_heads * config.attention_head_dim,
                          cfg_order=self.cfg_order_of(model))

    def cfg_order_of(self, model: Any) -> CfgOrder:
        if type(model).__name__ == "Transformer2DModel" and \
                getattr(model.config, "norm_type", None) == "ada_norm_single":
            return "uncond-first"
        return self.cfg_order

    def dummy_inputs(self, model: torch.nn.Module, batch: int, device: torch.device,
                     text_tokens: int) -> dict[str, Any]:
        import torch

        cfg = model.config
        h, w = _sample_size(cfg)
        inputs: dict[str, Any] = {
            "hidden_states": torch.randn(batch, cfg.in_channels, h, w, device=device)}
        if getattr(cfg, "caption_channels", None):  # PixArt-style text conditioning
            inputs["encoder_hidden_states"] = torch.randn(batch, text_tokens, cfg.caption_channels,
                                                          device=device)
            added = {"resolution": None, "aspect_ratio": None}
            if getattr(model, "use_additional_conditions", False):
                added = {"resolution": torch.ones(batch, 2, device=device) * h * 8,
                         "aspect_ratio": torch.ones(batch, 1, device=device)}
            inputs["added_cond_kwargs"] = added
        else:
            inputs["class_labels"] = torch.zeros(batch, dtype=torch.long, device=device)
        return inputs


def _sample_size(config: Any) -> tuple[int, int]:
    size = config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return int(height), int(width)


_ATTENTION = {"attention": "all 'full' for the uncompressed model"}

DIT = register_family(TransformerFamily(
    "dit", ("DiTTransformer2DModel", "Transformer2DModel"), "transformer", ("attention",),
    _ATTENTION, "cond-first", ("attention",)))
PIXART = register_family(TransformerFamily(
    "pixart", ("PixArtTransformer2DModel",), "transformer", ("attention",), _ATTENTION,
    "uncond-first", ("attention",)))
