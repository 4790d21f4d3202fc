"""What the store takes and gives back: plain frozen dataclasses, never live ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.models import utc_now

STAGES = ("screen", "full")  # screen: a cheap first look; full: the measurement fronts are built on
RUNG_PREFIX = "rung-"  # "rung-8": a multi-fidelity search's lower rung, on the spec's first 8 images


def is_rung_stage(stage: str) -> bool:
    """Whether `stage` names a lower rung ("rung-<images>", images a positive integer)."""
    count = stage[len(RUNG_PREFIX):]
    return stage.startswith(RUNG_PREFIX) and count.isdigit() and count[0] != "0" and len(stage) <= 20
STATUSES = ("ok", "failed")


@dataclass(frozen=True, kw_only=True)
class EvaluationRecord:
    """One measurement of a plan, to be recorded; keyed by (model, spec_hash, plan_hash, stage).

    Fields: `model` (name), `spec_hash` (the evaluation spec's hash), `plan_hash`, `stage` ("screen",
    "full", or a search's lower rung "rung-<images>"), `status` ("ok" or "failed", with `error`),
    `num_images`, `device`; cost:
    `macs_per_image`, `macs_per_generation`, `latency_per_image_s`; quality: `fid`, `mse`, `psnr`,
    `similarity`, `class_accuracy` (None when not measured); `versions` (library versions),
    `started_at` / `finished_at` (timezone-aware), `seconds`, `worker`, `extra` (JSON object).
    """

    model: str
    spec_hash: str
    plan_hash: str
    status: str
    num_images: int
    device: str
    stage: str = "full"
    macs_per_image: int | None = None
    macs_per_generation: int | None = None
    latency_per_image_s: float | None = None
    fid: float | None = None
    mse: float | None = None
    psnr: float | None = None
    similarity: float | None = None
    class_accuracy: float | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    seconds: float | None = None
    worker: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES and not is_rung_stage(self.stage):
            raise ValueError(f"evaluation stage {self.stage!r} is not one of {', '.join(STAGES)} "
                             f"or {RUNG_PREFIX}<images>")
        if self.status not in STATUSES:
            raise ValueError(f"evaluation status {self.status!r} is not one of {', '.join(STATUSES)}")
        for name in ("started_at", "finished_at"):
            when = getattr(self, name)
            if when is not None and when.tzinfo is None:
                raise ValueError(f"evaluation {name} {when} has no time zone; use datetime.now(timezone.utc)")


@dataclass(frozen=True, kw_only=True)
class EvaluationInfo(EvaluationRecord):
    """A recorded evaluation: `id` plus every EvaluationRecord field."""

    id: int


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One evaluation of one of a study's candidates, with what a history of the search needs:
    the candidate (`candidate_id`, `plan_hash`, `method`, `proposed_at`) and its evaluation
    (`evaluation_id`, `stage`, `status`, `macs_per_image`, `fid`, `started_at`, `finished_at`,
    and `passed_screen`: the screen's verdict, None where the evaluation records none)."""

    candidate_id: int
    plan_hash: str
    method: str
    proposed_at: datetime
    evaluation_id: int
    stage: str
    status: str
    macs_per_image: int | None
    fid: float | None
    started_at: datetime | None
    finished_at: datetime | None
    passed_screen: bool | None


@dataclass(frozen=True, kw_only=True)
class SampleImages:
    """The first images of a plan's evaluation as one PNG grid; keyed by (model, spec_hash, plan_hash).

    Fields: `png` (the grid's bytes: `columns` cells per row in image order, a 1-pixel white pad
    between and around them), `count` (images), `width` / `height` (one cell, in pixels),
    `captions` (each image's condition as text: class id, prompt or "") and `seeds` (each image's
    seed; image k of every plan under a spec has the same one).
    """

    model: str
    spec_hash: str
    plan_hash: str
    png: bytes
    count: int
    columns: int
    width: int
    height: int
    captions: tuple[str, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.captions) != self.count or len(self.seeds) != self.count:
            raise ValueError(
                f"sample sheet of {self.count} images has {len(self.captions)} captions and "
                f"{len(self.seeds)} seeds; give one of each per image"
            )


@dataclass(frozen=True, kw_only=True)
class StudyInfo:
    """A study: `id`, `name`, `model`, `model_fingerprint`, `spec_json`, `spec_hash`,
    `objectives`, `method`, `created_at` (UTC), `notes`."""

    id: int
    name: str
    model: str
    model_fingerprint: str | None
    spec_json: str
    spec_hash: str
    objectives: tuple[str, ...]
    method: str
    created_at: datetime
    notes: str | None


# A study by name, or as resolved once (`StudyInfo`): the store then reads its row by id.
StudyRef = str | StudyInfo


def study_name(study: StudyRef) -> str:
    return study if isinstance(study, str) else study.name


@dataclass(frozen=True, kw_only=True)
class StudySummary:
    """A line of the study list: `name`, `model`, `method`, `created_at`, `candidates` (count),
    `evaluations_ok` / `evaluations_failed` (distinct evaluations of its plans, any stage), and the
    best `best_fid` and `min_macs` among its ok full-stage evaluations (None when there are none)."""

    name: str
    model: str
    method: str
    created_at: datetime
    candidates: int
    evaluations_ok: int
    evaluations_failed: int
    best_fid: float | None
    min_macs: int | None


@dataclass(frozen=True, kw_only=True)
class CandidateInfo:
    """A candidate plan of a study: `id`, `study` (name), `plan_hash`, `plan_json`, `method`,
    `label`, `created_at` (UTC)."""

    id: int
    study: str
    plan_hash: str
    plan_json: str
    method: str
    label: str | None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ExportInfo:
    """A plan written to a file: `id`, `study` (name), `plan_hash`, `path` (absolute), `constraint`
    (how it was chosen, e.g. "fid <= 25"), `created_at` (UTC)."""

    id: int
    study: str
    plan_hash: str
    path: str
    constraint: str
    created_at: datetime
