"""The transformer families people deploy now: FLUX (dual- and single-stream blocks,
guidance-distilled), SD3 / SD3.5 (MMDiT), Qwen-Image (MMDiT) and Wan 2.x (video).

They run diffusers' own caches (`first_block_cache`, `taylorseer_cache`, `mag_cache`,
`faster_cache`, `pyramid_attention_broadcast`; one per plan) through `enable_cache` or the
`apply_*` functions of the installed diffusers. A denoiser call's inputs come from
`evaluators.calls` at a generation's `Geometry` (image size, frames, text tokens): a meta count
needs them, since these configs carry no sample size that fixes the tokens. CFG: FLUX.1-dev is
guidance-distilled (one call per step, no halves); SD3 batches (uncond, cond) in one call;
Qwen-Image and Wan call the transformer once per half, each in its own cache context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from evaluators.families.base import Family, ModelFacts, register_family

if TYPE_CHECKING:
    import torch

CACHES = ("first_block_cache", "taylorseer_cache", "mag_cache", "faster_cache",
          "pyramid_attention_broadcast")
SEARCH = ("library_cache",)  # search/params/library_cache.py: one cache and its knobs
BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks", "blocks")
# DiTFastAttn (the `attention` section) is refused, not approximated: its processor and window
# attention are written for one image-token sequence, and MMDiT / FLUX blocks attend text and
# image tokens jointly (a faithful port keeps the text rows and columns always attended: the
# arrow-shaped mask of DiTFastAttnV2), Wan's self-attention runs over frames x tokens.
REFUSED = {"attention": "DiTFastAttn's window attention is built for one image-token sequence, "
                        "not a joint text+image attention"}


@dataclass(frozen=True)
class DeployedTransformer(Family):
    """A deployed transformer family.

    Attributes:
        cfg: `distilled`, `batched` (both halves in one call) or `separate` (one call per half).
        timestep_scale: what the pipeline divides the 0..1000 timestep by before the call.
        default_geometry: (height, width, frames, text tokens) of the published checkpoint.
    """

    method_family: str | None = "library-cache"
    cfg: Literal["distilled", "batched", "separate"] = "batched"
    timestep_scale: float = 1.0
    default_geometry: tuple[int, int, int, int] = (1024, 1024, 1, 512)

    def native_geometry(self, model: torch.nn.Module) -> tuple[int, int, int, int]:
        """(height, width, frames, text tokens) of a generation when none is given: the published
        checkpoint's, shrunk where the config's position table is shorter (SD3's `sample_size`,
        Wan's `rope_max_seq_len` per axis: tiny test models; the published configs keep it)."""
        h, w, frames, text = self.default_geometry
        config = model.config
        sample = getattr(config, "sample_size", None)
        if isinstance(sample, int) and sample > 0:
            h = w = sample * 8  # the deployed VAEs' 8 pixels per latent pixel
        rope, patch = getattr(config, "rope_max_seq_len", None), getattr(config, "patch_size", None)
        if isinstance(rope, int) and isinstance(patch, (tuple, list)) and len(patch) == 3:
            pt, ph, pw = patch
            h, w = min(h, rope * ph * 8), min(w, rope * pw * 8)
            frames = min(frames, 1 + 4 * (rope * pt - 1))  # Wan's VAE: 4x in time, first kept
        return h, w, frames, text

    def read(self, model: torch.nn.Module) -> ModelFacts:
        from evaluators.calls import Geometry, image_tokens

        blocks = sum(len(getattr(model, n)) for n in BLOCK_LISTS if hasattr(model, n))
        cfg = model.config
        h, w, frames, text = self.native_geometry(model)
        return ModelFacts(self, type(model).__name__, num_layers=blocks, cfg_order=self.cfg_order,
                          num_tokens=image_tokens(model, Geometry(h, w, frames, text)),
                          hidden_dim=cfg.num_attention_heads * cfg.attention_head_dim)

    def dummy_inputs(self, model: torch.nn.Module, batch: int, device: torch.device,
                     text_tokens: int, geometry: Any = None) -> dict[str, Any]:
        from evaluators.calls import Geometry, denoiser_call

        if geometry is None:
            h, w, frames, text = self.native_geometry(model)
            geometry = Geometry(h, w, frames, text)
        inputs = denoiser_call(model, batch, geometry, device=device)
        inputs.pop("timestep")
        return inputs

    def timestep_input(self, t: float, batch: int, device: Any) -> Any:
        import torch

        if self.name == "wan":  # Wan's pipeline passes the scheduler's integer-valued timesteps
            return torch.full((batch,), int(t), dtype=torch.long, device=device)
        return torch.full((batch,), t / self.timestep_scale, device=device)


FLUX = register_family(DeployedTransformer(
    "flux", ("FluxTransformer2DModel",), "transformer", CACHES, {}, "cond-first", SEARCH,
    cfg="distilled", timestep_scale=1000.0, default_geometry=(1024, 1024, 1, 512),
    refused=REFUSED))
SD3 = register_family(DeployedTransformer(
    "sd3", ("SD3Transformer2DModel",), "transformer", CACHES[1:], {}, "uncond-first", SEARCH,
    cfg="batched", default_geometry=(1024, 1024, 1, 333), refused=REFUSED))
QWEN_IMAGE = register_family(DeployedTransformer(
    "qwen-image", ("QwenImageTransformer2DModel",), "transformer", CACHES, {}, "cond-first",
    SEARCH, cfg="separate", timestep_scale=1000.0, default_geometry=(1328, 1328, 1, 128),
    refused=REFUSED))
WAN = register_family(DeployedTransformer(
    "wan", ("WanTransformer3DModel",), "transformer", CACHES, {}, "cond-first", SEARCH,
    cfg="separate", default_geometry=(480, 832, 81, 512), refused=REFUSED))
