"""What an evaluator returns: one plan's `Measurement` at one stage, and the uncompressed model's
run (`Reference`) that every plan under the same spec is compared with.

A `Measurement` lives in memory and crosses processes as itself (or as `to_dict` JSON in a cache
file); the store keeps it as an evaluation row (`storage.EvaluationRecord`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import torch

from evaluators.images import SampleSheet

__all__ = ["Measurement", "Reference"]


@dataclass(frozen=True)
class Measurement:
    """The measurements of one plan under one spec at one stage.

    Attributes:
        model: the model's name.
        plan_hash: the plan's content hash.
        spec_hash: the measurement's hash (`identity.measurement_hash`: the spec, the model's
            config and weights, the device type, the FID feature network and the reference set).
        stage: "screen" (first images, fidelity only) or "full" (all images, FID).
        num_images: images generated for this stage.
        macs_per_image: MACs that execute to generate one image (every step, both CFG halves),
            counted on the `meta` device for the denoiser.
        macs_per_generation: MACs of one call generating `spec.batch_size` images.
        latency_per_image_s: wall-clock seconds per image on `device` (this stage's images).
        fid: FID against the spec's reference set (full stage only).
        class_accuracy: share of images the digits classifier reads as the requested class
            (shipped models only).
        mse, psnr: against the uncompressed model's images on the same seeds (images in [0, 1];
            PSNR peak 1, identical images read `quality.PSNR_CAP_DB`).
        similarity: DiTFastAttn's relative error against the same images (0 = identical).
        device: what it ran on; versions: library versions.
        seconds: wall time of the whole evaluation; started_at / finished_at: UTC.
        extra: per-step MACs, MACs by layer type, batch size, screen verdict, and `params`: the
            denoiser's parameter footprint (`params`, `skipped`: those the plan never runs,
            `skipped_bytes`: the memory they need not occupy, by dtype; see
            `evaluators.footprint`).
        samples: the stage's first `images.SAMPLE_COUNT` images as a PNG sheet, on the same seeds
            for every plan under the spec (so they sit beside the uncompressed model's); None where
            not kept.
    """

    model: str
    plan_hash: str
    spec_hash: str
    stage: str
    num_images: int
    macs_per_image: int
    macs_per_generation: int
    latency_per_image_s: float
    fid: float | None
    class_accuracy: float | None
    mse: float
    psnr: float
    similarity: float
    device: str
    versions: dict[str, str]
    seconds: float
    started_at: datetime
    finished_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)
    samples: SampleSheet | None = None

    @property
    def passed_screen(self) -> bool | None:
        """For a screen evaluation: whether the plan earned the full pass."""
        return self.extra.get("passed_screen")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (times as ISO text, the sample PNG as base64); `from_dict` reads it back."""
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat()
        out["samples"] = None if self.samples is None else self.samples.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        data = dict(data)
        for key in ("started_at", "finished_at"):
            data[key] = datetime.fromisoformat(data[key])
        samples = data.get("samples")
        data["samples"] = None if samples is None else SampleSheet.from_dict(samples)
        return cls(**data)


@dataclass
class Reference:
    """The uncompressed model's run under a spec: its images (uint8), its measurement and the FID
    reference statistics it was scored with."""

    images: torch.Tensor
    measurement: Measurement
    fid_state: dict[str, torch.Tensor]
