"""The evaluator's quality meter: `evaluators.metrics` set up for one spec, sharing the FID
scorer's feature network and reference statistics (so the FID column and the intervals are read in
the same feature space)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from evaluators.metrics import QualityMeter
from evaluators.metrics.clip import ClipScorer
from evaluators.metrics.features import RealStats, extract
from evaluators.quality import FIDScorer


class _Bytes(nn.Module):
    """torchmetrics' InceptionV3 takes uint8 images (its FID converts [0, 1] floats first)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner((images * 255).byte())


def feature_network(scorer: FIDScorer) -> nn.Module:
    """The FID scorer's feature network, taking images in [0, 1]."""
    metric = scorer.metric
    return metric.inception if metric.used_custom_model else _Bytes(metric.inception)


def quality_meter(quality: str, *, scorer: FIDScorer | None, fid_state: dict[str, torch.Tensor] | None,
                  reference_images: Callable[[], torch.Tensor], clip_model: str | None = None
                  ) -> QualityMeter:
    """The meter of a spec's `quality` objective. FID (and KID for the "kid" objective, which
    needs the real images' features) with the scorer's features; fidelity needs neither."""
    clip = ClipScorer(clip_model) if clip_model else None
    if scorer is None or fid_state is None:
        return QualityMeter(quality, clip=clip)
    feature = feature_network(scorer)
    real = RealStats.from_fid_state(fid_state)
    if quality == "kid":
        features = extract(feature, reference_images())
        real = RealStats(real.mean, real.cov, real.count, features)
    return QualityMeter(quality, feature=feature, real=real, clip=clip)
