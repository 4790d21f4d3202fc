"""FirstBlockCache (ParaAttention; diffusers `FirstBlockCacheConfig`) as a plan section.

At every call the first transformer block runs; when its residual changed by less than
`threshold` (mean absolute change relative to the last computed one) the remaining blocks are
skipped and their cached residual is added instead. Input-dependent: which steps skip is decided
at run time, so its cost comes from the blocks that executed (`evaluators.executed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluators.techniques._library import CACHE_FAMILIES, LibrarySection, check_object, number
from evaluators.techniques.base import register

DEFAULT_THRESHOLD = 0.05
README_SWEEP = (0.05, 0.08, 0.12, 0.2)  # thresholds ParaAttention's README and issues compare


@register
@dataclass(frozen=True)
class FirstBlockCache(LibrarySection):
    """Attributes:
        threshold: relative change of the first block's residual below which the other blocks
            are skipped (0 never skips; larger skips more).
    """

    section: ClassVar[str] = "first_block_cache"
    title: ClassVar[str] = "FirstBlockCache"
    # SD3's last block returns no text stream, which diffusers' first-block cache needs.
    families: ClassVar[frozenset[str]] = frozenset(CACHE_FAMILIES) - {"SD3Transformer2DModel"}
    input_dependent: ClassVar[bool] = True
    threshold: float = DEFAULT_THRESHOLD

    @classmethod
    def parse(cls, data: Any, sampling: Any) -> FirstBlockCache:
        d = check_object(data, cls.section, ("threshold",))
        return cls(number(d, "threshold", cls.section, DEFAULT_THRESHOLD, 0.0, 10.0))

    @classmethod
    def library_default(cls, num_steps: int) -> FirstBlockCache:
        return cls()

    @classmethod
    def sweep(cls, num_steps: int) -> list[FirstBlockCache]:
        return [cls(t) for t in README_SWEEP]

    def library_kwargs(self, model_class: str, num_steps: int, timestep: Any) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def summary(self) -> dict[str, str]:
        return {self.section: f"first-block cache, threshold {self.threshold:g}"}

    def block_rows(self, num_steps: int) -> list[tuple[str, list[str]]]:
        # the first block always runs; whether the others do is decided by its residual
        return [("first block", ["compute"] * num_steps),
                ("other blocks", ["compute"] + ["run-time"] * (num_steps - 1))]

    @classmethod
    def suggest(cls, trial: Any, num_steps: int) -> FirstBlockCache:
        return cls(trial.suggest_float("fbc_threshold", 0.01, 0.4, log=True))
