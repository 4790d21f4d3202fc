"""MagCache (Ma et al. 2025; diffusers `MagCacheConfig`) as a plan section.

After the first `retention_ratio` of the steps, a step is skipped (the last residual of the whole
block stack is reused) while the error accumulated from the magnitude ratios of consecutive
residuals stays under `threshold` and at most `max_skip_steps` steps were skipped in a row.
The ratios are the model's own: edgediff calibrates them with diffusers' calibration mode on the
plan's step count (`evaluators.runtime.mag_calibration`; in a search, the library-default method
calibrates them on a worker) and stores them in the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from evaluators.techniques._library import (
    LibrarySection,
    check_object,
    fail,
    integer,
    number,
)
from evaluators.techniques.base import register

README_SWEEP = ((0.06, 3), (0.12, 4), (0.24, 5))  # (threshold, K) settings MagCache's README shows


@register
@dataclass(frozen=True)
class MagCache(LibrarySection):
    """Attributes:
        mag_ratios: the calibrated magnitude ratio of each step (one per step of the plan).
        threshold: accumulated ratio error under which a step may be skipped.
        max_skip_steps: most consecutive skipped steps (K).
        retention_ratio: share of the first steps that always compute.
    """

    section: ClassVar[str] = "mag_cache"
    title: ClassVar[str] = "MagCache"
    mag_ratios: tuple[float, ...] = ()
    threshold: float = 0.06
    max_skip_steps: int = 3
    retention_ratio: float = 0.2

    @classmethod
    def parse(cls, data: Any, sampling: Any) -> MagCache:
        num_steps = sampling.num_inference_steps
        s = cls.section
        d = check_object(data, s, ("mag_ratios", "threshold", "max_skip_steps",
                                   "retention_ratio"))
        ratios = d.get("mag_ratios")
        if (not isinstance(ratios, list) or len(ratios) != num_steps
                or any(isinstance(r, bool) or not isinstance(r, (int, float))
                       or not math.isfinite(r) or r <= 0 for r in ratios)):
            got = len(ratios) if isinstance(ratios, list) else type(ratios).__name__
            raise fail(f"{s}.mag_ratios", f"expected {num_steps} positive ratios (one per step), "
                       f"got {got}", "calibrate them for this step count (edgediff calibrate)")
        return cls(tuple(float(r) for r in ratios),
                   number(d, "threshold", s, 0.06, 0.0, 10.0),
                   integer(d, "max_skip_steps", s, 3, 1, 1000),
                   number(d, "retention_ratio", s, 0.2, 0.0, 1.0))

    @classmethod
    def library_default(cls, num_steps: int, mag_ratios: tuple[float, ...] = ()) -> MagCache:
        return cls(mag_ratios)

    @classmethod
    def sweep(cls, num_steps: int, mag_ratios: tuple[float, ...] = ()) -> list[MagCache]:
        return [cls(mag_ratios, t, min(k, num_steps)) for t, k in README_SWEEP]

    def library_kwargs(self, model_class: str, num_steps: int, timestep: Any) -> dict[str, Any]:
        if len(self.mag_ratios) != num_steps:
            raise fail(f"{self.section}.mag_ratios", f"{len(self.mag_ratios)} ratios for "
                       f"{num_steps} steps", "calibrate them for this step count")
        return {"threshold": self.threshold, "max_skip_steps": self.max_skip_steps,
                "retention_ratio": self.retention_ratio, "num_inference_steps": num_steps,
                "mag_ratios": list(self.mag_ratios)}

    def summary(self) -> dict[str, str]:
        return {self.section: (f"MagCache, threshold {self.threshold:g}, K {self.max_skip_steps}, "
                f"retention {self.retention_ratio:g}")}

    def skipped_steps(self, num_steps: int) -> list[bool]:
        """diffusers' skip rule on the stored ratios: after the retention steps, a step is skipped
        while the accumulated error |1 - prod(ratios)| summed stays <= threshold and at most
        `max_skip_steps` steps were skipped in a row (any computed step resets the sums)."""
        retention = int(self.retention_ratio * num_steps + 0.5)
        ratio, err, run, out = 1.0, 0.0, 0, []
        for step in range(num_steps):
            skip = False
            if step >= retention:
                ratio *= self.mag_ratios[step] if step < len(self.mag_ratios) else 1.0
                run += 1
                err += abs(1.0 - ratio)
                skip = step > 0 and err <= self.threshold and run <= self.max_skip_steps
                if not skip:
                    ratio, err, run = 1.0, 0.0, 0
            out.append(skip)
        return out

    def block_rows(self, num_steps: int) -> list[tuple[str, list[str]]]:
        return [("all blocks", ["cached" if s else "compute"
                                for s in self.skipped_steps(num_steps)])]

    @classmethod
    def suggest(cls, trial: Any, num_steps: int, mag_ratios: tuple[float, ...] = ()) -> MagCache:
        return cls(mag_ratios, trial.suggest_float("magcache_threshold", 0.01, 0.5, log=True),
                   trial.suggest_int("magcache_k", 1, max(1, min(6, num_steps))),
                   trial.suggest_float("magcache_retention", 0.0, 0.5))
