"""DiTFastAttn on diffusion transformers: one attention method per (self-attention layer, step).

Installed as an attention processor on every transformer block's self-attention (`attn1`):

- `full`: the model's own processor (bit-identical to the unmodified model). At a full step that
  is followed by a `wars` step before the next full step, the window attention is computed too and
  the residual R = O_full - O_win (heads layout, before the output projection) is cached.
- `wars`: window attention only, plus the cached residual.
- `ast`: the layer's whole output (after the output projection) of the most recent step that
  computed it; no projection runs.
- `asc`, `full+asc`, `wars+asc`: the batch holds two CFG halves; the attention module runs on the
  conditional half and its output is copied to both, as the reference does. Which half is the
  conditional one is a fact of the model family (`cond_first`): DiT batches (cond, uncond), PixArt
  (uncond, cond).

Calibration mode (`AttentionRuntime.calibrating`, used by the greedy search in `search/greedy.py`):
every real forward caches the residual of every full-attention layer and the output of every layer
that computes attention, whatever the later steps hold, because the methods of later steps are not
decided yet. Frozen (trial) forwards write nothing.

The window attention computes only the band: queries are cut into blocks and each block attends
just the keys its window can reach (`window_attention`), so its cost is about
(block + left + right) / N of full attention.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from evaluators.plan import (
    FULL_METHODS,
    SHARES_CFG,
    WINDOW_METHODS,
    Plan,
    PlanError,
    output_needed,
    residual_needed,
)
from evaluators.runtime.clock import RunState
from evaluators.runtime.hooks import Installation


def cond_first(model: torch.nn.Module) -> bool:
    """Whether the model family's pipeline puts the conditional CFG half first in the batch (the
    family's `cfg_order_of`, `evaluators/families/`): DiT (cond, uncond), PixArt (uncond, cond)."""
    from evaluators.families import family_of

    return family_of(model).cfg_order_of(model) == "cond-first"


def query_block_size(num_tokens: int) -> int:
    """Queries per block of the window attention (measured on CPU: 32 is best up to ~1k tokens)."""
    return 32 if num_tokens <= 1024 else 64


@lru_cache(maxsize=64)
def _band_mask(start: int, stop: int, lo: int, hi: int, left: int, right: int,
               device: torch.device) -> torch.Tensor:
    q = torch.arange(start, stop, device=device).view(-1, 1)
    k = torch.arange(lo, hi, device=device).view(1, -1)
    return (k >= q - left) & (k <= q + right)


def window_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     left: int, right: int, block: int | None = None) -> torch.Tensor:
    """Attention where query i sees keys i - left .. i + right only; inputs are (B, H, N, D).

    Each block of `block` queries runs scaled-dot-product attention against the slice of keys its
    window reaches (at most block + left + right), with the band as a boolean mask.
    """
    n = query.shape[-2]
    if left >= n - 1 and right >= n - 1:
        return F.scaled_dot_product_attention(query, key, value)
    block = block or query_block_size(n)
    outs = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        lo, hi = max(0, start - left), min(n, stop + right)
        mask = _band_mask(start, stop, lo, hi, left, right, query.device)
        outs.append(F.scaled_dot_product_attention(
            query[..., start:stop, :], key[..., lo:hi, :], value[..., lo:hi, :], attn_mask=mask))
    return torch.cat(outs, dim=-2)


class LayerCache:
    """What one layer keeps between steps."""

    def __init__(self) -> None:
        self.residual: torch.Tensor | None = None
        self.output: torch.Tensor | None = None


