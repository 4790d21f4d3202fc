"""Evaluate one candidate plan for one model under an evaluation spec.

    evaluator = Evaluator("digits-dit", EvalSpec(num_images=200))
    result = evaluator.evaluate(Plan.load("plan.json"))      # an Evaluation
    result.macs_per_image, result.latency_per_image_s, result.fid, result.psnr

The uncompressed model (the plan with every technique off, at the spec's steps and guidance) is
generated once per measurement (`Evaluator.spec_hash`: the spec, the model's weights, the device
type, the feature network and the reference set) on the spec's seeds: its images are the fidelity
reference and its own numbers are the full model's evaluation. They are kept in memory for the
process and, with a `cache_dir`, in a safetensors file that later processes (search workers)
reuse, together with the FID reference statistics.

Multi-fidelity: with `spec.screen_images`, `evaluate(plan, "screen")` generates only the first
images and measures fidelity (no FID); `evaluate_staged` runs the screen, stops there when the
plan falls below `spec.screen_min_psnr`, and otherwise completes the full pass re-using the
screened images (image k depends only on its seed).

Every evaluation keeps its first images (`Evaluation.samples`, a small PNG sheet): they are on the
same seeds for every plan under a spec, so they can be shown beside the uncompressed model's.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evaluators.cost import count_macs, cpu_name
from evaluators.errors import UnusableImagesError
from evaluators.images import SAMPLE_COUNT, SampleSheet, sample_sheet
from evaluators.plan import Plan, full_plan
from evaluators.quality import INCEPTION_FEATURES, FIDScorer, fidelity, load_image_folder
from evaluators.runtime import check_plan_fits, model_ref
from evaluators.runtime.attention import self_attention_layers
from evaluators.spec import DIGITS_REFERENCE, EvalSpec
from evaluators.subjects import Subject, load_subject

__all__ = ["Evaluation", "Evaluator", "Reference", "evaluate_plan", "environment"]


@dataclass(frozen=True)
class Evaluation:
    """The measurements of one plan under one spec at one stage.

    Attributes:
        model: the model's name.
        plan_hash: the plan's content hash.
        spec_hash: the measurement's hash (`Evaluator.spec_hash`: the spec, the model's config and
            weights, the device type, the FID feature network and the reference set).
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
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        data = dict(data)
        for key in ("started_at", "finished_at"):
            data[key] = datetime.fromisoformat(data[key])
        samples = data.get("samples")
        data["samples"] = None if samples is None else SampleSheet.from_dict(samples)
        return cls(**data)


@dataclass
class Reference:
    """The uncompressed model's run under a spec: its images (uint8) and its evaluation."""

    images: torch.Tensor
    evaluation: Evaluation
    fid_state: dict[str, torch.Tensor]


@dataclass(frozen=True)
class _Run:
    """A measured stage with its images (kept so the full pass can start after the screen)."""

    evaluation: Evaluation
    images: torch.Tensor
    seconds: float


# measurement hash (Evaluator.spec_hash) -> the uncompressed model's run, for this process
_REFERENCES: dict[tuple[str, str, str, str], Reference] = {}


def environment(device: torch.device) -> tuple[str, dict[str, str]]:
    """The device's name and the versions of what produced the numbers."""
    import diffusers
    import torchmetrics

    from edgediff import __version__

    if device.type == "cuda":
        name = f"cuda: {torch.cuda.get_device_name(device)}"
    else:
        name = f"cpu: {cpu_name()} ({torch.get_num_threads()} threads)"
    versions = {"edgediff": __version__, "python": platform.python_version(),
                "torch": torch.__version__, "diffusers": diffusers.__version__,
                "torchmetrics": torchmetrics.__version__}
    return name, versions


