"""FasterCache (Lv et al. 2024; diffusers `FasterCacheConfig`) as a plan section.

Inside its timestep range a spatial attention layer computes every
`spatial_attention_block_skip_range` calls; in between its output is extrapolated from the last
two computed ones (weight `attention_weight`). Where the pipeline batches both CFG halves, the
unconditional half is also skipped every `unconditional_batch_skip_range` calls inside its range
and rebuilt from the conditional one in frequency space (`alpha_*_frequency`). Guidance-distilled
models (FLUX.1-dev) and pipelines that call the halves separately get the attention part only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluators.techniques._library import (
    GUIDANCE_DISTILLED,
    LibrarySection,
    check_object,
    every_nth,
    integer,
    number,
    timestep_range,
)
from evaluators.techniques.base import register

BATCHED_CFG = {"SD3Transformer2DModel": "BCHW"}  # families whose halves travel in one call
BATCHED_EXTRA = {"SD3Transformer2DModel": ("pooled_projections",)}
_FIELDS = ("spatial_attention_block_skip_range", "spatial_attention_timestep_skip_range",
           "unconditional_batch_skip_range", "unconditional_batch_timestep_skip_range",
           "attention_weight", "alpha_low_frequency", "alpha_high_frequency")


@register
@dataclass(frozen=True)
class FasterCache(LibrarySection):
    """Attributes:
        spatial_attention_block_skip_range: attention computes every N calls in range.
        spatial_attention_timestep_skip_range: (low, high) timesteps where it may be skipped.
        unconditional_batch_skip_range: the unconditional half computes every N calls in range.
        unconditional_batch_timestep_skip_range: its timestep range.
        attention_weight: the extrapolation weight of a skipped attention output.
        alpha_low_frequency, alpha_high_frequency: scales of the rebuilt unconditional half.
    """

    section: ClassVar[str] = "faster_cache"
    title: ClassVar[str] = "FasterCache"
    spatial_attention_block_skip_range: int = 2
    spatial_attention_timestep_skip_range: tuple[int, int] = (-1, 681)
    unconditional_batch_skip_range: int = 5
    unconditional_batch_timestep_skip_range: tuple[int, int] = (-1, 641)
    attention_weight: float = 0.5
    alpha_low_frequency: float = 1.1
    alpha_high_frequency: float = 1.1

    @classmethod
    def parse(cls, data: Any, sampling: Any) -> FasterCache:
        s = cls.section
        d = check_object(data, s, _FIELDS)
        return cls(integer(d, "spatial_attention_block_skip_range", s, 2, 1, 100),
                   timestep_range(d, "spatial_attention_timestep_skip_range", s, (-1, 681)),
                   integer(d, "unconditional_batch_skip_range", s, 5, 1, 100),
                   timestep_range(d, "unconditional_batch_timestep_skip_range", s, (-1, 641)),
                   number(d, "attention_weight", s, 0.5, 0.0, 2.0),
                   number(d, "alpha_low_frequency", s, 1.1, 0.0, 4.0),
                   number(d, "alpha_high_frequency", s, 1.1, 0.0, 4.0))

    @classmethod
    def library_default(cls, num_steps: int) -> FasterCache:
        return cls()

    @classmethod
    def sweep(cls, num_steps: int) -> list[FasterCache]:
        return [cls(n) for n in (2, 3)]

    def library_kwargs(self, model_class: str, num_steps: int, timestep: Any) -> dict[str, Any]:
        from diffusers.hooks.faster_cache import _UNCOND_COND_INPUT_KWARGS_IDENTIFIERS

        weight = self.attention_weight
        # SD3 also takes the pooled text embedding per half; diffusers' default list of batched
        # inputs leaves it out, so the unconditional skip would broadcast it back to both halves.
        batched = [*_UNCOND_COND_INPUT_KWARGS_IDENTIFIERS, *BATCHED_EXTRA.get(model_class, ())]
        return {"_unconditional_conditional_input_kwargs_identifiers": batched,
                "spatial_attention_block_skip_range": self.spatial_attention_block_skip_range,
                "spatial_attention_timestep_skip_range":
                    self.spatial_attention_timestep_skip_range,
                "unconditional_batch_skip_range": self.unconditional_batch_skip_range,
                "unconditional_batch_timestep_skip_range":
                    self.unconditional_batch_timestep_skip_range,
                "attention_weight_callback": lambda _module: weight,
                "alpha_low_frequency": self.alpha_low_frequency,
                "alpha_high_frequency": self.alpha_high_frequency,
                "tensor_format": BATCHED_CFG.get(model_class, "BCHW"),
                "is_guidance_distilled": (model_class in GUIDANCE_DISTILLED
                                          or model_class not in BATCHED_CFG),
                "current_timestep_callback": timestep}

    def summary(self) -> dict[str, str]:
        return {self.section: (f"FasterCache, attention every {self.spatial_attention_block_skip_range}, "
                f"unconditional every {self.unconditional_batch_skip_range}")}

    def block_rows(self, num_steps: int) -> list[tuple[str, list[str]]]:
        # a skipped attention output is extrapolated from the last two computed ones
        return [("attention", every_nth(num_steps, self.spatial_attention_block_skip_range,
                                        self.spatial_attention_timestep_skip_range, "forecast")),
                ("other layers", ["compute"] * num_steps)]

    @classmethod
    def suggest(cls, trial: Any, num_steps: int) -> FasterCache:
        hi = trial.suggest_int("fastercache_t_high", 300, 1000, step=50)
        return cls(trial.suggest_int("fastercache_skip", 2, 5), (-1, hi),
                   trial.suggest_int("fastercache_uncond_skip", 1, 6), (-1, hi),
                   trial.suggest_float("fastercache_weight", 0.0, 1.0))
