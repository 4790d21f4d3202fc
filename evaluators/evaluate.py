"""Evaluate one candidate plan for one model under an evaluation spec.

    evaluator = Evaluator("digits-dit", EvalSpec(num_images=200))
    result = evaluator.evaluate(Plan.load("plan.json"))      # a Measurement
    result.macs_per_image, result.latency_per_image_s, result.fid, result.psnr

The uncompressed model (the plan with every technique off, at the spec's steps and guidance) is
generated once per measurement (`Evaluator.spec_hash`: the spec, the model's weights, the device
type, the feature network and the reference set) on the spec's seeds: its images are the fidelity
reference and its own numbers are the full model's measurement. `references` keeps them for the
process and, with a `cache_dir`, in a safetensors file that later processes (search workers)
reuse, together with the FID reference statistics.

The result types are in `results`, the measurement hash and the environment in `identity`; this
module generates and measures.

Multi-fidelity: with `spec.screen_images`, `evaluate(plan, "screen")` generates only the first
images and measures fidelity (no FID); `evaluate_staged` runs the screen, stops there when the
plan falls below `spec.screen_min_psnr`, and otherwise completes the full pass re-using the
screened images (image k depends only on its seed).

Every evaluation keeps its first images (`Measurement.samples`, a small PNG sheet): they are on the
same seeds for every plan under a spec, so they can be shown beside the uncompressed model's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evaluators import references
from evaluators.cost import count_macs
from evaluators.errors import UnusableImagesError
from evaluators.families import facts_of
from evaluators.identity import environment, feature_digest, measurement_hash
from evaluators.images import SAMPLE_COUNT, SampleSheet, sample_sheet
from evaluators.latency import measure_latency
from evaluators.metrics import QualityMeter, QualityResult, check_feature_fits
from evaluators.metrics.features import RealStats, is_stats_file
from evaluators.plan import Plan
from evaluators.quality import INCEPTION_FEATURES, FIDScorer, fidelity, load_image_folder
from evaluators.results import Measurement, Reference
from evaluators.runtime import check_plan_fits, model_ref
from evaluators.runtime.fit import check_geometry, geometry_note
from evaluators.scoring import quality_meter
from evaluators.settings import configure_subject
from evaluators.spec import DIGITS_REFERENCE, EvalSpec
from evaluators.subjects import DigitsAccuracy, Subject, load_subject

__all__ = ["Evaluator", "Measurement", "Reference", "evaluate_plan"]


@dataclass(frozen=True)
class _Run:
    """A measured stage with its images (kept so the full pass can start after the screen)."""

    measurement: Measurement
    images: torch.Tensor
    seconds: float


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
        configure_subject(self.subject, spec)  # dtype, size, scheduler, ...: before any hash
        self.denoiser = self.subject.denoiser
        if feature is None and reference_images is None:  # digits features on RGB images: refuse
            digits = isinstance(self.subject, DigitsAccuracy)  # the shipped digits generators
            check_feature_fits(spec.quality, spec.feature, digits, model)
        self._meter: QualityMeter | None = None
        self.device = next(self.denoiser.parameters()).device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._feature_override = feature
        self._reference_override = reference_images
        self._scorer: FIDScorer | None = None
        self._warm = False
        self._macs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.full_plan = facts_of(self.denoiser).full_plan(
            model_ref(self.denoiser, model), spec.num_inference_steps, spec.guidance_scale)
        geometry = getattr(self.subject, "geometry", None)
        if geometry is not None:  # what plans are measured at, checked when applied (notes:
            # outside the content hash, so no plan's hash changes)
            self.full_plan = replace(self.full_plan, notes={
                "geometry": geometry_note(self.denoiser, geometry)})
        self.spec_hash = measurement_hash(model, spec, self.full_plan.model.fingerprint,
                                          self.denoiser, feature=feature,
                                          reference_images=reference_images)

    # --- the uncompressed model ---------------------------------------------------------------
    def reference(self) -> Reference:
        """The uncompressed model's run: generated once, then from memory or the cache file."""
        ref = references.recall(self.spec_hash)
        if ref is None:
            path = references.cache_path(self.cache_dir, self.model, self.spec_hash)
            ref = references.load(path, model=self.model, spec_hash=self.spec_hash,
                                  plan_hash=self.full_plan.content_hash(),
                                  num_images=self.spec.num_images) or self._run_reference()
            ref = references.remember(ref)
        if ref.measurement.samples is None:  # a run from the cache file, kept there without them
            sheet = self._samples(_from_u8(ref.images[:SAMPLE_COUNT]))
            ref.measurement = replace(ref.measurement, samples=sheet)
        if self._scorer is None and self._distribution:
            self._scorer = self._new_scorer(with_reference=False)
            self._scorer.load_reference_state(ref.fid_state)
        if self._meter is None:
            self._meter = self._new_meter(ref.fid_state)
            self._meter.set_baseline(_from_u8(ref.images), self._prompts(ref.images.shape[0]))
        return ref

    @property
    def _distribution(self) -> bool:
        """Whether the spec's metrics need the reference set (FID/KID; not --quality fidelity)."""
        return self.spec.quality != "fidelity"

    def _new_meter(self, fid_state: dict[str, torch.Tensor]) -> QualityMeter:
        return quality_meter(self.spec.quality, scorer=self._scorer,
                             fid_state=fid_state if self._distribution else None,
                             reference_images=self._reference_images, clip_model=self.spec.clip_model)

    def _prompts(self, count: int) -> list[str] | None:
        return self.spec.prompt_list(count) if self.spec.prompts is not None else None

    def _quality(self, images: torch.Tensor, conditions: list[Any], stage: str) -> QualityResult:
        assert self._meter is not None
        count = images.shape[0]
        return self._meter.measure(images, self._prompts(count), conditions=conditions[:count],
                                   distribution=stage == "full")

    def adopt_reference(self, ref: Reference) -> bool:
        """Use an uncompressed run made elsewhere (another process or node of a search) when it
        was made under this evaluator's measurement hash; returns whether it was taken."""
        if (ref.measurement.spec_hash != self.spec_hash
                or ref.images.shape[0] != self.spec.num_images):
            return False
        references.remember(ref)
        return True

    def _run_reference(self) -> Reference:
        # The reference set and feature network first: a bad one fails before any generation.
        scorer = None
        if self._distribution:
            scorer = self._scorer or self._new_scorer(with_reference=True)
        self._scorer = scorer
        fid_state = scorer.reference_state() if scorer is not None else {}
        self._meter = self._new_meter(fid_state)
        started = _now()
        count = self.spec.num_images
        images, seconds, conditions = self._generate(self.full_plan, 0, count, "reference")
        self._meter.set_baseline(images, self._prompts(count))
        measurement = self._measurement(
            self.full_plan, "full", images, seconds, conditions, started,
            fid=scorer.score(images) if scorer is not None else None,
            fidelity_values=fidelity(images, images),
            quality=self._quality(images, conditions, "full"),
        )
        ref = Reference(_to_u8(images), measurement, fid_state)
        references.save(references.cache_path(self.cache_dir, self.model, self.spec_hash), ref)
        return ref

    def _new_scorer(self, with_reference: bool) -> FIDScorer:
        feature = self._feature_override
        if feature is None:
            feature = INCEPTION_FEATURES if self.spec.feature == "inception" else _digits_feature()
        if not with_reference:
            return FIDScorer(feature)
        if self._reference_override is None and is_stats_file(self.spec.reference):
            scorer = FIDScorer(feature)
            stats = RealStats.load(self.spec.reference)
            dim = scorer.metric.real_features_sum.numel()
            stats.check_dimension(dim, f"reference statistics file '{self.spec.reference}'")
            scorer.load_reference_state(stats.fid_state())
            return scorer
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
    def evaluate(self, plan: Plan, stage: str = "full") -> Measurement:
        """Evaluate `plan` at `stage` ("screen": first images, fidelity only; "full": with FID)."""
        return self._measure(plan, stage).measurement

    def evaluate_staged(self, plan: Plan,
                        on_result: Callable[[Measurement], None] | None = None) -> list[Measurement]:
        """The screen (if the spec has one), then the full pass if the plan passes it.
        `on_result` is called with each stage's evaluation as soon as it is measured."""
        stages: list[Measurement] = []

        def done(run: _Run) -> _Run:
            stages.append(run.measurement)
            if on_result is not None:
                on_result(run.measurement)
            return run

        if not self.spec.screen_images:
            done(self._measure(plan, "full"))
            return stages
        screen = done(self._measure(plan, "screen"))
        if screen.measurement.passed_screen:
            done(self._measure(plan, "full", screened=screen))
        return stages

    def _measure(self, plan: Plan, stage: str, screened: _Run | None = None) -> _Run:
        """Generate the stage's images (after those already `screened`) and measure them."""
        check_plan_fits(self.denoiser, plan)
        check_geometry(plan, self.full_plan)
        count = self.spec.stage_images(stage)
        ref = self.reference()
        if plan.content_hash() == self.full_plan.content_hash():
            result = self._from_reference(ref, stage, count)
            return _Run(result, _from_u8(ref.images[:count]), result.latency_per_image_s * count)
        started = screened.measurement.started_at if screened is not None else _now()
        done = screened.images if screened is not None else torch.empty(0)
        seconds = screened.seconds if screened is not None else 0.0
        new, more_seconds, conditions = self._generate(plan, done.shape[0], count, stage)
        images = torch.cat([t for t in (done, new) if t.numel()])
        seconds += more_seconds
        values = fidelity(_from_u8(ref.images[:count]), images)
        fid = self._scorer.score(images) if stage == "full" and self._scorer is not None else None
        result = self._measurement(plan, stage, images, seconds, conditions, started, fid, values,
                                   self._quality(images, conditions, stage))
        return _Run(result, images, seconds)

    def _from_reference(self, ref: Reference, stage: str, count: int) -> Measurement:
        base = ref.measurement
        if stage == "full":
            return base
        extra = dict(base.extra, passed_screen=True)
        images = _from_u8(ref.images[:count])
        extra["quality"] = self._quality(images, self.subject.conditions(self.spec, count),
                                         stage).to_dict()
        samples = self._samples(images)
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
        executed = getattr(self.subject, "executed", {}).get(key)
        if executed is not None:  # a run-time cache: what executed in this evaluation's images
            macs, images, per_call = executed
            return int(round(macs / images)), {"macs_source": "executed",
                                               "macs_per_call": per_call, "images": images}
        if key not in self._macs:
            count = count_macs(self.denoiser, plan, num_images=1,
                               geometry=getattr(self.subject, "geometry", None))
            detail = {"macs_per_step": count.per_step, "macs_by_type": count.by_type}
            if count.footprint is not None:  # parameters that never run (depth-skip)
                detail["params"] = count.footprint.to_dict()
            self._macs[key] = (int(round(count.per_image)), detail)
        return self._macs[key]

    def _measurement(self, plan: Plan, stage: str, images: torch.Tensor, seconds: float,
                    conditions: list[Any], started: datetime, fid: float | None,
                    fidelity_values: dict[str, float], quality: QualityResult | None = None
                    ) -> Measurement:
        macs, detail = self.macs(plan)
        device, versions = environment(self.device)
        count = images.shape[0]
        extra: dict[str, Any] = {**detail, "batch_size": self.spec.batch_size}
        if self._feature_override is not None:
            extra["feature"] = feature_digest(self._feature_override)
        if quality is not None:  # every metric with its interval, and the paired difference
            extra["quality"] = quality.to_dict()
        if stage == "screen":
            floor = self.spec.screen_min_psnr
            extra["passed_screen"] = floor is None or fidelity_values["psnr"] >= floor
        accuracy = self.subject.class_accuracy(images, conditions[:count])
        latency = seconds / count
        if stage == "full" and self.spec.latency_repeats:
            stats = self._repeat_latency(plan, latency)
            latency, extra["latency"] = stats.median_s, stats.to_dict()
        finished = _now()
        return Measurement(
            model=self.model, plan_hash=plan.content_hash(), spec_hash=self.spec_hash, stage=stage,
            num_images=count, macs_per_image=macs, macs_per_generation=macs * self.spec.batch_size,
            latency_per_image_s=latency, fid=fid, class_accuracy=accuracy,
            mse=fidelity_values["mse"], psnr=fidelity_values["psnr"],
            similarity=fidelity_values["similarity"], device=device, versions=versions,
            seconds=(finished - started).total_seconds(), started_at=started, finished_at=finished,
            extra=extra, samples=self._samples(images),
        )

    def _repeat_latency(self, plan: Plan, pass_s: float) -> Any:
        """`spec.latency_repeats` timed generations of the first batch (`evaluators.latency`)."""
        count = min(self.spec.batch_size, self.spec.num_images)
        seeds, conditions = self.spec.seeds(count), self.subject.conditions(self.spec, count)
        with torch.no_grad():
            return measure_latency(self.device,
                                   lambda: self.subject.generate_batch(plan, seeds, conditions),
                                   count, self.spec.latency_repeats, pass_s)

    def _samples(self, images: torch.Tensor) -> SampleSheet:
        """The sheet of the first images (of the spec's first seeds and conditions)."""
        n = min(SAMPLE_COUNT, images.shape[0])
        return sample_sheet(images[:n], self.subject.conditions(self.spec, n), self.spec.seeds(n))


def evaluate_plan(model: str, plan: Plan, spec: EvalSpec, stage: str = "full",
                  **kwargs: Any) -> Measurement:
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
