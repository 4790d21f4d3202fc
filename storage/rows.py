"""Lookups and conversions shared by the Store's methods: ORM rows in, frozen dataclasses out."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import StoreError
from storage.models import Candidate, Evaluation, Export, Samples, Study
from storage.pareto import Point
from storage.records import (
    CandidateInfo,
    EvaluationInfo,
    EvaluationRecord,
    ExportInfo,
    HistoryEntry,
    SampleImages,
    StudyInfo,
    StudyRef,
    StudySummary,
    study_name,
)

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(EvaluationRecord))
_SAMPLE_FIELDS = tuple(f.name for f in dataclasses.fields(SampleImages))
_OUTCOME_COLUMNS = (  # what `outcomes` reads: plain columns, no plan text
    Candidate.id.label("candidate_id"),
    Candidate.plan_hash,
    Candidate.method,
    Candidate.created_at.label("proposed_at"),
    Evaluation.id.label("evaluation_id"),
    Evaluation.stage,
    Evaluation.status,
    Evaluation.macs_per_image,
    Evaluation.fid,
    Evaluation.started_at,
    Evaluation.finished_at,
    Evaluation.extra,
)
_NAMES_SHOWN = 10


def study_row(session: Session, study: StudyRef) -> Study:
    """The study called `study` (by id when it is a resolved `StudyInfo`), or a StoreError listing
    the known ones."""
    if isinstance(study, StudyInfo):
        row = session.get(Study, study.id)
    else:
        row = session.scalars(select(Study).where(Study.name == study)).one_or_none()
    if row is not None:
        return row
    name = study_name(study)
    names = list(session.scalars(select(Study.name).order_by(Study.name).limit(_NAMES_SHOWN + 1)))
    if not names:
        raise StoreError(
            f"unknown study '{name}': the store has no studies yet; run 'edgediff evaluate' to create one"
        )
    shown = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
    raise StoreError(f"unknown study '{name}': known studies are {shown}; 'edgediff studies' lists them")


def insert_or_get(session: Session, row: Any, existing: Select[Any]) -> tuple[Any, bool]:
    """Insert `row` in a savepoint; if a unique key clashes (another process won), the existing row."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return session.scalars(existing).one(), False
    return row, True


def candidate_query(study_id: int, method: str, plan_hash: str) -> Select[tuple[Candidate]]:
    return select(Candidate).where(
        Candidate.study_id == study_id, Candidate.method == method, Candidate.plan_hash == plan_hash
    )


def evaluation_query(model: str, spec_hash: str, plan_hash: str, stage: str) -> Select[tuple[Evaluation]]:
    return select(Evaluation).where(
        Evaluation.model == model,
        Evaluation.spec_hash == spec_hash,
        Evaluation.plan_hash == plan_hash,
        Evaluation.stage == stage,
    )


def put_evaluation(session: Session, record: EvaluationRecord) -> Evaluation:
    """Record `record` unless an ok evaluation with its key exists (returned unchanged); a failed one
    is replaced. The row is locked while deciding (PostgreSQL), so a concurrent ok result is kept."""
    query = evaluation_query(record.model, record.spec_hash, record.plan_hash, record.stage)
    row = session.scalars(query.with_for_update()).one_or_none()
    values = {name: getattr(record, name) for name in _RECORD_FIELDS}
    if row is None:
        row, inserted = insert_or_get(session, Evaluation(**values), query)
        if inserted:
            return row
    if row.status == "ok":
        return row
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()
    return row


def samples_query(model: str, spec_hash: str, plan_hash: str) -> Select[tuple[Samples]]:
    return select(Samples).where(
        Samples.model == model, Samples.spec_hash == spec_hash, Samples.plan_hash == plan_hash
    )


