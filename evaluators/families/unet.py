"""diffusers U-Nets: pixel-space `UNet2DModel` (the shipped digits U-Net, DDPM/DDIM checkpoints)
and the text-conditional `UNet2DConditionModel` (Stable Diffusion 1.x/2.x, and SDXL: its
`added_cond_kwargs`, pooled text embeddings and size/crop time ids, come from `evaluators.calls`).

Both run DeepCache and depth-skip; their skip branches and resolution levels come from
`evaluators.runtime.unet.unet_layout` (DeepCache's `cache_branch_id` numbering). edgediff's own
sampling loop batches the CFG halves (cond, uncond); Stable Diffusion pipelines (uncond, cond).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluators.families.base import Family, ModelFacts, register_family

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class UNetFamily(Family):
    """A U-Net family; `text_conditioned`: its forward takes `encoder_hidden_states`."""

    text_conditioned: bool = False

    def read(self, model: torch.nn.Module) -> ModelFacts:
        from evaluators.runtime.unet import unet_layout

        layout = unet_layout(model)
        return ModelFacts(self, type(model).__name__,
                          skip_levels=tuple(s.level for s in layout.skips),
                          cfg_order=self.cfg_order)

    def dummy_inputs(self, model: torch.nn.Module, batch: int, device: torch.device,
                     text_tokens: int, geometry: Any = None) -> dict[str, Any]:
        import torch

        cfg = model.config
        if getattr(cfg, "addition_embed_type", None) == "text_time":  # SDXL: added conditioning
            from evaluators.calls import Geometry, denoiser_call

            size = cfg.sample_size * 8
            geometry = geometry or Geometry(size, size, text_tokens=77)
            inputs = denoiser_call(model, batch, geometry, device=device)
            inputs.pop("timestep")
            return inputs
        size = cfg.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        inputs: dict[str, Any] = {"sample": torch.randn(batch, cfg.in_channels, h, w, device=device)}
        if self.text_conditioned:
            inputs["encoder_hidden_states"] = torch.randn(batch, 77, cfg.cross_attention_dim,
                                                          device=device)
        if getattr(cfg, "num_class_embeds", None):
            inputs["class_labels"] = torch.zeros(batch, dtype=torch.long, device=device)
        return inputs


_SECTIONS = ("deepcache", "depth_skip")
_SEARCH = ("deepcache", "depth_skip", "spacing")

UNET = register_family(UNetFamily("unet", ("UNet2DModel",), "unet", _SECTIONS, {}, "cond-first",
                                  _SEARCH))
SD_UNET = register_family(UNetFamily("sd-unet", ("UNet2DConditionModel",), "unet", _SECTIONS, {},
                                     "uncond-first", _SEARCH, text_conditioned=True))
