"""Per-image fidelity to the uncompressed model on the same seeds: SSIM (torchmetrics), PSNR, and
LPIPS where torchmetrics can build it (it needs torchvision, which edgediff's CPU torch pin cannot
install beside it: then LPIPS is a one-line error naming SSIM as the alternative).

Per-image values (not only their mean) are what the bootstrap resamples. Images are floats in
[0, 1], shape (N, C, H, W); image k of both sets comes from the same seed and condition.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from evaluators.errors import EvaluatorError

PSNR_CAP_DB = 100.0  # identical images: reported as this many dB so the value stays a number
FIDELITY_METRICS = ("ssim", "lpips")


def ssim_per_image(reference: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """SSIM of each image against its reference (1 = identical), shape (N,). Images smaller than
    torchmetrics' 11-pixel Gaussian window use a window that fits (the 16-pixel digits fit 11)."""
    _check_pair(reference, images)
    side = min(images.shape[-2:])
    kernel = 11 if side >= 11 else max(3, side - (1 - side % 2))  # odd and at most the image side
    return structural_similarity_index_measure(
        images.float(), reference.float(), data_range=1.0, kernel_size=kernel, reduction="none"
    ).double()


def psnr_per_image(reference: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """PSNR (dB, peak 1) of each image against its reference, capped at `PSNR_CAP_DB`, shape (N,)."""
    _check_pair(reference, images)
    mse = ((images.double() - reference.double()) ** 2).flatten(1).mean(dim=1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_CAP_DB / 10)))
    return psnr.clamp(max=PSNR_CAP_DB)


def lpips_per_image(reference: torch.Tensor, images: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS of each image against its reference (0 = identical), shape (N,), via torchmetrics."""
    _check_pair(reference, images)
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)
    except (ImportError, ModuleNotFoundError) as err:
        raise EvaluatorError(
            f"LPIPS is not available here ({_first_line(err)}): it needs torchvision matching the "
            "installed torch; use --fidelity ssim instead") from None
    except Exception as err:  # noqa: BLE001 - its weights cannot be fetched offline
        raise EvaluatorError(
            f"LPIPS weights are not available ({_first_line(err)}): copy them into $TORCH_HOME/hub/"
            "checkpoints, or use --fidelity ssim") from None
    rgb = (lambda t: t.expand(-1, 3, -1, -1)) if images.shape[1] == 1 else (lambda t: t)
    return torch.stack([metric(rgb(images[k:k + 1].float()), rgb(reference[k:k + 1].float())).detach()
                        for k in range(images.shape[0])]).double().flatten()


def fidelity_loss(reference: torch.Tensor, images: torch.Tensor, metric: str = "ssim") -> torch.Tensor:
    """Per-image loss against the uncompressed model (lower is better, 0 = identical):
    1 - SSIM, or LPIPS. The `--quality fidelity` objective is its mean."""
    if metric == "ssim":
        return 1.0 - ssim_per_image(reference, images)
    if metric == "lpips":
        return lpips_per_image(reference, images)
    raise EvaluatorError(f"unknown fidelity metric '{metric}': use one of {', '.join(FIDELITY_METRICS)}")


def _check_pair(reference: torch.Tensor, images: torch.Tensor) -> None:
    if reference.shape != images.shape:
        raise ValueError(f"images {tuple(images.shape)} and their reference {tuple(reference.shape)} "
                         "differ in shape: they must come from the same seeds and settings")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
