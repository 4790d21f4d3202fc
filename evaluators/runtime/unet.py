"""DeepCache and depth-skip on diffusers U-Nets (`UNet2DModel`, `UNet2DConditionModel`).

Skip branches are numbered as DeepCache does: entry m of diffusers' `down_block_res_samples`
(0 = conv_in's output, then every down resnet layer and every downsampler); the up layer that
consumes skip m is the (N - 1 - m)-th up layer in execution order. A "deep" module is one that
produces or consumes a skip deeper than a boundary skip, or the mid block:

- DeepCache (branch m): deep modules run at full steps and cache their outputs; at partial steps
  they return the cache, so only conv_in, the down layers up to skip m, and the up layers from the
  consumer of skip m on really run (the consumer is fed by the cached output of the layer before).
- Depth-skip (last kept skip d): deep modules never run; they return zero placeholders of their
  output shape (expanded, so they cost no memory), and the layer before the consumer of skip d
  thus feeds it zeros in place of the deep path, as in Kim et al.'s released code.

Where every layer of a block is deep, the whole block is hooked, so its Python loop is skipped too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from diffusers.hooks import ModelHook

from evaluators.plan import Plan, PlanError
from evaluators.runtime.clock import RunState
from evaluators.runtime.hooks import Installation

HOOK_NAME = "edgediff.unet"

_DOWN_BLOCKS = {"DownBlock2D", "AttnDownBlock2D", "CrossAttnDownBlock2D"}
_UP_BLOCKS = {"UpBlock2D", "AttnUpBlock2D", "CrossAttnUpBlock2D"}
_MID_BLOCKS = {"UNetMidBlock2D", "UNetMidBlock2DCrossAttn"}

Mode = Literal["cache", "drop"]


@dataclass(frozen=True)
class Skip:
    """One entry of `down_block_res_samples`: who produces it, its channels and resolution level."""

    index: int
    block: int | None  # down block, None for conv_in
    layer: int  # resnet index, or len(resnets) for the downsampler
    channels: int
    level: int  # number of downsamplings applied (0 = input resolution)


@dataclass(frozen=True)
class UpLayer:
    """One up resnet layer (resnet + its attention) and the skip it consumes."""

    block: int
    layer: int
    skip: int


@dataclass(frozen=True)
class UNetLayout:
    skips: tuple[Skip, ...]
    up_layers: tuple[UpLayer, ...]
    max_level: int

    @property
    def num_branches(self) -> int:
        return len(self.skips)

    def last_skip_at_level(self, level: int) -> int:
        return max(s.index for s in self.skips if s.level <= level)

    def depth_for(self, drop_levels: int) -> int:
        """The last kept skip d when the `drop_levels` deepest levels are dropped."""
        return self.last_skip_at_level(self.max_level - drop_levels)


def unet_layout(unet: torch.nn.Module) -> UNetLayout:
    """The skip numbering of a diffusers U-Net; raises PlanError for block types it cannot handle."""
    for kind, blocks, allowed in (("down", unet.down_blocks, _DOWN_BLOCKS),
                                  ("up", unet.up_blocks, _UP_BLOCKS)):
        for i, block in enumerate(blocks):
            if type(block).__name__ not in allowed:
                raise PlanError(f"{kind} block {i} is a {type(block).__name__}: edgediff's U-Net "
                                f"techniques support {', '.join(sorted(allowed))}")
    if unet.mid_block is not None and type(unet.mid_block).__name__ not in _MID_BLOCKS:
        raise PlanError(f"mid block {type(unet.mid_block).__name__} is not supported")
    skips = [Skip(0, None, 0, unet.conv_in.out_channels, 0)]
    level = 0
    for i, block in enumerate(unet.down_blocks):
        for j, resnet in enumerate(block.resnets):
            skips.append(Skip(len(skips), i, j, resnet.out_channels, level))
        if block.downsamplers:
            level += 1
            out = getattr(block.downsamplers[0], "out_channels", block.resnets[-1].out_channels)
            skips.append(Skip(len(skips), i, len(block.resnets), out, level))
    up_layers, consumed = [], len(skips) - 1
    for b, block in enumerate(unet.up_blocks):
        for j in range(len(block.resnets)):
            up_layers.append(UpLayer(b, j, consumed))
            consumed -= 1
    if consumed != -1:
        raise PlanError(f"the U-Net's up blocks consume {len(up_layers)} skips but its down blocks "
                        f"produce {len(skips)}: not a standard diffusers U-Net")
    return UNetLayout(tuple(skips), tuple(up_layers), level)


class DeepModuleHook(ModelHook):
    """Replaces a deep module's forward: cached output at partial steps, or a zero placeholder."""

    def __init__(self, runtime: UNetRuntime, mode: Mode, shape: Any) -> None:
        super().__init__()
        self.runtime = runtime
        self.mode = mode
        self.shape = shape  # nested tuple of (channels, level) describing the output
        self.cached: Any = None

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        rt = self.runtime
        if self.mode == "drop":
            return rt.placeholder(self.shape, args, kwargs)
        if rt.partial:
            if self.cached is None:
                raise PlanError("DeepCache reached a partial step before any full step; "
                                "step 0 of a generation must be full")
            return self.cached
        out = self.fn_ref.original_forward(*args, **kwargs)
        if rt.store:
            self.cached = out
        return out


