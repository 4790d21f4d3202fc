"""Image quality: FID (torchmetrics) in a pluggable feature space, and fidelity to a reference run.

Images are floats in [0, 1] with shape (N, C, H, W) (torchmetrics' `normalize=True` convention).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from evaluators.errors import EvaluatorError

# PSNR of identical images is infinite; it is reported as this many dB so it stays a number.
PSNR_CAP_DB = 100.0
INCEPTION_FEATURES = 2048
_REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


class FIDScorer:
    """FID of generated images against a fixed reference set.

    `feature` is a feature network (an `nn.Module` mapping images in [0, 1] to vectors) or the
    number of InceptionV3 features torchmetrics should use (2048). The reference statistics are
    accumulated once (or restored with `load_reference_state`); each `score` call resets only the
    generated side.
    """

    def __init__(self, feature: nn.Module | int, reference: torch.Tensor | None = None,
                 batch_size: int = 500) -> None:
        self.batch_size = batch_size
        try:
            self.metric = FrechetInceptionDistance(
                feature=feature, normalize=True, reset_real_features=False
            )
        except Exception as err:  # noqa: BLE001 - torch-fidelity missing or its weights unreachable
            if isinstance(feature, int):
                raise _inception_error(err) from err
            raise
        if reference is not None:
            for batch in reference.split(batch_size):
                self.metric.update(batch, real=True)

    def reference_state(self) -> dict[str, torch.Tensor]:
        """The accumulated reference statistics (to cache them)."""
        return {name: getattr(self.metric, name).clone() for name in _REAL_STATES}

    def load_reference_state(self, state: dict[str, torch.Tensor]) -> None:
        for name in _REAL_STATES:
            setattr(self.metric, name, state[name].clone())

    def score(self, images: torch.Tensor) -> float:
        if images.shape[0] < 2:
            raise ValueError("FID needs at least 2 generated images")
        self.metric.reset()  # keeps the reference statistics
        for batch in images.split(self.batch_size):
            self.metric.update(batch, real=False)
        return float(self.metric.compute())


def _inception_error(err: Exception) -> EvaluatorError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return EvaluatorError(
        f"InceptionV3 FID features are not available ({first}): install torch-fidelity "
        "(pip install 'edgediff[inception]') and, on a machine without internet, copy its weights file "
        "pt_inception-2015-12-05-6726825d.pth into $TORCH_HOME/hub/checkpoints"
    )


def digits_fid_scorer(classifier: nn.Module | None = None) -> FIDScorer:
    """FID in the digits classifier's feature space against all 1,797 real digits."""
    from evaluators.data import load_digits, to_unit
    from evaluators.zoo import load_model
    from evaluators.zoo.classifier import DigitsFeatures

    classifier = classifier or load_model("digits-classifier")
    return FIDScorer(DigitsFeatures(classifier), to_unit(load_digits().images))


def ditfastattn_loss(a: torch.Tensor, b: torch.Tensor) -> float:
    """DiTFastAttn's relative error of `b` against `a`: mean(clip(|(a - b) / (max(a, b) + 1e-6)|, 0, 10)).

    `max` is elementwise and signed; the absolute value is taken after the division. 0 means
    identical. The greedy baseline uses it on transformer outputs; the evaluator on samples.
    """
    a, b = a.double(), b.double()
    ratio = ((a - b) / (torch.maximum(a, b) + 1e-6)).abs().clamp(0, 10)
    return float(ratio.mean())


def fidelity(reference: torch.Tensor, images: torch.Tensor) -> dict[str, float]:
    """MSE, PSNR (dB, peak 1) and the DiTFastAttn relative error of `images` against `reference`,
    both in [0, 1] and generated from the same seeds."""
    mse = float(((images.double() - reference.double()) ** 2).mean())
    psnr = PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * math.log10(1.0 / mse))
    return {"mse": mse, "psnr": psnr, "similarity": ditfastattn_loss(reference, images)}


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def load_image_folder(path: str | Path, size: int | None = 299) -> torch.Tensor:
    """Every image in a folder as RGB floats in [0, 1], resized to `size`×`size` (299 is
    InceptionV3's input size) so they stack; `size=None` keeps them as they are."""
    import numpy as np
    from PIL import Image

    folder = Path(path)
    if not folder.is_dir():
        raise EvaluatorError(f"reference image folder '{folder}' does not exist: give a folder of "
                             "real images (PNG or JPEG) or 'digits'")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if len(files) < 2:
        raise EvaluatorError(f"reference image folder '{folder}' holds {len(files)} images: FID "
                             "needs at least 2 (PNG or JPEG)")
    out = []
    for f in files:
        img = Image.open(f).convert("RGB")
        if size is not None:
            img = img.resize((size, size), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
    if len({tuple(t.shape) for t in out}) > 1:
        raise EvaluatorError(f"images in '{folder}' differ in size: resize them to one size")
    return torch.stack(out).float() / 255.0
