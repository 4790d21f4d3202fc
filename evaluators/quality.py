"""Image quality: FID (torchmetrics) in a pluggable feature space, and class accuracy of samples."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance


class FIDScorer:
    """FID of generated images against a fixed reference set.

    The reference statistics are accumulated once; each `score` call resets only the generated side.
    Images are floats in [0, 1] (torchmetrics' `normalize=True` convention).
    """

    def __init__(self, feature: nn.Module, reference: torch.Tensor, batch_size: int = 500) -> None:
        self.batch_size = batch_size
        self.metric = FrechetInceptionDistance(
            feature=feature, normalize=True, reset_real_features=False
        )
        for batch in reference.split(batch_size):
            self.metric.update(batch, real=True)

    def score(self, images: torch.Tensor) -> float:
        if images.shape[0] < 2:
            raise ValueError("FID needs at least 2 generated images")
        self.metric.reset()  # keeps the reference statistics
        for batch in images.split(self.batch_size):
            self.metric.update(batch, real=False)
        return float(self.metric.compute())


def digits_fid_scorer(classifier: nn.Module | None = None) -> FIDScorer:
    """FID in the digits classifier's feature space against all 1,797 real digits."""
    from evaluators.data import load_digits, to_unit
    from evaluators.zoo import load_model
    from evaluators.zoo.classifier import DigitsFeatures

    classifier = classifier or load_model("digits-classifier")
    return FIDScorer(DigitsFeatures(classifier), to_unit(load_digits().images))
