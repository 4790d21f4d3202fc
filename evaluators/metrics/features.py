"""FID and KID computed from feature vectors, so one pass of the feature network serves the value and
every bootstrap resample of it.

    real = RealStats.from_features(extract(net, reference_images))   # or RealStats.load("stats.npz")
    fid = frechet(extract(net, images), real)
    kid_mean, kid_std = kernel_distance(extract(net, images), real)

The Fréchet distance is torchmetrics' (`FrechetInceptionDistance`'s formula and its mean/covariance
convention); the kernel distance is torchmetrics' polynomial-kernel MMD (`KernelInceptionDistance`),
which is unbiased at small sample counts where FID reads high. A statistics file is a `.npz` with
`mu` and `sigma` (the layout pytorch-fid and clean-fid write; `count` optional) or a
`.safetensors` file with `mean`, `cov` (and optionally `count`, `features`); KID needs the real
features themselves, so it needs a folder of images or a safetensors file that carries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import _compute_fid
from torchmetrics.image.kid import poly_mmd

from evaluators.errors import EvaluatorError

STATS_SUFFIXES = (".npz", ".safetensors")
KID_SUBSET = 1000  # torchmetrics' default subset size; smaller sets use all their images
KID_SUBSETS = 50


def is_stats_file(reference: str) -> bool:
    """Whether a spec's `reference` names a precomputed statistics file (not a folder or 'digits')."""
    return reference.lower().endswith(STATS_SUFFIXES)