class FastAttnProcessor:
    """The attention processor of one self-attention layer under a DiTFastAttn plan."""

    def __init__(self, layer: int, runtime: AttentionRuntime, original: Any) -> None:
        self.layer = layer
        self.runtime = runtime
        self.original = original
        self.cache = LayerCache()

    def __call__(self, attn: torch.nn.Module, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        rt = self.runtime
        step = rt.state.step
        method = rt.method(self.layer, step)
        write = not rt.state.frozen
        if method == "ast":
            if self.cache.output is None:
                raise PlanError(f"layer {self.layer} step {step}: 'ast' with no earlier output to "
                                "reuse; step 0 of a generation must be full")
            return self.cache.output
        need_residual = rt.needs_residual(self.layer, step)
        if method == "full" and not (need_residual and write):  # a trial stores no residual
            out = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb,
                                *args, **kwargs)
        else:
            if attention_mask is not None and (method in WINDOW_METHODS or need_residual):
                raise PlanError("window attention with an attention mask on self-attention is not "
                                "supported; use full/ast/asc for this model")
            out = self._compute(attn, hidden_states, attention_mask, method, need_residual and write)
        if write and rt.needs_output(self.layer, step):
            self.cache.output = out
        return out

    def _compute(self, attn: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None,
                 method: str, store_residual: bool) -> torch.Tensor:
        rt = self.runtime
        share = method in SHARES_CFG
        rows = slice(None)  # the batch rows computed: all, or the conditional CFG half
        if share:
            if x.shape[0] % 2:
                raise PlanError(f"'{method}' needs the two CFG halves in one batch, got batch "
                                f"{x.shape[0]}; run with guidance_scale > 1")
            half = x.shape[0] // 2
            rows = slice(0, half) if rt.cond_first else slice(half, None)
            x = x[rows]
            mask = None if mask is None else mask[rows]
        b, n, _ = x.shape
        if mask is not None:
            mask = attn.prepare_attention_mask(mask, n, b).view(b, attn.heads, -1, mask.shape[-1])
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        head_dim = k.shape[-1] // attn.heads
        q, k, v = (t.view(b, -1, attn.heads, head_dim).transpose(1, 2) for t in (q, k, v))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if method in FULL_METHODS:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            if store_residual:
                r = o - window_attention(q, k, v, rt.left, rt.right)
                self.cache.residual = torch.cat([r, r]) if share else r
        else:  # wars, wars+asc: O_win + R (R from the last full step; the cond half if sharing)
            if self.cache.residual is None:
                raise PlanError(f"layer {self.layer}: 'wars' with no residual; the plan needs a full "
                                "step before it")
            o = window_attention(q, k, v, rt.left, rt.right) + self.cache.residual[rows]
        o = o.transpose(1, 2).reshape(b, -1, attn.heads * head_dim).to(q.dtype)
        o = attn.to_out[1](attn.to_out[0](o))
        return torch.cat([o, o]) if share else o


class AttentionRuntime:
    """The per-step methods of one applied attention plan."""

    def __init__(self, plan: Plan, state: RunState, cond_first: bool = True) -> None:
        assert plan.attention is not None
        self.state = state
        self.cond_first = cond_first  # the CFG order of the model family (see `cond_first`)
        self.left = plan.attention.window_left
        self.right = plan.attention.window_right
        # Mutable copy, so a calibration (the greedy search) can try methods in place.
        self.methods = [list(row) for row in plan.attention.methods]
        # Calibration mode: cache every residual and output, since later steps are not decided yet.
        self.calibrating = False
        self.processors: list[FastAttnProcessor] = []
        state.subscribe(on_reset=self._on_reset)

    def method(self, layer: int, step: int) -> str:
        return self.methods[layer][step]

    def needs_residual(self, layer: int, step: int) -> bool:
        if self.calibrating:
            return self.methods[layer][step] in FULL_METHODS
        return residual_needed(self.methods[layer], step)

    def needs_output(self, layer: int, step: int) -> bool:
        if self.calibrating:
            return self.methods[layer][step] != "ast"
        return output_needed(self.methods[layer], step)

    def _on_reset(self) -> None:
        for p in self.processors:
            p.cache = LayerCache()


def self_attention_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The self-attention module (`attn1`) of every transformer block, in order."""
    blocks = getattr(model, "transformer_blocks", None)
    if blocks is None:
        raise PlanError(f"{type(model).__name__} has no transformer_blocks: not a supported DiT")
    if type(model).__name__ == "Transformer2DModel" and not getattr(model, "is_input_patches", False):
        raise PlanError("this Transformer2DModel takes continuous or vectorized input, not "
                        "patches: DiTFastAttn plans support patch-based DiTs only")
    layers = []
    for i, block in enumerate(blocks):
        attn = getattr(block, "attn1", None)
        if attn is None or getattr(attn, "is_cross_attention", False):
            raise PlanError(f"transformer block {i} has no self-attention 'attn1'")
        if attn.residual_connection or attn.rescale_output_factor != 1.0 or \
                attn.group_norm is not None or attn.spatial_norm is not None:
            raise PlanError(f"transformer block {i}'s attention uses a residual, rescale or norm "
                            "that DiTFastAttn plans do not support")
        layers.append(attn)
    return layers


def attention_runtime(model: torch.nn.Module) -> AttentionRuntime | None:
    """The runtime of the attention plan applied to `model`, or None when there is none."""
    try:
        layers = self_attention_layers(model)
    except PlanError:
        return None
    for attn in layers:
        if isinstance(attn.processor, FastAttnProcessor):
            return attn.processor.runtime
    return None


def install_attention_plan(model: torch.nn.Module, plan: Plan, state: RunState,
                           installation: Installation) -> AttentionRuntime:
    """The `attention` section's installer (`evaluators.techniques.attention`)."""
    assert plan.attention is not None
    layers = self_attention_layers(model)
    if plan.attention.num_layers != len(layers):
        raise PlanError(f"plan.attention.methods: {plan.attention.num_layers} layers but the model "
                        f"has {len(layers)} self-attention layers; give one row per layer")
    runtime = AttentionRuntime(plan, state, cond_first(model))
    for i, attn in enumerate(layers):
        processor = FastAttnProcessor(i, runtime, attn.processor)
        runtime.processors.append(processor)
        installation.set_processor(attn, processor)
    return runtime
