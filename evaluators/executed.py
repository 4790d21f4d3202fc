"""The cost of what executed: MACs of a generation under an input-dependent cache.

A threshold cache (FirstBlockCache) decides at run time which transformer blocks run, so a `meta`
run with random inputs cannot say what it costs. Instead:

1. `unit_macs` counts, once on `meta` at the generation's geometry and batch 1, the MACs of every
   transformer block and of every attention module inside one (the "units"), and the rest of one
   denoiser call (embedders, final norm and projection);
2. `ExecutionTrace` hooks every unit *below* any cache hook (it must be installed before the plan)
   and records how many samples each unit really processed during the real generation;
3. `ExecutionTrace.macs()` multiplies: sum over units of samples x per-sample MACs, plus the
   rest of each denoiser call. A block whose attention a cache replaced (TaylorSeer, PAB,
   FasterCache) is charged without that attention.

Also here: the VAE decode and text-encoder MACs of a deployed pipeline, reported beside the
denoiser's (text encoders run once per prompt, the decode once per image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.models.attention import AttentionModuleMixin
from diffusers.models.attention_processor import Attention
from torch.utils.flop_counter import FlopCounterMode

import evaluators.cost  # noqa: F401  (registers the CPU attention kernel's flop formula)
from evaluators.calls import Geometry, denoiser_call

COUNT_HOOK = "edgediff.count"
BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks", "blocks")


def units(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Transformer blocks and their attention modules, by qualified name, in call order."""
    out: dict[str, torch.nn.Module] = {}
    for list_name in BLOCK_LISTS:
        blocks = getattr(model, list_name, None)
        if not isinstance(blocks, torch.nn.ModuleList):
            continue
        for i, block in enumerate(blocks):
            name = f"{list_name}.{i}"
            out[name] = block
            for sub, module in block.named_modules():
                if sub and isinstance(module, (Attention, AttentionModuleMixin)):
                    out[f"{name}.{sub}"] = module
    return out


@dataclass
class UnitMacs:
    """Per-sample MACs of one denoiser call split into units.

    Attributes:
        call: MACs of one whole call (every unit computed).
        units: MACs of each unit (a block's count includes its attention modules).
    """

    call: int
    units: dict[str, int]

    @property
    def rest(self) -> int:
        """What runs outside the blocks on every call."""
        return self.call - sum(v for k, v in self.units.items() if _is_block(k))


def _is_block(name: str) -> bool:
    return name.count(".") == 1


_UNIT_MACS: dict[tuple[str, str, Geometry], UnitMacs] = {}


def unit_macs(model: torch.nn.Module, geometry: Geometry) -> UnitMacs:
    """Count one batch-1 call of a `meta` twin of `model` at `geometry`, unit by unit. The twin
    is built from the config alone, so the count is made once per (class, config, geometry) in a
    process: an evaluation's timed generation does not pay for it again."""
    key = (type(model).__name__, repr(sorted(dict(model.config).items())), geometry)
    if key not in _UNIT_MACS:
        _UNIT_MACS[key] = _count_units(model, geometry)
    return _UNIT_MACS[key]


def _count_units(model: torch.nn.Module, geometry: Geometry) -> UnitMacs:
    with torch.device("meta"):
        twin = type(model).from_config(model.config).eval()
    kwargs = denoiser_call(twin, 1, geometry, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        twin(**kwargs)
    counts = counter.get_flop_counts()
    prefix = type(twin).__name__
    per_unit = {name: sum(counts.get(f"{prefix}.{name}", {}).values()) // 2
                for name in units(twin)}
    return UnitMacs(sum(counts.get("Global", {}).values()) // 2, per_unit)


class _CountHook(ModelHook):
    def __init__(self, trace: ExecutionTrace, name: str) -> None:
        super().__init__()
        self.trace, self.name = trace, name

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        batch = _batch(args, kwargs)
        if self.name == "call":
            self.trace.calls.append({})
        for table in (self.trace.samples, *self.trace.calls[-1:]):
            table[self.name] = table.get(self.name, 0) + batch
        return args, kwargs


def _batch(args: Any, kwargs: Any) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.ndim >= 2:
            return int(value.shape[0])
    return 1


@dataclass
class ExecutionTrace:
    """Samples each unit and the denoiser processed; install before any plan, remove after."""

    model: torch.nn.Module
    samples: dict[str, int] = field(default_factory=dict)
    calls: list[dict[str, int]] = field(default_factory=list)  # the samples of each call
    _installed: list[tuple[torch.nn.Module, bool, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, module in {"": self.model, **units(self.model)}.items():
            had_registry = "_diffusers_hook" in module.__dict__
            had_forward = "forward" in module.__dict__
            HookRegistry.check_if_exists_or_initialize(module).register_hook(
                _CountHook(self, name or "call"), COUNT_HOOK)
            self._installed.append((module, had_registry, had_forward))

    def remove(self) -> None:
        for module, had_registry, had_forward in reversed(self._installed):
            registry = module._diffusers_hook
            registry.remove_hook(COUNT_HOOK, recurse=False)
            if not registry.hooks:
                if not had_registry:
                    del module._diffusers_hook
                if not had_forward:
                    module.__dict__.pop("forward", None)
        self._installed.clear()

    def __enter__(self) -> ExecutionTrace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def macs(self, per_sample: UnitMacs, samples: dict[str, int] | None = None) -> int:
        """MACs of what executed: each computed unit once per sample it processed."""
        samples = self.samples if samples is None else samples
        total = samples.get("call", 0) * per_sample.rest
        for name, macs in per_sample.units.items():
            done = samples.get(name, 0)
            if _is_block(name):
                inner = sum(v for k, v in per_sample.units.items() if k.startswith(name + "."))
                total += done * (macs - inner)
            else:
                total += done * macs
        return total

    def macs_per_call(self, per_sample: UnitMacs) -> list[int]:
        """MACs of each denoiser call, in order."""
        return [self.macs(per_sample, call) for call in self.calls]

    def blocks_run(self) -> dict[str, int]:
        """Samples each block processed (a block a cache skipped processed none)."""
        return {k: v for k, v in self.samples.items() if k != "call" and _is_block(k)}


# --- the rest of a deployed pipeline ------------------------------------------------------------

def vae_decode_macs(vae: torch.nn.Module, latent_shape: tuple[int, ...]) -> int:
    """MACs of decoding one latent of this shape (meta VAE; `(C, H, W)` or `(C, F, H, W)`)."""
    latent = torch.randn(1, *latent_shape, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        vae.decode(latent)
    return counter.get_total_flops() // 2


def text_encoder_macs(encoder: torch.nn.Module, tokens: int) -> int:
    """MACs of encoding one prompt of `tokens` tokens (meta text encoder)."""
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        encoder(input_ids=ids)
    return counter.get_total_flops() // 2
