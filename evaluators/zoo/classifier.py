"""A small convolutional digits classifier; its penultimate layer is the FID feature space of the
embedded default (the role InceptionV3's pool features play for real images)."""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class DigitsClassifier(ModelMixin, ConfigMixin):
    """Two conv stages (16→8→4 pixels) and a hidden layer of `feature_dim` units.

    Inputs are images in the model range [-1, 1], shape (N, 1, sample_size, sample_size).
    Saved and loaded like any diffusers model (`save_pretrained` / `from_pretrained`, safetensors).
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 16,
        in_channels: int = 1,
        channels: tuple[int, int] = (32, 64),
        feature_dim: int = 128,
        num_classes: int = 10,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        c1, c2 = channels

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.GroupNorm(8, cout),
                nn.SiLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.GroupNorm(8, cout),
                nn.SiLU(),
                nn.AvgPool2d(2),
            )

        self.body = nn.Sequential(stage(in_channels, c1), stage(c1, c2), nn.Flatten())
        flat = c2 * (sample_size // 4) ** 2
        self.hidden = nn.Sequential(nn.Linear(flat, feature_dim), nn.SiLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, shape (N, feature_dim)."""
        return self.hidden(self.body(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (N, num_classes)."""
        return self.head(self.features(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Predicted class of each image (model range), in eval mode."""
        was_training = self.training
        self.eval()
        pred = torch.cat([self(b).argmax(1) for b in images.split(batch_size)])
        self.train(was_training)
        return pred

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Share of `images` (model range) classified as `labels`."""
        return float((self.predict(images) == labels).float().mean())


class DigitsFeatures(nn.Module):
    """The classifier's feature space as a torchmetrics feature extractor.

    Takes images in [0, 1] (torchmetrics' `normalize=True` convention) with 1 or 3 channels at any
    size and returns (N, num_features) features.
    """

    def __init__(self, classifier: DigitsClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = int(classifier.config.feature_dim)
        self.size = int(classifier.config.sample_size)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float()
        if images.shape[1] == 3:  # grey images given as RGB
            images = images.mean(dim=1, keepdim=True)
        if images.shape[-1] != self.size or images.shape[-2] != self.size:
            images = nn.functional.interpolate(images, size=(self.size, self.size), mode="bilinear")
        return self.classifier.features(images * 2.0 - 1.0)
