"""Candidate plans evaluated into the store: what was measured before is reused by hash, what is
new is measured and recorded (each evaluation in one transaction with its candidate and its
sample images).

    with Store.open(url) as store:
        study = open_study(store, "dit-manual", evaluator)
        outcome = evaluate_candidate(store, study, evaluator, plan, method="manual")
"""

from __future__ import annotations

import socket
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone

from evaluators.errors import EvaluatorError
from evaluators.evaluate import Evaluator, Measurement
from evaluators.plan import Plan
from storage import (
    FULL_METHOD,
    CandidateInfo,
    EvaluationInfo,
    EvaluationRecord,
    SampleImages,
    Store,
    StoreError,
    StudyInfo,
)


@dataclass(frozen=True)
class EvaluatedCandidate:
    """What `evaluate_candidate` did.

    Attributes:
        candidate: the study's candidate for the plan.
        evaluations: its evaluations, screen first when there is a screen.
        reused: True when nothing was computed (every needed evaluation was in the store).
    """

    candidate: CandidateInfo
    evaluations: tuple[EvaluationInfo, ...]
    reused: bool

    @property
    def final(self) -> EvaluationInfo:
        """The last stage reached (the full pass, or the screen that stopped the plan)."""
        return self.evaluations[-1]


def open_study(store: Store, name: str, evaluator: Evaluator, *, method: str = "manual",
               notes: str | None = None) -> StudyInfo:
    """The study `name` for the evaluator's model and spec (created if new); its uncompressed
    model's plan is a candidate of method "full", evaluated, so fronts and "within +X of the full
    model" have their reference."""
    evaluator.reference()  # a bad reference set or feature fails here, before the study exists
    study, _ = store.get_or_create_study(
        name, model=evaluator.model, spec_json=evaluator.spec.to_json(),
        spec_hash=evaluator.spec_hash, model_fingerprint=evaluator.full_plan.model.fingerprint,
        method=method, notes=notes,
    )
    evaluate_candidate(store, study, evaluator, evaluator.full_plan, method=FULL_METHOD,
                       label="uncompressed")
    return study


def evaluate_candidate(store: Store, study: StudyInfo, evaluator: Evaluator, plan: Plan, *,
                       method: str, label: str | None = None,
                       worker: str | None = None) -> EvaluatedCandidate:
    """Add `plan` to `study` as a candidate of `method` and make sure it is evaluated.

    Stored evaluations of the same (model, spec, plan) are reused, whichever study made them. A
    plan that does not fit the model raises PlanError and writes nothing; a failure while
    measuring is recorded as a failed evaluation and raised.
    """
    from evaluators.runtime import check_plan_fits

    check_plan_fits(evaluator.denoiser, plan)
    plan_hash, plan_json = plan.content_hash(), plan.to_json()
    stored = stored_evaluations(store, study, plan_hash, screened=bool(evaluator.spec.screen_images))
    if stored is not None:
        candidate = store.add_candidate(study, plan_json=plan_json, plan_hash=plan_hash,
                                        method=method, label=label)
        return EvaluatedCandidate(candidate, stored, reused=True)
    worker = worker or socket.gethostname()
    recorded: list[EvaluationInfo] = []
    candidate: list[CandidateInfo] = []

    def record(result: Measurement) -> None:  # each stage is stored as soon as it is measured
        cand, info = store.record_candidate_evaluation(
            study, plan_json=plan_json, plan_hash=plan_hash, method=method, label=label,
            record=to_record(result, worker), samples=samples_record(result))
        candidate[:] = [cand]
        recorded.append(info)

    started = datetime.now(timezone.utc)
    try:
        evaluator.evaluate_staged(plan, on_result=record)
    except (EvaluatorError, StoreError):
        raise  # bad input or an unreachable store: nothing to record
    except Exception as err:
        stage = "full" if recorded or not evaluator.spec.screen_images else "screen"
        record_failure(store, study, plan, method=method, label=label, stage=stage,
                       num_images=evaluator.spec.stage_images(stage), error=error_text(err),
                       device=str(evaluator.device), started=started, worker=worker)
        raise
    return EvaluatedCandidate(candidate[0], tuple(recorded), reused=False)


def record_failure(store: Store, study: StudyInfo, plan: Plan, *, method: str, label: str | None,
                   stage: str, num_images: int, error: str, device: str, started: datetime,
                   worker: str | None) -> tuple[CandidateInfo, EvaluationInfo]:
    """Store a failed measurement of `plan` at `stage` (a later attempt replaces it)."""
    failure = EvaluationRecord(
        model=study.model, spec_hash=study.spec_hash, plan_hash=plan.content_hash(), stage=stage,
        status="failed", num_images=num_images, device=device, error=error[:2000],
        started_at=started, finished_at=datetime.now(timezone.utc), worker=worker,
    )
    return store.record_candidate_evaluation(study, plan_json=plan.to_json(),
                                             plan_hash=plan.content_hash(), method=method,
                                             label=label, record=failure)


def stored_evaluations(store: Store, study: StudyInfo, plan_hash: str,
            screened: bool) -> tuple[EvaluationInfo, ...] | None:
    """The stored evaluations that make a new measurement unnecessary, or None."""
    def find(stage: str) -> EvaluationInfo | None:
        found = store.find_evaluation(model=study.model, spec_hash=study.spec_hash,
                                      plan_hash=plan_hash, stage=stage)
        return found if found is not None and found.status == "ok" else None

    full = find("full")
    screen = find("screen") if screened else None
    if full is not None:
        return (screen, full) if screen is not None else (full,)
    if screen is not None and screen.extra.get("passed_screen") is False:
        return (screen,)  # the plan was stopped at the screen: measuring again changes nothing
    return None


def to_record(result: Measurement, worker: str | None = None) -> EvaluationRecord:
    """An evaluator result as a store record."""
    return EvaluationRecord(
        model=result.model, spec_hash=result.spec_hash, plan_hash=result.plan_hash,
        stage=result.stage, status="ok", num_images=result.num_images, device=result.device,
        macs_per_image=result.macs_per_image, macs_per_generation=result.macs_per_generation,
        latency_per_image_s=result.latency_per_image_s, fid=result.fid, mse=result.mse,
        psnr=result.psnr, similarity=result.similarity, class_accuracy=result.class_accuracy,
        versions=dict(result.versions), started_at=result.started_at,
        finished_at=result.finished_at, seconds=result.seconds, worker=worker,
        extra=dict(result.extra),
    )


def samples_record(result: Measurement) -> SampleImages | None:
    """An evaluator result's sample sheet as a store record (None when it kept none)."""
    sheet = result.samples
    if sheet is None:
        return None
    return SampleImages(
        model=result.model, spec_hash=result.spec_hash, plan_hash=result.plan_hash, png=sheet.png,
        count=sheet.count, columns=sheet.columns, width=sheet.width, height=sheet.height,
        captions=sheet.captions, seeds=sheet.seeds,
    )


def error_text(err: BaseException) -> str:
    """The exception's type and message, as stored with a failed evaluation."""
    lines = traceback.format_exception_only(type(err), err)
    return "".join(lines).strip()[:2000]
