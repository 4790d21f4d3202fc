"""The digits data set behind the embedded default models.

scikit-learn ships 1,797 handwritten digits as 8×8 images with intensities 0..16. edgediff upsamples
them bilinearly to 16×16, so that a patch-1 DiT sees 256 tokens: enough for a 1-D attention window
to cover a small part of the sequence, which is what window attention needs to matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGE_SIZE = 16
NUM_CLASSES = 10
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Digits:
    """Digits as model inputs: `images` in [-1, 1], shape (N, 1, IMAGE_SIZE, IMAGE_SIZE)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> Digits:
        return Digits(self.images[index], self.labels[index])


def load_digits(size: int = IMAGE_SIZE) -> Digits:
    """All 1,797 digits, upsampled to `size`×`size` and scaled to [-1, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    raw = sklearn_digits()
    images = torch.tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.clamp(0.0, 1.0) * 2.0 - 1.0
    return Digits(images.contiguous(), torch.tensor(raw.target, dtype=torch.long))


def train_test_split(digits: Digits) -> tuple[Digits, Digits]:
    """A fixed stratified split: TEST_FRACTION of each class held out, chosen with SPLIT_SEED."""
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    test_mask = torch.zeros(len(digits), dtype=torch.bool)
    for c in range(NUM_CLASSES):
        idx = torch.nonzero(digits.labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        test_mask[idx[: round(len(idx) * TEST_FRACTION)]] = True
    return digits.subset(~test_mask), digits.subset(test_mask)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] to image range [0, 1]."""
    return ((images + 1.0) / 2.0).clamp(0.0, 1.0)