class UNetRuntime:
    """DeepCache and depth-skip state for one applied plan."""

    def __init__(self, unet: torch.nn.Module, plan: Plan, state: RunState) -> None:
        self.layout = unet_layout(unet)
        self.state = state
        self.partial = False
        self.store = False
        self._hooks: list[DeepModuleHook] = []
        self._anchor: tuple[int, int, int, torch.dtype, torch.device] | None = None
        self.depth: int | None = None
        self.branch: int | None = None
        n = self.layout.num_branches
        if plan.depth_skip is not None:
            drop = plan.depth_skip.drop_levels
            if drop > self.layout.max_level:
                raise PlanError(f"plan.depth_skip.drop_levels: {drop} but this U-Net has "
                                f"{self.layout.max_level} levels below the input; "
                                f"use 1..{self.layout.max_level}")
            self.depth = self.layout.depth_for(drop)
        self.full_steps: frozenset[int] = frozenset(range(plan.num_steps))
        if plan.deepcache is not None:
            dc = plan.deepcache
            limit = n - 1 if self.depth is None else self.depth - 1
            if not 0 <= dc.branch <= limit:
                why = "" if self.depth is None else f" (below the depth-skip's last kept skip {self.depth})"
                raise PlanError(f"plan.deepcache.branch: {dc.branch} is out of range for this U-Net"
                                f"{why}; use 0..{limit}")
            self.branch = dc.branch
            self.full_steps = frozenset(dc.full_step_indices(plan.num_steps))
        state.subscribe(on_step=self._on_step, on_reset=self._on_reset)

    # --- the step schedule ------------------------------------------------------------------
    def _on_step(self, step: int) -> None:
        full = step in self.full_steps
        self.partial = not full
        nxt = step + 1
        self.store = full and not self.state.frozen and nxt < self.state.num_steps \
            and nxt not in self.full_steps

    def _on_reset(self) -> None:
        for hook in self._hooks:
            hook.cached = None
        self._anchor = None

    # --- placeholders -----------------------------------------------------------------------
    def placeholder(self, shape: Any, args: tuple, kwargs: dict) -> Any:
        if self._anchor is None:  # the first dropped module's input is skip d itself
            x = args[0] if args else kwargs.get("hidden_states", kwargs.get("input_tensor"))
            b, _, h, w = x.shape
            self._anchor = (b, h, w, x.dtype, x.device)
        return self._zeros(shape)

    def _zeros(self, shape: Any) -> Any:
        if isinstance(shape, list) or isinstance(shape[0], tuple):  # a block: (hidden, [skips])
            return tuple(self._zeros(s) for s in shape)
        channels, level = shape
        b, h, w, dtype, device = self._anchor  # type: ignore[misc]
        for _ in range(level - self._anchor_level):
            h, w = -(-h // 2), -(-w // 2)
        return torch.zeros((), dtype=dtype, device=device).expand(b, channels, h, w)

    @property
    def _anchor_level(self) -> int:
        return self.layout.skips[self.depth].level  # type: ignore[index]

    # --- installation -----------------------------------------------------------------------
    def install(self, unet: torch.nn.Module, installation: Installation) -> None:
        def mode_of(skip: int) -> Mode | None:
            if self.depth is not None and skip > self.depth:
                return "drop"
            if self.branch is not None and skip > self.branch:
                return "cache"
            return None

        def hook(module: torch.nn.Module, mode: Mode, shape: Any) -> None:
            h = DeepModuleHook(self, mode, shape)
            self._hooks.append(h)
            installation.add_hook(module, h, HOOK_NAME)

        skips = self.layout.skips
        for i, block in enumerate(unet.down_blocks):
            mine = [s for s in skips if s.block == i]
            modes = [mode_of(s.index) for s in mine]
            if all(m is not None for m in modes) and len(set(modes)) == 1:
                last = mine[-1]
                hook(block, modes[0], ((last.channels, last.level),
                                       [(s.channels, s.level) for s in mine]))
                continue
            for s, mode in zip(mine, modes, strict=True):
                if mode is None:
                    continue
                if s.layer == len(block.resnets):
                    for ds in block.downsamplers:
                        hook(ds, mode, (s.channels, s.level))
                else:
                    hook(block.resnets[s.layer], mode, (s.channels, s.level))
                    if getattr(block, "attentions", None):
                        self._hook_attention(block.attentions[s.layer], mode, hook)
        deepest = skips[-1]
        if unet.mid_block is not None:
            mode: Mode = "drop" if self.depth is not None else "cache"
            hook(unet.mid_block, mode, (unet.mid_block.resnets[-1].out_channels, deepest.level))
        for b, block in enumerate(unet.up_blocks):
            mine_up = [u for u in self.layout.up_layers if u.block == b]
            modes = [mode_of(u.skip) for u in mine_up]
            out_level = skips[mine_up[-1].skip].level - (1 if block.upsamplers else 0)
            if all(m is not None for m in modes) and len(set(modes)) == 1:
                hook(block, modes[0], (block.resnets[-1].out_channels, out_level))
                continue
            if "drop" in modes:
                raise PlanError("depth-skip needs the up blocks to align with resolution levels; "
                                "this U-Net's do not")
            for u, mode in zip(mine_up, modes, strict=True):
                if mode is None:
                    continue
                level = skips[u.skip].level
                hook(block.resnets[u.layer], mode, (block.resnets[u.layer].out_channels, level))
                if getattr(block, "attentions", None):
                    self._hook_attention(block.attentions[u.layer], mode, hook)

    @staticmethod
    def _hook_attention(attention: torch.nn.Module, mode: Mode, hook: Any) -> None:
        if mode == "drop":  # never reached for level-aligned drops (see UNetLayout.depth_for)
            raise PlanError("depth-skip can only drop whole resolution levels")
        hook(attention, mode, None)


def install_unet_plan(unet: torch.nn.Module, plan: Plan, state: RunState,
                      installation: Installation) -> UNetRuntime:
    """The installer of both the `deepcache` and the `depth_skip` section: one hook per deep
    module, which either caches (DeepCache) or drops (depth-skip) it; runs once per plan."""
    runtime = UNetRuntime(unet, plan, state)
    if runtime.branch is not None or runtime.depth is not None:
        runtime.install(unet, installation)
    return runtime