@torch.no_grad()
def extract(feature: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Features of images in [0, 1], shape (N, C, H, W), as float64 (N, D)."""
    parts = [feature(batch).reshape(batch.shape[0], -1).double() for batch in images.split(batch_size)]
    return torch.cat(parts)


def mean_cov(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (n - 1), as torchmetrics' FID computes them."""
    n = features.shape[0]
    mean = features.mean(dim=0)
    centred = features - mean
    return mean, centred.t().mm(centred) / (n - 1)


@dataclass(frozen=True)
class RealStats:
    """The real side of FID/KID: feature mean and covariance, sample count, and the features
    themselves where known (KID needs them)."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int
    features: torch.Tensor | None = None
    _factor: list[torch.Tensor] = field(default_factory=list, repr=False, compare=False)

    def cov_factor(self) -> torch.Tensor:
        """A with A Aᵀ = cov (from its eigendecomposition; computed once: d = 2048 takes seconds)."""
        if not self._factor:
            eigenvalues, vectors = torch.linalg.eigh(self.cov)
            self._factor.append(vectors * eigenvalues.clamp_min(0).sqrt())
        return self._factor[0]

    @classmethod
    def from_features(cls, features: torch.Tensor) -> RealStats:
        features = features.double()
        if features.shape[0] < 2:
            raise EvaluatorError(f"the reference set has {features.shape[0]} images: FID needs at least 2")
        mean, cov = mean_cov(features)
        return cls(mean, cov, features.shape[0], features)

    @classmethod
    def from_fid_state(cls, state: dict[str, torch.Tensor]) -> RealStats:
        """From torchmetrics FID's real-side states (`real_features_sum`, `_cov_sum`, `_num_samples`)."""
        n = int(state["real_features_num_samples"])
        mean = state["real_features_sum"].double() / n
        cov = (state["real_features_cov_sum"].double() - n * torch.outer(mean, mean)) / (n - 1)
        return cls(mean, cov, n)

    def fid_state(self) -> dict[str, torch.Tensor]:
        """torchmetrics FID's real-side states that give back this mean and covariance."""
        n = self.count
        return {"real_features_sum": self.mean * n,
                "real_features_cov_sum": self.cov * (n - 1) + n * torch.outer(self.mean, self.mean),
                "real_features_num_samples": torch.tensor(n, dtype=torch.long)}

    def save(self, path: str | Path) -> Path:
        """Write a `.npz` (mu, sigma, count) or `.safetensors` (mean, cov, count, features) file."""
        path = Path(path)
        if path.suffix == ".npz":
            import numpy as np

            np.savez(path, mu=self.mean.numpy(), sigma=self.cov.numpy(), count=self.count)
            return path
        from safetensors.torch import save_file

        tensors = {"mean": self.mean, "cov": self.cov, "count": torch.tensor(self.count)}
        if self.features is not None:
            tensors["features"] = self.features.contiguous()
        save_file(tensors, str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> RealStats:
        """Read a statistics file; a missing or unreadable one is one EvaluatorError line."""
        path = Path(path)
        fix = ("give a .npz with 'mu' and 'sigma' (pytorch-fid / clean-fid layout) or a .safetensors "
               "with 'mean' and 'cov', or a folder of real images")
        if not path.is_file():
            raise EvaluatorError(f"reference statistics file '{path}' does not exist: {fix}")
        try:
            if path.suffix == ".npz":
                import numpy as np

                with np.load(path) as data:
                    _require(data.files, ("mu", "sigma"))
                    mean, cov = torch.from_numpy(data["mu"]), torch.from_numpy(data["sigma"])
                    count = int(data["count"]) if "count" in data else 2
                    features = None
            else:
                from safetensors.torch import load_file

                data = load_file(str(path))
                _require(list(data), ("mean", "cov"))
                mean, cov = data["mean"], data["cov"]
                count = int(data["count"]) if "count" in data else 2
                features = data.get("features")
        except KeyError as err:
            raise EvaluatorError(f"reference statistics file '{path}' lacks '{err.args[0]}': {fix}") from None
        except Exception as err:  # noqa: BLE001 - a damaged file: say which and how to fix it
            raise EvaluatorError(f"cannot read reference statistics file '{path}' ({err}): {fix}") from None
        mean, cov = mean.double().flatten(), cov.double()
        if cov.shape != (mean.numel(), mean.numel()):
            raise EvaluatorError(f"reference statistics file '{path}': sigma is {tuple(cov.shape)} but "
                                 f"mu has {mean.numel()} values: {fix}")
        return cls(mean, cov, max(count, 2), None if features is None else features.double())

    def check_dimension(self, dim: int, where: str) -> None:
        if self.mean.numel() != dim:
            raise EvaluatorError(
                f"{where} holds {self.mean.numel()}-dimensional features but the feature network gives "
                f"{dim}: compute the statistics with the same --feature (inception: 2048)")


def _require(present: list[str], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in present]
    if missing:
        raise KeyError(missing[0])


def frechet(features: torch.Tensor, real: RealStats) -> float:
    """FID of generated features against the real statistics (torchmetrics' formula)."""
    if features.shape[0] < 2:
        raise ValueError("FID needs at least 2 generated images")
    mean, cov = mean_cov(features.double())
    return float(_compute_fid(real.mean, real.cov, mean, cov))


class FrechetStatistic:
    """FID of generated features at resampled image indices, fast enough for a bootstrap.

    With the real covariance written as A Aᵀ (A from its eigendecomposition, once) and X the
    centred generated features, Tr sqrt(Σ_real Σ_gen) = Σ sqrt(eig((XA)(XA)ᵀ / (n-1))): an n×n
    symmetric eigenproblem instead of torchmetrics' d×d general one (n images < d = 2048 Inception
    features), the same number (a test holds it to torchmetrics' `frechet`).
    """

    def __init__(self, features: torch.Tensor, real: RealStats) -> None:
        self.features = features.double()
        self.real = real
        self.projected = self.features @ real.cov_factor()  # F A
        self.real_trace = float(real.cov.trace())

    def __call__(self, idx: torch.Tensor) -> float:
        f, g = self.features[idx], self.projected[idx]
        n = f.shape[0]
        mean = f.mean(dim=0)
        centred = g - g.mean(dim=0)
        small = centred @ centred.t() if n <= centred.shape[1] else centred.t() @ centred
        roots = torch.linalg.eigvalsh(small / (n - 1)).clamp_min(0).sqrt().sum()
        gen_trace = float(((f - mean) ** 2).sum()) / (n - 1)
        distance = float(((mean - self.real.mean) ** 2).sum())
        return distance + self.real_trace + gen_trace - 2 * float(roots)


def kernel_distance(features: torch.Tensor, real: RealStats, *, subset_size: int = KID_SUBSET,
                    subsets: int = KID_SUBSETS, seed: int = 0) -> tuple[float, float]:
    """KID (mean and spread over `subsets` random subsets, torchmetrics' estimator), with subsets of
    min(subset_size, generated, real) images."""
    if real.features is None:
        raise EvaluatorError("KID needs the real images' features, which a mu/sigma statistics file "
                             "does not hold: give a folder of real images as the reference, or use FID")
    size = min(subset_size, features.shape[0], real.features.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 generated images")
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        fake = features[torch.randperm(features.shape[0], generator=generator)[:size]]
        ref = real.features[torch.randperm(real.features.shape[0], generator=generator)[:size]]
        scores.append(poly_mmd(ref, fake.double()))
    stacked = torch.stack(scores)
    return float(stacked.mean()), float(stacked.std(unbiased=False))


def kid_statistic(features: torch.Tensor, real: RealStats, seed: int = 0):
    """KID of the features at given image indices (for the bootstrap): one fixed real subset so that
    the resampled side is the only thing that varies."""
    if real.features is None:
        raise EvaluatorError("KID needs the real images' features: give a folder of real images")
    n = features.shape[0]
    size = min(n, real.features.shape[0])
    generator = torch.Generator().manual_seed(seed)
    ref = real.features[torch.randperm(real.features.shape[0], generator=generator)[:size]]

    def statistic(idx: torch.Tensor) -> float:  # the MMD estimator wants equal set sizes
        idx = idx[:size]
        return float(poly_mmd(ref[:idx.numel()], features[idx].double()))

    return statistic
