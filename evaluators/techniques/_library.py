"""What the five diffusers-cache plan sections share: JSON checks, the refusal for families the cache
does not fit, the installer's name. Torch-free at import; each section's installer imports the
runtime (torch, diffusers) when a plan is applied.

A section holds only the knobs a search moves; `library_default(num_steps)` gives the values
diffusers ships and `sweep(num_steps)` the small sweeps their READMEs show (the "library default"
baseline on the front). Timestep ranges are on the 0..1000 scale diffusers' docs use, whatever
scale the denoiser receives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from evaluators import fields
from evaluators.fields import PlanError
from evaluators.techniques.base import Technique

# Families whose transformer blocks diffusers' block registry knows (the block-level caches need
# it), with the scale their forward receives timesteps on (FLUX and Qwen-Image get t / 1000).
CACHE_FAMILIES: dict[str, float] = {
    "FluxTransformer2DModel": 1000.0,
    "QwenImageTransformer2DModel": 1000.0,
    "WanTransformer3DModel": 1.0,
    "SD3Transformer2DModel": 1.0,
}
GUIDANCE_DISTILLED = frozenset({"FluxTransformer2DModel"})


def fail(where: str, problem: str, fix: str) -> PlanError:
    return PlanError(f"plan.{where}: {problem}; {fix}")


def check_object(data: Any, where: str, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise fail(where, f"expected a JSON object, got {type(data).__name__}",
                   "see docs/PLANS.md")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise fail(where, f"unknown field(s) {', '.join(map(repr, unknown))}",
                   f"allowed fields are {', '.join(sorted(allowed))}")
    return data


def number(data: Mapping[str, Any], key: str, where: str, default: float, lo: float,
           hi: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"{where}.{key}", f"expected a number, got {value!r}", "write a finite number")
    if not lo <= value <= hi:
        raise fail(f"{where}.{key}", f"{value} is out of range", f"use a value in [{lo}, {hi}]")
    return float(value)


def integer(data: Mapping[str, Any], key: str, where: str, default: int | None, lo: int,
            hi: int | None = None, optional: bool = False) -> int | None:
    """`fields.integer` with a default for a missing key (None allowed when `optional`)."""
    value = data.get(key, default)
    if value is None and optional:
        return None
    return fields.integer({key: value}, key, where, lo, hi)


def timestep_range(data: Mapping[str, Any], key: str, where: str,
                   default: tuple[int, int]) -> tuple[int, int]:
    value = data.get(key, list(default))
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
        raise fail(f"{where}.{key}", f"expected [low, high] timesteps, got {value!r}",
                   "write two whole numbers on the 0..1000 scale, e.g. [100, 800]")
    lo, hi = value
    if not -1 <= lo < hi <= 1001:
        raise fail(f"{where}.{key}", f"[{lo}, {hi}] is not a range inside -1..1001",
                   "write low < high")
    return (lo, hi)


# The cells of a cache's block x step map (the dashboard's technique map of kind `blocks`).
BLOCK_LEGEND = ("compute", "cached", "forecast", "broadcast", "run-time")


def even_timesteps(num_steps: int) -> list[float]:
    """Step i's timestep on the 0..1000 scale if the steps were evenly spaced: the dashboard's
    guess for the caches whose ranges are in timesteps (the scheduler places the real ones)."""
    return [1000.0 * (num_steps - i) / num_steps for i in range(num_steps)]


def every_nth(num_steps: int, skip: int, window: tuple[int, int], reused: str) -> list[str]:
    """Diffusers' broadcast rule (PAB, FasterCache): inside the timestep window, compute on every
    `skip`-th call (the first always) and reuse on the others; outside it, always compute."""
    low, high = window
    return ["compute" if i == 0 or not low < t < high or i % skip == 0 else reused
            for i, t in enumerate(even_timesteps(num_steps))]


@dataclass(frozen=True)
class LibrarySection(Technique):
    """Base of the diffusers-cache sections (frozen dataclasses of JSON-typed knobs).

    Class attributes as for every technique: `section` (the plan key, diffusers' module name),
    `title`, `order`, `installer` (one for all five: a plan holds at most one of them) and `view`.
    """

    section: ClassVar[str] = ""
    title: ClassVar[str] = ""
    order: ClassVar[int] = 40
    installer: ClassVar[str] = "evaluators.runtime.library_cache:install_library_cache"
    view: ClassVar[str] = "blocks"
    families: ClassVar[frozenset[str]] = frozenset(CACHE_FAMILIES)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if v is not None}

    def library_kwargs(self, model_class: str, num_steps: int,
                       timestep: Any) -> dict[str, Any]:  # pragma: no cover - abstract
        """Keyword arguments of the diffusers config (`timestep`: the current-timestep callback)."""
        raise NotImplementedError

    # True where the cache decides at run time which blocks run (its cost needs a real run).
    input_dependent: ClassVar[bool] = False

    def check_with(self, sections: Any) -> None:
        others = [n for n, s in sections.items()
                  if n != self.section and isinstance(s, LibrarySection)]
        if others:
            raise PlanError(f"plan: {self.section} and {others[0]} in one plan; diffusers runs "
                            "one cache at a time on a model, keep one of them")

    def check_model(self, model_class: str) -> None:
        """Refuse, in one line, a family this cache does not run on."""
        if model_class not in self.families:
            raise PlanError(f"plan.{self.section}: diffusers' {self.title} does not run on "
                            f"{model_class}; it runs on {', '.join(sorted(self.families))}")

    def block_rows(self, num_steps: int) -> list[tuple[str, list[str]]]:
        """(part of the block stack, what it does at each step: a `BLOCK_LEGEND` cell)."""
        return [("blocks", ["compute"] * num_steps)]

    def timeline(self, num_steps: int) -> dict[str, Any]:
        rows = self.block_rows(num_steps)
        return {self.section: self.to_dict(), "labels": [label for label, _ in rows],
                "rows": [row for _, row in rows]}