class Evaluator:
    """Evaluates plans for one model under one spec; see the module docstring.

    Args:
        model: registry name, local folder or hub id (used to load `subject` when not given).
        spec: the evaluation spec.
        subject: an already loaded subject (a shipped model or a diffusers pipeline).
        feature: an FID feature network to use instead of the spec's (`spec.feature`).
        reference_images: real images in [0, 1] to use instead of the spec's reference set.
        cache_dir: where the uncompressed model's run is cached between processes.
        device: where a loaded subject runs.
        progress: show progress bars.
    """

    def __init__(self, model: str, spec: EvalSpec, *, subject: Subject | None = None,
                 feature: nn.Module | int | None = None, reference_images: torch.Tensor | None = None,
                 cache_dir: str | Path | None = None, device: str | torch.device = "cpu",
                 progress: bool = False) -> None:
        self.model, self.spec, self.progress = model, spec, progress
        self.subject = subject or load_subject(model, device)
        self.denoiser = self.subject.denoiser
        self.device = next(self.denoiser.parameters()).device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._feature_override = feature
        self._reference_override = reference_images
        self._scorer: FIDScorer | None = None
        self._warm = False
        self._macs: dict[str, tuple[int, dict[str, Any]]] = {}
        n_layers = None
        if hasattr(self.denoiser, "transformer_blocks"):
            n_layers = len(self_attention_layers(self.denoiser))
        self.full_plan = full_plan(model_ref(self.denoiser, model), spec.num_inference_steps,
                                   spec.guidance_scale, n_layers)
        self.spec_hash = self._measurement_hash()

    def _measurement_hash(self) -> str:
        """What the numbers depend on beyond the plan: the spec, the model's name, config and
        weights, the device type, the FID feature network and the reference set. Evaluations are
        stored and reused under this hash (the store's `spec_hash`), and the uncompressed model's
        run is cached under it, so retrained weights or another feature space never reuse old
        numbers."""
        parts = {
            "spec": self.spec.content_hash(),
            "model": self.model,
            "config": self.full_plan.model.fingerprint,
            "weights": weights_digest(self.denoiser),
            "device": self.device.type,
            "feature": self.spec.feature if self._feature_override is None
            else _feature_digest(self._feature_override),
            "reference": None if self._reference_override is None
            else _tensor_digest(self._reference_override),
        }
        if self.spec.feature == "digits" and self._feature_override is None:
            from evaluators.zoo import shipped_classifier

            parts["feature_weights"] = weights_digest(shipped_classifier())
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    # --- the uncompressed model ---------------------------------------------------------------
    def reference(self) -> Reference:
        """The uncompressed model's run: generated once, then from memory or the cache file."""
        ref = _REFERENCES.get(self.spec_hash)
        if ref is None:
            ref = self._load_cached() or self._run_reference()
            _REFERENCES[self.spec_hash] = ref
        if ref.evaluation.samples is None:  # a run from the cache file, kept there without them
            sheet = self._samples(_from_u8(ref.images[:SAMPLE_COUNT]))
            ref.evaluation = replace(ref.evaluation, samples=sheet)
        if self._scorer is None:
            self._scorer = self._new_scorer(with_reference=False)
            self._scorer.load_reference_state(ref.fid_state)
        return ref

    def adopt_reference(self, ref: Reference) -> bool:
        """Use an uncompressed run made elsewhere (another process or node of a search) when it
        was made under this evaluator's measurement hash; returns whether it was taken."""
        if ref.evaluation.spec_hash != self.spec_hash or ref.images.shape[0] != self.spec.num_images:
            return False
        _REFERENCES.setdefault(self.spec_hash, ref)
        return True

    def _run_reference(self) -> Reference:
        # The reference set and feature network first: a bad one fails before any generation.
        scorer = self._scorer or self._new_scorer(with_reference=True)
        self._scorer = scorer
        started = _now()
        count = self.spec.num_images
        images, seconds, conditions = self._generate(self.full_plan, 0, count, "reference")
        evaluation = self._evaluation(
            self.full_plan, "full", images, seconds, conditions, started,
            fid=scorer.score(images), fidelity_values=fidelity(images, images),
        )
        ref = Reference(_to_u8(images), evaluation, scorer.reference_state())
        self._save_cached(ref)
        return ref

    def _new_scorer(self, with_reference: bool) -> FIDScorer:
        feature = self._feature_override
        if feature is None:
            feature = INCEPTION_FEATURES if self.spec.feature == "inception" else _digits_feature()
        if not with_reference:
            return FIDScorer(feature)
        return FIDScorer(feature, self._reference_images())

    def _reference_images(self) -> torch.Tensor:
        if self._reference_override is not None:
            return self._reference_override
        if self.spec.reference == DIGITS_REFERENCE:
            from evaluators.data import load_digits, to_unit

            return to_unit(load_digits().images)
        size = 299 if self.spec.feature == "inception" else None
        return load_image_folder(self.spec.reference, size=size)

    # --- candidates ---------------------------------------------------------------------------
    def evaluate(self, plan: Plan, stage: str = "full") -> Evaluation:
        """Evaluate `plan` at `stage` ("screen": first images, fidelity only; "full": with FID)."""
        return self._measure(plan, stage).evaluation

    def evaluate_staged(self, plan: Plan,
                        on_result: Callable[[Evaluation], None] | None = None) -> list[Evaluation]:
        """The screen (if the spec has one), then the full pass if the plan passes it.
        `on_result` is called with each stage's evaluation as soon as it is measured."""
        stages: list[Evaluation] = []

        def done(run: _Run) -> _Run:
            stages.append(run.evaluation)
            if on_result is not None:
                on_result(run.evaluation)
            return run

        if not self.spec.screen_images:
            done(self._measure(plan, "full"))
            return stages
        screen = done(self._measure(plan, "screen"))
        if screen.evaluation.passed_screen:
            done(self._measure(plan, "full", screened=screen))
        return stages

    def _measure(self, plan: Plan, stage: str, screened: _Run | None = None) -> _Run:
        """Generate the stage's images (after those already `screened`) and measure them."""
        check_plan_fits(self.denoiser, plan)
        count = self.spec.stage_images(stage)
        ref = self.reference()
        if plan.content_hash() == self.full_plan.content_hash():
            result = self._from_reference(ref, stage, count)
            return _Run(result, _from_u8(ref.images[:count]), result.latency_per_image_s * count)
        started = screened.evaluation.started_at if screened is not None else _now()
        done = screened.images if screened is not None else torch.empty(0)
        seconds = screened.seconds if screened is not None else 0.0
        new, more_seconds, conditions = self._generate(plan, done.shape[0], count, stage)
        images = torch.cat([t for t in (done, new) if t.numel()])
        seconds += more_seconds
        values = fidelity(_from_u8(ref.images[:count]), images)
        fid = self._scorer.score(images) if stage == "full" else None  # type: ignore[union-attr]
        result = self._evaluation(plan, stage, images, seconds, conditions, started, fid, values)
        return _Run(result, images, seconds)

    def _from_reference(self, ref: Reference, stage: str, count: int) -> Evaluation:
        base = ref.evaluation
        if stage == "full":
            return base
        extra = dict(base.extra, passed_screen=True)
        samples = self._samples(_from_u8(ref.images[:count]))
        return replace(base, stage=stage, num_images=count, fid=None, extra=extra, samples=samples)

    # --- pieces -------------------------------------------------------------------------------
    def _generate(self, plan: Plan, start: int, stop: int, desc: str
                  ) -> tuple[torch.Tensor, float, list[Any]]:
        """Images start..stop-1 of the spec with `plan`, quantised to 8 bits; and the seconds."""
        conditions = self.subject.conditions(self.spec, stop)
        seeds = self.spec.seeds(stop)
        if not self._warm:  # one untimed image first: one-time start-up costs are nobody's latency
            self.subject.generate_batch(self.full_plan, seeds[:1], conditions[:1])
            self._warm = True
        # Batches on the reference run's grid (0, B, 2B, ...), so latencies compare like for like:
        # after a screen of S images, the rest of batch 0 first, then whole batches.
        size = self.spec.batch_size
        grid = min(stop, -(-start // size) * size)  # the first grid line at or after `start`
        parts, seconds = [], 0.0
        for lo, hi in ((start, grid), (grid, stop)):
            if lo == hi:
                continue
            _sync(self.device)
            began = time.perf_counter()
            parts.append(self.subject.generate(plan, seeds[lo:hi], conditions[lo:hi], size,
                                               self.progress, desc))
            _sync(self.device)
            seconds += time.perf_counter() - began
        images = torch.cat(parts) if parts else torch.empty(0)
        _check_finite(images, seeds[start:stop])
        return _from_u8(_to_u8(images)), seconds, conditions

    def macs(self, plan: Plan) -> tuple[int, dict[str, Any]]:
        """MACs per image of `plan` and the per-step / per-type breakdown (counted once per plan)."""
        key = plan.content_hash()
        if key not in self._macs:
            count = count_macs(self.denoiser, plan, num_images=1)
            detail = {"macs_per_step": count.per_step, "macs_by_type": count.by_type}
            if count.footprint is not None:  # parameters that never run (depth-skip)
                detail["params"] = count.footprint.to_dict()
            self._macs[key] = (int(round(count.per_image)), detail)
        return self._macs[key]

    def _evaluation(self, plan: Plan, stage: str, images: torch.Tensor, seconds: float,
                    conditions: list[Any], started: datetime, fid: float | None,
                    fidelity_values: dict[str, float]) -> Evaluation:
        macs, detail = self.macs(plan)
        device, versions = environment(self.device)
        count = images.shape[0]
        extra: dict[str, Any] = {**detail, "batch_size": self.spec.batch_size}
        if self._feature_override is not None:
            extra["feature"] = _feature_digest(self._feature_override)
        if stage == "screen":
            floor = self.spec.screen_min_psnr
            extra["passed_screen"] = floor is None or fidelity_values["psnr"] >= floor
        accuracy = self.subject.class_accuracy(images, conditions[:count])
        finished = _now()
        return Evaluation(
            model=self.model, plan_hash=plan.content_hash(), spec_hash=self.spec_hash, stage=stage,
            num_images=count, macs_per_image=macs, macs_per_generation=macs * self.spec.batch_size,
            latency_per_image_s=seconds / count, fid=fid, class_accuracy=accuracy,
            mse=fidelity_values["mse"], psnr=fidelity_values["psnr"],
            similarity=fidelity_values["similarity"], device=device, versions=versions,
            seconds=(finished - started).total_seconds(), started_at=started, finished_at=finished,
            extra=extra, samples=self._samples(images),
        )

    def _samples(self, images: torch.Tensor) -> SampleSheet:
        """The sheet of the first images (of the spec's first seeds and conditions)."""
        n = min(SAMPLE_COUNT, images.shape[0])
        return sample_sheet(images[:n], self.subject.conditions(self.spec, n), self.spec.seeds(n))

    # --- the cache file -----------------------------------------------------------------------
    def _cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.model).strip("_")[:40]
        return self.cache_dir / f"reference-{slug}-{self.spec_hash[:24]}.safetensors"

    def _load_cached(self) -> Reference | None:
        path = self._cache_path()
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            evaluation = Evaluation.from_dict(json.loads(meta["evaluation"]))
        except Exception:  # noqa: BLE001 - a damaged cache file is regenerated, not trusted
            return None
        images = tensors.pop("images")
        expected = (self.model, self.spec_hash, self.full_plan.content_hash(), self.spec.num_images)
        found = (evaluation.model, evaluation.spec_hash, evaluation.plan_hash, images.shape[0])
        return Reference(images, evaluation, tensors) if found == expected else None

    def _save_cached(self, ref: Reference) -> None:
        path = self._cache_path()
        if path is None:
            return
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"images": ref.images.contiguous(), **ref.fid_state}
        # without the sample sheet: `reference()` draws it again from the images in the file
        meta = {"evaluation": json.dumps(replace(ref.evaluation, samples=None).to_dict())}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def evaluate_plan(model: str, plan: Plan, spec: EvalSpec, stage: str = "full",
                  **kwargs: Any) -> Evaluation:
    """Evaluate one plan for one model under `spec` (keyword arguments go to `Evaluator`)."""
    return Evaluator(model, spec, **kwargs).evaluate(plan, stage)


