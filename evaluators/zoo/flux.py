"""digits-flux: a small FLUX-family transformer (diffusers' `FluxTransformer2DModel`) on the digits.

The pieces a FLUX checkpoint has, at digits scale:
- the transformer: dual-stream (MMDiT) blocks, then single-stream blocks, rotary positions over the
  text tokens (ids 0) and the image grid (ids (0, row, col));
- a "text encoder": here a learned table, one short token sequence and one pooled vector per digit
  plus a null row (the empty prompt of classifier-free guidance), saved with the weights;
- a flow-matching Euler scheduler (`FlowMatchEulerDiscreteScheduler`).
There is no VAE: the 16×16 grey image is the latent, packed into 2×2 patches as FLUX packs its
latent (8×8 = 64 image tokens of 4 channels).
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from evaluators.data import IMAGE_SIZE, NUM_CLASSES

TEXT_TOKENS = 4  # tokens of the learned prompt of one digit
TEXT_DIM = 64  # joint_attention_dim: width of a prompt token
POOLED_DIM = 64  # pooled_projection_dim: width of the pooled prompt vector


class DigitsPromptEncoder(ModelMixin, ConfigMixin):
    """The "text encoder" of digits-flux: a learned prompt per digit, in T5's and CLIP's roles.

    Row `num_classes` is the null prompt (unconditional branch of classifier-free guidance). Saved
    and loaded like any diffusers model (`save_pretrained` / `from_pretrained`, safetensors).
    """

    @register_to_config
    def __init__(self, num_classes: int = NUM_CLASSES, num_tokens: int = TEXT_TOKENS,
                 token_dim: int = TEXT_DIM, pooled_dim: int = POOLED_DIM) -> None:
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(num_classes + 1, num_tokens, token_dim))
        self.pooled = nn.Parameter(torch.randn(num_classes + 1, pooled_dim))

    @property
    def null_label(self) -> int:
        return int(self.config.num_classes)

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt_embeds (N, num_tokens, token_dim), pooled_prompt_embeds (N, pooled_dim))."""
        return self.tokens[labels], self.pooled[labels]


def build_flux() -> nn.Module:
    """FluxTransformer2DModel: 2 dual-stream + 6 single-stream blocks of 4 heads × 16 channels.

    The rotary axes (4, 6, 6) split each head's 16 channels as FLUX's (16, 56, 56) split its 128:
    a small first axis (unused index, always 0) and equal row and column axes.
    """
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,  # one 2×2 patch of the grey image per token
        num_layers=2,
        num_single_layers=6,
        attention_head_dim=16,
        num_attention_heads=4,
        joint_attention_dim=TEXT_DIM,
        pooled_projection_dim=POOLED_DIM,
        guidance_embeds=False,  # real classifier-free guidance, not a distilled guidance input
        axes_dims_rope=(4, 6, 6),
    )


def build_scheduler() -> object:
    """Flow-matching Euler with a fixed shift of 1 (the image is tiny: no resolution shift)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0,
                                           use_dynamic_shifting=False)


class FluxDigits(nn.Module):
    """The two trained parts together, so training, EMA and saving see one module."""

    def __init__(self, transformer: nn.Module | None = None,
                 text_encoder: DigitsPromptEncoder | None = None) -> None:
        super().__init__()
        self.transformer = transformer if transformer is not None else build_flux()
        self.text_encoder = text_encoder if text_encoder is not None else DigitsPromptEncoder()

    def velocity(self, packed: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor,
                 img_ids: torch.Tensor) -> torch.Tensor:
        """The transformer's prediction (velocity noise - x0) at noise level `sigma` in [0, 1]."""
        prompt, pooled = self.text_encoder(labels)
        return self.transformer(hidden_states=packed, encoder_hidden_states=prompt,
                                pooled_projections=pooled, timestep=sigma, img_ids=img_ids,
                                txt_ids=text_ids(prompt.shape[1], packed), return_dict=False)[0]


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) to FLUX's packed tokens (N, H/2 · W/2, 4C), as FluxPipeline._pack_latents."""
    n, c, h, w = latents.shape
    patches = latents.view(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(n, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Packed tokens back to (N, C, H, W), as FluxPipeline._unpack_latents with no VAE."""
    n, _, channels = tokens.shape
    grid = tokens.view(n, height // 2, width // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(n, channels // 4, height, width)


def image_ids(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Rotary ids (0, row, col) of the packed grid, as FluxPipeline._prepare_latent_image_ids."""
    rows, cols = torch.meshgrid(torch.arange(height // 2), torch.arange(width // 2), indexing="ij")
    ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(-1, 3)
    return ids.to(device=like.device, dtype=like.dtype)


def text_ids(num_tokens: int, like: torch.Tensor) -> torch.Tensor:
    """Rotary ids of the prompt tokens: all zero, as FLUX's."""
    return torch.zeros(num_tokens, 3, device=like.device, dtype=like.dtype)


def flow_matching_loss(model: FluxDigits, x0: torch.Tensor, labels: torch.Tensor,
                       gen: torch.Generator) -> torch.Tensor:
    """Rectified-flow loss: x_σ = (1 - σ) x0 + σ ε, target ε - x0, σ logit-normal (SD3, FLUX)."""
    noise = torch.randn(x0.shape, generator=gen)
    sigma = torch.sigmoid(torch.randn(x0.shape[0], generator=gen))
    s = sigma.view(-1, 1, 1, 1)
    packed = pack((1.0 - s) * x0 + s * noise)
    pred = model.velocity(packed, sigma, labels, image_ids(IMAGE_SIZE, IMAGE_SIZE, packed))
    return nn.functional.mse_loss(pred, pack(noise - x0))
