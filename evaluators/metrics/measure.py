"""Every quality number of one evaluation, each with its bootstrap interval, and the paired
difference to the uncompressed model on the same seeds for the ones a decision uses.

    meter = QualityMeter("fid", feature=net, real=RealStats.from_features(extract(net, real_images)))
    meter.set_baseline(full_images)               # the uncompressed model's images, seeds 0..N-1
    result = meter.measure(plan_images)           # images of seeds 0..n-1 (n <= N)
    result.value, result.delta                    # the objective and plan - full, as Intervals

Objectives (all minimised): "fid" and "kid" against a real set in a feature space; "fidelity":
the mean per-image loss against the uncompressed model (1 - SSIM, or LPIPS), which needs no
reference set and is 0 for the uncompressed model itself. PSNR and SSIM are always measured;
the CLIP score when a CLIP scorer and prompts are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from evaluators.errors import EvaluatorError
from evaluators.metrics.clip import ClipScorer
from evaluators.metrics.features import (
    FrechetStatistic,
    RealStats,
    extract,
    kernel_distance,
    kid_statistic,
)
from evaluators.metrics.fidelity import fidelity_loss, psnr_per_image, ssim_per_image
from evaluators.metrics.intervals import (
    RESAMPLES,
    Interval,
    half_sample,
    mean_interval,
    paired_half_sample,
)

QUALITY_OBJECTIVES = ("fid", "kid", "fidelity")
DISTRIBUTION_OBJECTIVES = ("fid", "kid")  # these need a real image set and a feature network


@dataclass(frozen=True)
class QualityResult:
    """The quality of one set of images.

    Attributes:
        objective: the minimised metric ("fid", "kid" or "fidelity").
        value: the objective with its interval (None when not measured at this stage).
        delta: objective(plan) - objective(uncompressed model), a paired interval (same seeds).
        metrics: every metric measured ("fid", "kid", "psnr", "ssim", "fidelity", "clip").
        deltas: their paired differences to the uncompressed model, where meaningful.
    """

    objective: str
    value: Interval | None
    delta: Interval | None
    metrics: dict[str, Interval] = field(default_factory=dict)
    deltas: dict[str, Interval] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; kept in an evaluation's `extra["quality"]`. The objective's value and paired
        difference are also flat keys (value, low, high, delta, delta_low, delta_high), which the
        store reads into a point's interval (storage.rows.INTERVAL_KEYS)."""
        flat: dict[str, Any] = {}
        if self.value is not None:
            flat.update(value=self.value.estimate, low=self.value.low, high=self.value.high)
        if self.delta is not None:
            flat.update(delta=self.delta.estimate, delta_low=self.delta.low, delta_high=self.delta.high)
        return {"objective": self.objective, **flat,
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "deltas": {k: v.to_dict() for k, v in self.deltas.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityResult:
        metrics = {k: Interval.from_dict(v) for k, v in data.get("metrics", {}).items()}
        deltas = {k: Interval.from_dict(v) for k, v in data.get("deltas", {}).items()}
        objective = data["objective"]
        return cls(objective, metrics.get(objective), deltas.get(objective), metrics, deltas)


def check_feature_fits(objective: str, feature: str, digits_model: bool, model: str) -> None:
    """EvaluatorError when a distribution metric would read a non-digits model's images in the
    digits classifier's feature space (a number with no meaning, FID in the hundreds)."""
    if objective in DISTRIBUTION_OBJECTIVES and feature == "digits" and not digits_model:
        raise EvaluatorError(
            f"{model} is not a digits model, but {objective.upper()} would read its images in the "
            "digits classifier's features (the default --feature digits): pass --feature inception "
            "with --reference FOLDER (real images) or a .npz statistics file, or --quality fidelity "
            "(fidelity to the uncompressed model; no reference set)")


class QualityMeter:
    """Measures images against the real set and the uncompressed model's images; see the module
    docstring. `feature` and `real` are needed for "fid"/"kid"; `clip` adds the CLIP score."""

    def __init__(self, objective: str = "fid", *, feature: nn.Module | None = None,
                 real: RealStats | None = None, clip: ClipScorer | None = None,
                 fidelity_metric: str = "ssim", resamples: int = RESAMPLES, seed: int = 0) -> None:
        if objective not in QUALITY_OBJECTIVES:
            raise EvaluatorError(f"unknown quality objective '{objective}': use one of "
                                 f"{', '.join(QUALITY_OBJECTIVES)}")
        if objective in DISTRIBUTION_OBJECTIVES and (feature is None or real is None):
            raise EvaluatorError(f"--quality {objective} needs a reference image set and a feature "
                                 "network; --quality fidelity needs neither")
        self.objective, self.feature, self.real, self.clip = objective, feature, real, clip
        self.fidelity_metric, self.resamples, self.seed = fidelity_metric, resamples, seed
        self._baseline: torch.Tensor | None = None
        self._baseline_features: torch.Tensor | None = None
        self._baseline_clip: torch.Tensor | None = None

    @property
    def distribution(self) -> bool:
        return self.feature is not None and self.real is not None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        assert self.feature is not None
        features = extract(self.feature, images)
        assert self.real is not None
        self.real.check_dimension(features.shape[1], "the reference statistics")
        return features

    def set_baseline(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> None:
        """The uncompressed model's images on the spec's seeds (and their prompts)."""
        self._baseline = images
        self._baseline_features = self.features(images) if self.distribution else None
        self._baseline_clip = (self.clip.per_image(images, prompts)
                               if self.clip is not None and prompts is not None else None)

    def measure(self, images: torch.Tensor, prompts: Sequence[str] | None = None, *,
                conditions: Sequence[Any] | None = None, distribution: bool = True) -> QualityResult:
        """Images of the spec's first n seeds; `distribution=False` (a screen) skips FID/KID.
        `conditions` (each image's class or prompt) are the strata the intervals resample within."""
        if self._baseline is None:
            raise RuntimeError("set_baseline(the uncompressed model's images) first")
        n = images.shape[0]
        if n < 2 or n > self._baseline.shape[0]:
            raise ValueError(f"{n} images: give 2 up to the baseline's {self._baseline.shape[0]}")
        base = self._baseline[:n]
        strata = None if conditions is None else [str(c) for c in conditions[:n]]
        opts = {"resamples": self.resamples, "seed": self.seed, "strata": strata}
        metrics, deltas = {}, {}
        loss = fidelity_loss(base, images, self.fidelity_metric)
        metrics["fidelity"] = deltas["fidelity"] = mean_interval(loss, **opts)  # the full model's is 0
        metrics["psnr"] = mean_interval(psnr_per_image(base, images), **opts)
        metrics["ssim"] = mean_interval(ssim_per_image(base, images), **opts)
        if distribution and self.distribution:
            feats = self.features(images)
            base_feats = self._baseline_features[:n]  # type: ignore[index]
            self._distribution_metrics(feats, base_feats, metrics, deltas, opts)
        if self.clip is not None and prompts is not None and self._baseline_clip is not None:
            scores = self.clip.per_image(images, prompts[:n])
            metrics["clip"] = mean_interval(scores, **opts)
            deltas["clip"] = mean_interval(scores - self._baseline_clip[:n], **opts)
        return QualityResult(self.objective, metrics.get(self.objective),
                             deltas.get(self.objective), metrics, deltas)

    def _distribution_metrics(self, feats: torch.Tensor, base_feats: torch.Tensor,
                              metrics: dict[str, Interval], deltas: dict[str, Interval],
                              opts: dict[str, Any]) -> None:
        assert self.real is not None
        n = feats.shape[0]
        plan_fid, base_fid = FrechetStatistic(feats, self.real), FrechetStatistic(base_feats, self.real)
        # (FrechetStatistic on all images is torchmetrics' FID to ~1e-8, and far faster)
        metrics["fid"] = half_sample(plan_fid, n, **opts)
        deltas["fid"] = paired_half_sample(plan_fid, base_fid, n, **opts)
        if self.real.features is None:
            if self.objective == "kid":
                kernel_distance(feats, self.real)  # the one-line error: no real features
            return
        kid, _ = kernel_distance(feats, self.real, seed=self.seed)
        base_kid, _ = kernel_distance(base_feats, self.real, seed=self.seed)
        plan_kid = kid_statistic(feats, self.real, self.seed)
        full_kid = kid_statistic(base_feats, self.real, self.seed)
        # the value is torchmetrics' subset-averaged KID; its spread from half-samples
        metrics["kid"] = half_sample(plan_kid, n, **opts).shifted(kid - plan_kid(torch.arange(n)))
        deltas["kid"] = paired_half_sample(plan_kid, full_kid, n, **opts).shifted(
            (kid - base_kid) - (plan_kid(torch.arange(n)) - full_kid(torch.arange(n))))
