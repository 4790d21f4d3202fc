"""Bootstrap confidence intervals over images, and paired ones for a difference on the same seeds.

    ci = bootstrap(lambda idx: float(scores[idx].mean()), n=len(scores))
    ci.estimate, ci.low, ci.high                       # the statistic on all images, a 95% interval
    d = paired_bootstrap(fid_of_plan, fid_of_full, n)   # plan - full, resampling image k of both

A statistic is a function of a vector of image indices (with repeats): the same indices are drawn
for both sides of a paired difference, so what the two runs share (the seeds, hence most of the
content of each image) cancels and the interval of the difference is far narrower than the two
intervals side by side. The interval is the percentile one (Efron's): the `alpha/2` and
`1 - alpha/2` quantiles of the statistic over `resamples` resamples drawn with a fixed seed, so the
same images always give the same interval. FID and KID, which depend on how many distinct images
there are, use `half_sample` instead (half-samples without replacement, centred).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

RESAMPLES = 200  # enough for the 2.5% / 97.5% quantiles to be stable to a few percent of the width
LEVEL = 0.95

Statistic = Callable[[torch.Tensor], float]


@dataclass(frozen=True)
class Interval:
    """A statistic on all images (`estimate`) and its bootstrap interval [`low`, `high`] at `level`."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL
    resamples: int = RESAMPLES

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, float | int]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level,
                "resamples": self.resamples}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interval:
        return cls(float(data["estimate"]), float(data["low"]), float(data["high"]),
                   float(data.get("level", LEVEL)), int(data.get("resamples", RESAMPLES)))

    def shifted(self, offset: float) -> Interval:
        """The interval of `statistic + offset` (a constant, e.g. a reference value)."""
        return Interval(self.estimate + offset, self.low + offset, self.high + offset, self.level,
                        self.resamples)


def groups_of(strata: Sequence[Hashable] | None, n: int) -> list[torch.Tensor]:
    """The image indices of each stratum (one stratum of all images when `strata` is None, or
    when a stratum holds a single image: resampling within it could never vary it, and with one
    image per class (8 images over 10 digits) every resample would be the set itself, an interval
    of width zero that would pass any bound)."""
    if strata is None:
        return [torch.arange(n)]
    if len(strata) != n:
        raise ValueError(f"{n} images need {n} strata, got {len(strata)}")
    index: dict[Hashable, list[int]] = {}
    for k, key in enumerate(strata):
        index.setdefault(key, []).append(k)
    if min(len(members) for members in index.values()) < 2:
        return [torch.arange(n)]
    return [torch.tensor(members) for members in index.values()]


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = 0,
                     strata: Sequence[Hashable] | None = None) -> torch.Tensor:
    """`resamples` rows of `n` image indices drawn with replacement (a fixed generator), within
    each stratum when given: the spec cycles its classes or prompts over the images, so a
    resample keeps each condition's share, as a new set of seeds would."""
    if n < 2:
        raise ValueError(f"a bootstrap over images needs at least 2 images, got {n}")
    generator = torch.Generator().manual_seed(seed)
    parts = [members[torch.randint(0, members.numel(), (resamples, members.numel()), generator=generator)]
             for members in groups_of(strata, n)]
    return torch.cat(parts, dim=1)


def bootstrap(statistic: Statistic, n: int, *, resamples: int = RESAMPLES, level: float = LEVEL,
              seed: int = 0, strata: Sequence[Hashable] | None = None) -> Interval:
    """The percentile bootstrap interval of `statistic` over `n` images (within `strata`)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level} is not in (0, 1)")
    estimate = float(statistic(torch.arange(n)))
    values = torch.tensor([float(statistic(idx))
                           for idx in resample_indices(n, resamples, seed, strata)],
                          dtype=torch.float64)
    return _percentile(estimate, values, level, resamples)


def _percentile(estimate: float, values: torch.Tensor, level: float, resamples: int) -> Interval:
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        return Interval(estimate, math.nan, math.nan, level, resamples)
    alpha = 1 - level
    low, high = torch.quantile(values, torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64))
    return Interval(estimate, float(low), float(high), level, resamples)


def paired_bootstrap(statistic: Statistic, baseline: Statistic, n: int, **kwargs: Any) -> Interval:
    """The interval of `statistic - baseline`, both computed on the SAME resampled image indices
    (image k of a plan and of the uncompressed model share seed k)."""
    return bootstrap(lambda idx: statistic(idx) - baseline(idx), n, **kwargs)


def half_sample(statistic: Statistic, n: int, *, resamples: int = RESAMPLES, level: float = LEVEL,
                seed: int = 0, strata: Sequence[Hashable] | None = None) -> Interval:
    """An interval for a statistic whose bootstrap is biased by repeated images (FID, KID).

    Resampling with replacement leaves ~63% distinct images, and FID reads far higher on fewer
    images, so its percentile interval would sit above the value. Half-samples drawn WITHOUT
    replacement have no repeats, and a half-sample mean varies by sigma^2/m * (n-m)/(n-1) ~ sigma^2/n:
    the spread of the statistic over half-samples, centred on its own mean (which removes the
    smaller sample's bias), estimates the spread of the all-image value. The interval is the
    all-image value plus the quantiles of those centred deviations. With `strata`, half of each
    stratum is drawn.
    """
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level} is not in (0, 1)")
    if n < 4:
        raise ValueError(f"a half-sample interval needs at least 4 images, got {n}")
    estimate = float(statistic(torch.arange(n)))
    generator = torch.Generator().manual_seed(seed)
    groups = groups_of(strata, n)

    def half() -> torch.Tensor:
        return torch.cat([g[torch.randperm(g.numel(), generator=generator)[:g.numel() // 2]]
                          for g in groups])

    values = torch.tensor([float(statistic(half())) for _ in range(resamples)], dtype=torch.float64)
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        return Interval(estimate, math.nan, math.nan, level, resamples)
    deviations = _percentile(0.0, values - values.mean(), level, resamples)
    return deviations.shifted(estimate)


def paired_half_sample(statistic: Statistic, baseline: Statistic, n: int, **kwargs: Any) -> Interval:
    """`half_sample` of `statistic - baseline` on the same half-samples of the same seeds."""
    return half_sample(lambda idx: statistic(idx) - baseline(idx), n, **kwargs)


def mean_interval(values: torch.Tensor, **kwargs: Any) -> Interval:
    """The bootstrap interval of the mean of per-image values (PSNR, SSIM, CLIP score, ...)."""
    values = values.double().flatten()
    resamples, level = kwargs.get("resamples", RESAMPLES), kwargs.get("level", LEVEL)
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level} is not in (0, 1)")
    idx = resample_indices(values.numel(), resamples, kwargs.get("seed", 0), kwargs.get("strata"))
    return _percentile(float(values.mean()), values[idx].mean(dim=1), level, resamples)  # all at once
