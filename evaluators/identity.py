"""What a measurement depends on beyond the plan, as one hash (the store's `spec_hash`), and
what produced it (device name, library versions).

Evaluations are stored and reused under `measurement_hash`, and the uncompressed model's run is
cached under it, so retrained weights or another feature space never reuse old numbers.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata

import torch
from torch import nn

from evaluators.cost import cpu_name
from evaluators.spec import EvalSpec

__all__ = ["environment", "feature_digest", "measurement_hash", "tensor_digest", "weights_digest"]


def measurement_hash(model: str, spec: EvalSpec, fingerprint: str, denoiser: nn.Module, *,
                     feature: nn.Module | int | None = None,
                     reference_images: torch.Tensor | None = None) -> str:
    """The spec, the model's name, config `fingerprint` and weights, the device type, the FID
    feature network (`feature` where it replaces the spec's) and the reference set
    (`reference_images` where they replace the spec's)."""
    device = next(denoiser.parameters()).device
    parts = {
        "spec": spec.content_hash(),
        "model": model,
        "config": fingerprint,
        "weights": weights_digest(denoiser),
        "device": device.type,
        "feature": spec.feature if feature is None else feature_digest(feature),
        "reference": None if reference_images is None else tensor_digest(reference_images),
    }
    if spec.feature == "digits" and feature is None:
        from evaluators.zoo import shipped_classifier

        parts["feature_weights"] = weights_digest(shipped_classifier())
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def environment(device: torch.device) -> tuple[str, dict[str, str]]:
    """The device's name and the versions of what produced the numbers."""
    import diffusers
    import torchmetrics

    if device.type == "cuda":
        name = f"cuda: {torch.cuda.get_device_name(device)}"
    else:
        name = f"cpu: {cpu_name()} ({torch.get_num_threads()} threads)"
    versions = {"edgediff": package_version(), "python": platform.python_version(),
                "torch": torch.__version__, "diffusers": diffusers.__version__,
                "torchmetrics": torchmetrics.__version__}
    return name, versions


def package_version() -> str:
    """edgediff's installed version ("unknown" when run from a source tree never installed)."""
    try:
        return metadata.version("edgediff")
    except metadata.PackageNotFoundError:
        return "unknown"


def weights_digest(model: nn.Module, sample: int = 4096) -> str:
    """A short digest of a model's weights: every tensor's name, shape and an evenly strided
    sample of its values (cheap for billion-parameter models, and any retraining changes it)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        if tensor.device.type != "meta" and tensor.numel():
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // sample)
            digest.update(flat[::step].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def feature_digest(feature: nn.Module | int) -> str:
    """A custom FID feature network's identity (an Inception feature width by its number)."""
    if isinstance(feature, int):
        return f"inception-{feature}"
    return f"custom:{type(feature).__name__}:{weights_digest(feature)}"


def tensor_digest(images: torch.Tensor) -> str:
    data = images.detach().float().cpu().contiguous().numpy().tobytes()
    return f"{tuple(images.shape)}:{hashlib.sha256(data).hexdigest()[:16]}"