def _digits_feature() -> nn.Module:
    from evaluators.zoo import shipped_classifier
    from evaluators.zoo.classifier import DigitsFeatures

    return DigitsFeatures(shipped_classifier())


def _check_finite(images: torch.Tensor, seeds: Sequence[int]) -> None:
    """UnusableImagesError if any pixel is NaN or infinite (8-bit quantisation would hide it as
    black, and the plan would be scored as a poor but valid point)."""
    if images.numel() == 0:
        return
    bad = ~torch.isfinite(images.flatten(1)).all(dim=1)
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise UnusableImagesError(
            f"the plan produced NaN or infinite pixels in {int(bad.sum())} of {images.shape[0]} images "
            f"(first: seed {seeds[first]}): it is numerically unstable on this model")


def _to_u8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def _from_u8(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _now() -> datetime:
    return datetime.now(timezone.utc)


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


def _feature_digest(feature: nn.Module | int) -> str:
    if isinstance(feature, int):
        return f"inception-{feature}"
    return f"custom:{type(feature).__name__}:{weights_digest(feature)}"


def _tensor_digest(images: torch.Tensor) -> str:
    data = images.detach().float().cpu().contiguous().numpy().tobytes()
    return f"{tuple(images.shape)}:{hashlib.sha256(data).hexdigest()[:16]}"
