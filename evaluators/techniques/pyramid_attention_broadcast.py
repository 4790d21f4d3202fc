"""Pyramid Attention Broadcast (Zhao et al. 2024; diffusers `PyramidAttentionBroadcastConfig`)
as a plan section.

Inside the timestep range an attention layer computes once every `*_block_skip_range` calls and
broadcasts its cached output in between; outside the range it always computes. Spatial
self-attention and (where the model has it) cross-attention get their own ranges. Step- and
timestep-deterministic: counted on `meta`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluators.techniques._library import (
    LibrarySection,
    check_object,
    every_nth,
    integer,
    timestep_range,
)
from evaluators.techniques.base import register

_FIELDS = ("spatial_attention_block_skip_range", "spatial_attention_timestep_skip_range",
           "cross_attention_block_skip_range", "cross_attention_timestep_skip_range")


@register
@dataclass(frozen=True)
class PyramidAttentionBroadcast(LibrarySection):
    """Attributes:
        spatial_attention_block_skip_range: self-attention computes every N calls in range.
        spatial_attention_timestep_skip_range: (low, high) timesteps where it may broadcast.
        cross_attention_block_skip_range: the same for cross-attention (None: always computes).
        cross_attention_timestep_skip_range: its timestep range.
    """

    section: ClassVar[str] = "pyramid_attention_broadcast"
    title: ClassVar[str] = "Pyramid Attention Broadcast"
    spatial_attention_block_skip_range: int = 2
    spatial_attention_timestep_skip_range: tuple[int, int] = (100, 800)
    cross_attention_block_skip_range: int | None = None
    cross_attention_timestep_skip_range: tuple[int, int] = (100, 800)

    @classmethod
    def parse(cls, data: Any, sampling: Any) -> PyramidAttentionBroadcast:
        s = cls.section
        d = check_object(data, s, _FIELDS)
        return cls(integer(d, "spatial_attention_block_skip_range", s, 2, 1, 100),
                   timestep_range(d, "spatial_attention_timestep_skip_range", s, (100, 800)),
                   integer(d, "cross_attention_block_skip_range", s, None, 1, 100,
                           optional=True),
                   timestep_range(d, "cross_attention_timestep_skip_range", s, (100, 800)))

    @classmethod
    def library_default(cls, num_steps: int) -> PyramidAttentionBroadcast:
        return cls()

    @classmethod
    def sweep(cls, num_steps: int) -> list[PyramidAttentionBroadcast]:
        return [cls(n) for n in (2, 3, 4)]

    def library_kwargs(self, model_class: str, num_steps: int, timestep: Any) -> dict[str, Any]:
        return {"spatial_attention_block_skip_range": self.spatial_attention_block_skip_range,
                "spatial_attention_timestep_skip_range":
                    self.spatial_attention_timestep_skip_range,
                "cross_attention_block_skip_range": self.cross_attention_block_skip_range,
                "cross_attention_timestep_skip_range": self.cross_attention_timestep_skip_range,
                "current_timestep_callback": timestep}

    def summary(self) -> dict[str, str]:
        lo, hi = self.spatial_attention_timestep_skip_range
        return {self.section: (f"pyramid attention broadcast, self-attention every "
                f"{self.spatial_attention_block_skip_range} in t {lo}..{hi}")}

    def block_rows(self, num_steps: int) -> list[tuple[str, list[str]]]:
        cross = self.cross_attention_block_skip_range
        return [("self-attention", every_nth(num_steps, self.spatial_attention_block_skip_range,
                                             self.spatial_attention_timestep_skip_range,
                                             "broadcast")),
                ("cross-attention", ["compute"] * num_steps if cross is None else every_nth(
                    num_steps, cross, self.cross_attention_timestep_skip_range, "broadcast"))]

    @classmethod
    def suggest(cls, trial: Any, num_steps: int) -> PyramidAttentionBroadcast:
        lo = trial.suggest_int("pab_t_low", 0, 500, step=50)
        hi = trial.suggest_int("pab_t_high", 550, 1000, step=50)
        return cls(trial.suggest_int("pab_skip", 2, 6), (lo, hi))