def put_samples(session: Session, record: EvaluationRecord, samples: SampleImages | None) -> None:
    """Keep the sample sheet of an ok `record`. A plan's first sheet stays (image k has the same seed
    at every stage), unless this one has more images: a full pass after a screen of fewer images."""
    if samples is None or record.status != "ok":
        return
    key = (samples.model, samples.spec_hash, samples.plan_hash)
    if key != (record.model, record.spec_hash, record.plan_hash):
        raise ValueError(
            f"samples of model/spec/plan {key} do not belong to the evaluation of "
            f"{(record.model, record.spec_hash, record.plan_hash)}"
        )
    query = samples_query(*key)
    row = session.scalars(query.with_for_update()).one_or_none()
    values = {name: getattr(samples, name) for name in _SAMPLE_FIELDS}
    values.update(captions=list(samples.captions), seeds=list(samples.seeds))
    if row is None:
        row, inserted = insert_or_get(session, Samples(**values), query)
        if inserted:
            return
    if samples.count > row.count:
        for name, value in values.items():
            setattr(row, name, value)
        session.flush()


def evaluated_join(query: Select[Any], study: str) -> Select[Any]:
    """`query` over the study's candidates joined with their evaluations: those with the candidate's
    plan hash under the study's model and spec hash (the one rule, for pairs, markers and points)."""
    return (
        query.select_from(Candidate)
        .join(Study, Study.id == Candidate.study_id)
        .join(
            Evaluation,
            and_(
                Evaluation.plan_hash == Candidate.plan_hash,
                Evaluation.model == Study.model,
                Evaluation.spec_hash == Study.spec_hash,
            ),
        )
        .where(Study.name == study)
    )


def evaluated_marker(session: Session, study: str) -> str:
    """A URL-safe text that changes whenever `outcomes` would: the count of pairs and of ok
    ones (a pair added; a failure replaced in place by an ok retry), the last evaluation id (an
    evaluation added) and the last finish time."""
    ok = func.sum(case((Evaluation.status == "ok", 1), else_=0))
    query = evaluated_join(
        select(func.count(), ok, func.max(Evaluation.id), func.max(Evaluation.finished_at)), study
    )
    count, ok_count, last_id, last_finished = session.execute(query).one()
    stamp = "".join(ch for ch in str(last_finished or "") if ch.isdigit())
    return f"{count}-{ok_count or 0}-{last_id or 0}-{stamp}"


def outcomes(session: Session, study: str, method: str | None) -> list[HistoryEntry]:
    """Every candidate of the study called `study` (of `method` if given) with each of its
    evaluations under the study's model and spec hash, by evaluation finish time (unfinished last),
    evaluation id, candidate id. One statement (the study's row joined in) over the few columns an
    HistoryEntry holds: reading plans and whole evaluations took most of the time at 100,000 of them."""
    query = evaluated_join(select(*_OUTCOME_COLUMNS), study).order_by(
        Evaluation.finished_at.asc().nulls_last(), Evaluation.id, Candidate.id
    )
    if method is not None:
        query = query.where(Candidate.method == method)
    found = []
    for row in session.execute(query):
        values = row._asdict()  # the columns are labelled with HistoryEntry's field names
        extra = values.pop("extra") or {}
        found.append(HistoryEntry(**values, passed_screen=extra.get("passed_screen")))
    return found


def summary_rows(session: Session) -> list[StudySummary]:
    """Every study with its counts and best values, oldest first (three aggregate queries)."""
    candidates = dict(
        session.execute(select(Candidate.study_id, func.count()).group_by(Candidate.study_id)).all()
    )
    plans = select(Candidate.study_id, Candidate.plan_hash).distinct().subquery()
    ok = Evaluation.status == "ok"
    ok_full = and_(ok, Evaluation.stage == "full")
    aggregates = select(
        Study.id,
        func.sum(case((ok, 1), else_=0)),
        func.sum(case((Evaluation.status == "failed", 1), else_=0)),
        func.min(case((ok_full, Evaluation.fid))),
        func.min(case((ok_full, Evaluation.macs_per_image))),
    )
    aggregates = (
        aggregates.join(plans, plans.c.study_id == Study.id)
        .join(
            Evaluation,
            and_(
                Evaluation.model == Study.model,
                Evaluation.spec_hash == Study.spec_hash,
                Evaluation.plan_hash == plans.c.plan_hash,
            ),
        )
        .group_by(Study.id)
    )
    stats = {study_id: rest for study_id, *rest in session.execute(aggregates)}
    summaries = []
    for study in session.scalars(select(Study).order_by(Study.created_at, Study.id)):
        n_ok, n_failed, best_fid, min_macs = stats.get(study.id, (0, 0, None, None))
        summaries.append(
            StudySummary(
                name=study.name,
                model=study.model,
                method=study.method,
                created_at=study.created_at,
                candidates=candidates.get(study.id, 0),
                evaluations_ok=int(n_ok or 0),
                evaluations_failed=int(n_failed or 0),
                best_fid=best_fid,
                min_macs=None if min_macs is None else int(min_macs),
            )
        )
    return summaries


