"""TaylorSeer (Liu et al. 2025; diffusers `TaylorSeerCacheConfig`) as a plan section.

The attention modules of the transformer blocks compute fully during the first
`disable_cache_before_step` steps, then once every `cache_interval` steps; in between their
outputs are forecast by a Taylor series of order `max_order` built from divided differences of
the computed steps. From `disable_cache_after_step` on every step computes. Step-deterministic:
its cost is counted on `meta` like any fixed schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluators.techniques._library import LibrarySection, check_object, fail, integer
from evaluators.techniques.base import register

FACTOR_DTYPES = ("bfloat16", "float32")
# Wan's attention modules are `blocks.<i>.attn1` / `attn2`; diffusers' default patterns end in
# `attn`, so on Wan TaylorSeer is given them explicitly (the same modules, the same hooks).
WAN_ATTENTION = {"WanTransformer3DModel": (r"^blocks\.\d+\.attn1$", r"^blocks\.\d+\.attn2$")}
README_INTERVALS = (3, 4, 5, 6)  # the intervals TaylorSeer's README and paper tables compare


@register
@dataclass(frozen=True)
class TaylorSeerCache(LibrarySection):
    """Attributes:
        cache_interval: one computed step every `cache_interval` steps after the warm-up.
        disable_cache_before_step: warm-up steps that always compute (they build the series).
        disable_cache_after_step: steps from this one on always compute (None: never).
        max_order: order of the Taylor forecast (0 reuses the last output).
        factors_dtype: the dtype the Taylor factors are stored in (diffusers: bfloat16).
    """

    section: ClassVar[str] = "taylorseer_cache"
    title: ClassVar[str] = "TaylorSeer"
    cache_interval: int = 5
    disable_cache_before_step: int = 3
    disable_cache_after_step: int | None = None
    max_order: int = 1
    factors_dtype: str = "bfloat16"

    @classmethod
    def parse(cls, data: Any, sampling: Any) -> TaylorSeerCache:
        num_steps = sampling.num_inference_steps
        s = cls.section
        d = check_object(data, s, ("cache_interval", "disable_cache_before_step",
                                   "disable_cache_after_step", "max_order", "factors_dtype"))
        before = integer(d, "disable_cache_before_step", s, 3, 1, num_steps)
        after = integer(d, "disable_cache_after_step", s, None, 1, num_steps, optional=True)
        if after is not None and after <= before:
            raise fail(f"{s}.disable_cache_after_step", f"{after} is not after the warm-up "
                       f"({before} steps)", "use a later step or leave it out")
        dtype = d.get("factors_dtype", "bfloat16")
        if dtype not in FACTOR_DTYPES:
            raise fail(f"{s}.factors_dtype", f"unknown dtype {dtype!r}",
                       f"use one of {', '.join(FACTOR_DTYPES)}")
        return cls(integer(d, "cache_interval", s, 5, 1, 100), before, after,
                   integer(d, "max_order", s, 1, 0, 4), dtype)

    @classmethod
    def library_default(cls, num_steps: int) -> TaylorSeerCache:
        return cls(disable_cache_before_step=min(3, num_steps))

    @classmethod
    def sweep(cls, num_steps: int) -> list[TaylorSeerCache]:
        return [cls(n, min(3, num_steps)) for n in README_INTERVALS]

    def library_kwargs(self, model_class: str, num_steps: int, timestep: Any) -> dict[str, Any]:
        import torch

        kwargs: dict[str, Any] = {}
        if model_class in WAN_ATTENTION:  # diffusers' default patterns match no Wan module
            kwargs["cache_identifiers"] = list(WAN_ATTENTION[model_class])
        return {**kwargs, "cache_interval": self.cache_interval,
                "disable_cache_before_step": self.disable_cache_before_step,
                "disable_cache_after_step": self.disable_cache_after_step,
                "max_order": self.max_order,
                "taylor_factors_dtype": getattr(torch, self.factors_dtype)}

    def summary(self) -> dict[str, str]:
        after = "" if self.disable_cache_after_step is None else \
            f", full from step {self.disable_cache_after_step}"
        return {self.section: (f"TaylorSeer, interval {self.cache_interval}, order {self.max_order}, "
                f"warm-up {self.disable_cache_before_step}{after}")}

    def computes(self, step: int) -> bool:
        """diffusers' rule: the warm-up, every `cache_interval`-th step after it, the cool-down."""
        after = self.disable_cache_after_step
        return (step < self.disable_cache_before_step
                or (step - self.disable_cache_before_step - 1) % self.cache_interval == 0
                or (after is not None and step >= after))

    def block_rows(self, num_steps: int) -> list[tuple[str, list[str]]]:
        return [("attention", ["compute" if self.computes(i) else "forecast"
                               for i in range(num_steps)]),
                ("other layers", ["compute"] * num_steps)]

    @classmethod
    def suggest(cls, trial: Any, num_steps: int) -> TaylorSeerCache:
        before = trial.suggest_int("taylorseer_warmup", 1, max(1, min(8, num_steps // 2)))
        return cls(trial.suggest_int("taylorseer_interval", 2, 8), before, None,
                   trial.suggest_int("taylorseer_order", 0, 2))