def _info(cls: type[Any], row: Any, **given: Any) -> Any:
    """A frozen dataclass `cls` from an ORM row: every field read from the row's attribute of the
    same name, except those `given`."""
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls) if f.name not in given}
    return cls(**values, **given)


def study_info(row: Study) -> StudyInfo:
    return _info(StudyInfo, row, objectives=tuple(row.objectives))


def candidate_info(row: Candidate, study: str) -> CandidateInfo:
    return _info(CandidateInfo, row, study=study)


def evaluation_info(row: Evaluation) -> EvaluationInfo:
    return _info(EvaluationInfo, row, versions=dict(row.versions), extra=dict(row.extra))


def samples_info(row: Samples) -> SampleImages:
    captions, seeds = tuple(row.captions), tuple(row.seeds)
    return _info(SampleImages, row, png=bytes(row.png), captions=captions, seeds=seeds)


def export_info(row: Export, study: str) -> ExportInfo:
    return _info(ExportInfo, row, study=study)


# The quality objective's value and paired difference with their intervals, in an evaluation's
# extra["quality"] (evaluators.metrics.QualityResult.to_dict); absent for older evaluations.
INTERVAL_KEYS = ("value", "low", "high", "delta", "delta_low", "delta_high")

# What a point needs, as plain columns: loading whole rows (a candidate's plan JSON included) made
# the points of a 100,000-evaluation study take seconds.
POINT_COLUMNS = (
    Candidate.id.label("candidate_id"),
    Candidate.plan_hash,
    Candidate.method,
    Candidate.label,
    Evaluation.id.label("evaluation_id"),
    Evaluation.macs_per_image,
    Evaluation.fid,
    Evaluation.latency_per_image_s,
    Evaluation.mse,
    Evaluation.psnr,
    Evaluation.similarity,
    Evaluation.class_accuracy,
    *(Evaluation.extra[("quality", key)].as_float().label(f"quality_{key}") for key in INTERVAL_KEYS),
    Evaluation.extra[("quality", "objective")].as_string().label("quality_objective"),
    Evaluation.extra[("params", "params")].as_integer().label("params"),
    Evaluation.extra[("params", "skipped")].as_integer().label("params_skipped"),
)


def point(row: Any) -> Point:
    """One candidate's point from a row of POINT_COLUMNS; Store.points merges the candidates that
    share a plan."""
    return Point(
        plan_hash=row.plan_hash,
        macs=row.macs_per_image,
        fid=row.fid,
        candidate_ids=(row.candidate_id,),
        methods=(row.method,),
        labels=() if row.label is None else (row.label,),
        latency=row.latency_per_image_s,
        mse=row.mse,
        psnr=row.psnr,
        similarity=row.similarity,
        class_accuracy=row.class_accuracy,
        evaluation_id=row.evaluation_id,
        objective=row.quality_objective or "fid",
        quality=row.quality_value,
        quality_low=row.quality_low,
        quality_high=row.quality_high,
        delta=row.quality_delta,
        delta_low=row.quality_delta_low,
        delta_high=row.quality_delta_high,
        params=row.params,
        params_skipped=row.params_skipped,
    )
