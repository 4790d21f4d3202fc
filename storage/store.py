"""The repository API: studies, candidate plans, evaluations, fronts and exports.

Every method opens its own session; every write is one transaction (`with session.begin()`), so a
crash mid-write leaves nothing half-written. Results are frozen dataclasses, not ORM objects.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage import lease, objectives, rows
from storage.choose import check_one_constraint, choose
from storage.engine import WRITE, create_store_engine
from storage.errors import DamagedStoreError, NoStoreError, StoreError, damaged_message
from storage.lease import LeaseInfo
from storage.models import Candidate, Evaluation, Export, Study
from storage.pareto import Point, merge_duplicates, pareto_front
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
from storage.schema import ensure_schema
from storage.studies import check_same_study
from storage.url import redact, resolve_url

FULL_METHOD = "full"  # the candidate method of the uncompressed model's plan


class Store:
    """The edgediff store on one database; open with `Store.open(url)`, use as a context manager."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._url = url
        self._read_sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(engine.execution_options(**{WRITE: True}), expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """Open the store at `url` ($EDGEDIFF_DB, else DEFAULT_URL), upgrading its schema to head.

        create=False (read-only commands) refuses a database without an edgediff store instead of
        creating one. Every problem is a one-line StoreError, raised before anything is written.
        """
        resolved = resolve_url(url)
        engine = create_store_engine(resolved, create=create)
        try:
            ensure_schema(engine, resolved, create=create)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, resolved)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return redact(self._url)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        """A read session; a row the columns' types cannot decode (text where JSON or a time
        belongs, ...) is a DamagedStoreError, not a traceback."""
        try:
            with self._read_sessions() as session:
                yield session
        except (ValueError, TypeError, KeyError) as err:
            raise DamagedStoreError(damaged_message(self.url, err)) from err

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._write_sessions() as session, session.begin():
            yield session

    # ---- studies

    def create_study(
        self,
        name: str,
        *,
        model: str,
        spec_json: str,
        spec_hash: str,
        model_fingerprint: str | None = None,
        objectives: Sequence[str] = ("macs", "fid"),
        method: str = "manual",
        notes: str | None = None,
    ) -> StudyInfo:
        """A new study; StoreError if the name is taken."""
        new = _new_study(name, model, spec_json, spec_hash, model_fingerprint, objectives, method, notes)
        with self._writing() as session:
            row, created = rows.insert_or_get(session, new, select(Study).where(Study.name == name))
            if not created:
                raise StoreError(f"study '{name}' already exists; pass another --study name")
            return rows.study_info(row)

    def get_or_create_study(
        self,
        name: str,
        *,
        model: str,
        spec_json: str,
        spec_hash: str,
        model_fingerprint: str | None = None,
        objectives: Sequence[str] = ("macs", "fid"),
        method: str = "manual",
        notes: str | None = None,
    ) -> tuple[StudyInfo, bool]:
        """The study called `name` and whether it was created now.

        An existing study must have the same model and spec hash (a study compares plans under one
        spec); otherwise StoreError naming the difference. Its other fields are left as they are.
        """
        new = _new_study(name, model, spec_json, spec_hash, model_fingerprint, objectives, method, notes)
        with self._writing() as session:
            row, created = rows.insert_or_get(session, new, select(Study).where(Study.name == name))
            if not created:
                check_same_study(row, model=model, spec_hash=spec_hash)
            return rows.study_info(row), created

    def find_study(self, name: str) -> StudyInfo | None:
        """The study called `name`, or None."""
        with self._reading() as session:
            row = session.scalars(select(Study).where(Study.name == name)).first()
            return None if row is None else rows.study_info(row)

    def get_study(self, name: str) -> StudyInfo:
        """The study called `name`; StoreError listing the known studies if there is none."""
        with self._reading() as session:
            return rows.study_info(rows.study_row(session, name))

    def list_studies(self) -> list[StudySummary]:
        """Every study with its counts and best values, oldest first."""
        with self._reading() as session:
            return rows.summary_rows(session)

    # ---- the study's lease (storage.lease: one driver per study)

    def acquire_lease(self, study: str, holder: str, *, ttl_s: float = lease.LEASE_TTL_S) -> LeaseInfo:
        """Take the study's lease for `holder`; LeaseHeldError naming the live holder otherwise."""
        with self._writing() as session:
            return lease.acquire(session, study, holder, ttl_s=ttl_s)

    def renew_lease(self, study: str, holder: str) -> bool:
        """Renew `holder`'s lease; False if another driver took it over."""
        with self._writing() as session:
            return lease.renew(session, study, holder)

    def release_lease(self, study: str, holder: str) -> None:
        with self._writing() as session:
            lease.release(session, study, holder)

    def lease_of(self, study: str) -> LeaseInfo | None:
        with self._reading() as session:
            return lease.find(session, study)

    # ---- candidates

    def add_candidate(
        self, study: StudyRef, *, plan_json: str, plan_hash: str, method: str, label: str | None = None
    ) -> CandidateInfo:
        """Add a plan proposed by `method`; adding the same (study, method, plan_hash) again returns
        the existing candidate unchanged."""
        with self._writing() as session:
            row = _put_candidate(session, rows.study_row(session, study), plan_json, plan_hash, method, label)
            return rows.candidate_info(row, study_name(study))

    def add_candidate_label(
        self, study: StudyRef, *, plan_hash: str, method: str, label: str
    ) -> CandidateInfo:
        """Add `label` to the candidate's labels (comma separated; a plan that several proposals of
        one method led to, e.g. two greedy thresholds giving the same plan, lists them all)."""
        with self._writing() as session:
            study_row = rows.study_row(session, study)
            row = session.scalars(rows.candidate_query(study_row.id, method, plan_hash)).first()
            if row is None:
                raise StoreError(
                    f"study '{study_name(study)}' has no {method} candidate with plan '{plan_hash[:12]}'"
                )
            labels = candidate_labels(row.label)
            if label not in labels:
                row.label = ", ".join([*labels, label])[:200]
            return rows.candidate_info(row, study_name(study))

    def candidates(
        self, study: StudyRef, method: str | None = None, *, plan_prefix: str | None = None
    ) -> list[CandidateInfo]:
        """The study's candidates (of one method if given; whose plan hash starts with `plan_prefix`
        if given), oldest first."""
        with self._reading() as session:
            query = select(Candidate).where(Candidate.study_id == rows.study_row(session, study).id)
            if method is not None:
                query = query.where(Candidate.method == method)
            if plan_prefix is not None:
                query = query.where(Candidate.plan_hash.startswith(plan_prefix, autoescape=True))
            name = study_name(study)
            return [rows.candidate_info(row, name) for row in session.scalars(query.order_by(Candidate.id))]

    def methods(self, study: StudyRef) -> list[str]:
        """The distinct methods that proposed the study's candidates, sorted."""
        with self._reading() as session:
            study_id = rows.study_row(session, study).id
            query = select(Candidate.method).distinct().where(Candidate.study_id == study_id)
            return sorted(session.scalars(query))

    # ---- evaluations

    def find_evaluation(
        self, *, model: str, spec_hash: str, plan_hash: str, stage: str = "full"
    ) -> EvaluationInfo | None:
        """The evaluation with this key (ok or failed), or None if the plan was never evaluated."""
        with self._reading() as session:
            row = session.scalars(rows.evaluation_query(model, spec_hash, plan_hash, stage)).one_or_none()
            return None if row is None else rows.evaluation_info(row)

    def record_evaluation(
        self, record: EvaluationRecord, samples: SampleImages | None = None
    ) -> EvaluationInfo:
        """Record an evaluation; an ok one with the same key is kept and returned unchanged, a failed
        one is replaced by `record`. The `samples` of an ok record are kept in the same transaction
        unless the plan has samples already (see `samples`)."""
        with self._writing() as session:
            evaluation = rows.put_evaluation(session, record)
            rows.put_samples(session, record, samples)
            return rows.evaluation_info(evaluation)

    def record_candidate_evaluation(
        self,
        study: StudyRef,
        *,
        plan_json: str,
        plan_hash: str,
        method: str,
        label: str | None = None,
        record: EvaluationRecord,
        samples: SampleImages | None = None,
    ) -> tuple[CandidateInfo, EvaluationInfo]:
        """Add the candidate and record its evaluation (and the samples of an ok one, as
        `record_evaluation` does) in one transaction (all or nothing)."""
        with self._writing() as session:
            study_row = rows.study_row(session, study)
            _check_record_fits(plan_hash, study_row, record)
            candidate = _put_candidate(session, study_row, plan_json, plan_hash, method, label)
            evaluation = rows.put_evaluation(session, record)
            rows.put_samples(session, record, samples)
            return rows.candidate_info(candidate, study_name(study)), rows.evaluation_info(evaluation)

    def samples(self, study: StudyRef, plan_hash: str) -> SampleImages | None:
        """The sample images of one of the study's plans under its model and spec hash, or None.

        One sheet per plan: the first images of its first ok evaluation (a full pass with more
        images than the screen before it replaces the screen's), on the same seeds as every other
        plan of the study, the uncompressed model's (method "full") included.
        """
        with self._reading() as session:
            row = rows.study_row(session, study)
            found = session.scalars(rows.samples_query(row.model, row.spec_hash, plan_hash)).one_or_none()
            return None if found is None else rows.samples_info(found)

    # ---- queries

    def points(
        self,
        study: StudyRef,
        *,
        method: str | None = None,
        stage: str = "full",
        plan_hash: str | None = None,
        plan_hashes: Sequence[str] | None = None,
    ) -> list[Point]:
        """Every plan of the study (proposed by `method` if given; only the plan `plan_hash`, or
        the plans `plan_hashes`, if given) with an ok evaluation at `stage`, one point per plan,
        sorted by macs, fid, plan_hash."""
        wanted = None if plan_hashes is None else sorted(set(plan_hashes))
        with self._reading() as session:
            rows.study_row(session, study)  # StoreError for an unknown study
            query = (
                rows.evaluated_join(select(*rows.POINT_COLUMNS), study_name(study))
                .where(Evaluation.stage == stage, Evaluation.status == "ok")
                .order_by(Candidate.id)
            )
            if method is not None:
                query = query.where(Candidate.method == method)
            if plan_hash is not None:
                query = query.where(Candidate.plan_hash == plan_hash)
            if wanted is None:
                found = list(session.execute(query))
            else:  # a few hundred hashes per statement; candidate order kept across them
                found = [row for chunk in objectives.chunks(wanted)
                         for row in session.execute(query.where(Candidate.plan_hash.in_(chunk)))]
                found.sort(key=lambda row: row.candidate_id)
            points = merge_duplicates(map(rows.point, found))
        return sorted(points, key=_point_order)

    def objectives(self, study: StudyRef, *, stage: str = "full") -> objectives.Objectives:
        """(plan_hash, method, macs, fid) of every candidate with an ok evaluation at `stage` whose
        MACs are known (fid None if it was not a number): the few columns a plot of every plan
        needs (see `storage.objectives`)."""
        with self._reading() as session:
            rows.study_row(session, study)
            return objectives.objective_rows(session, study_name(study), stage=stage)

    def progress(self, study: StudyRef) -> list[tuple[Any, ...]]:
        """What a hypervolume curve needs of every candidate's evaluations, in the order they were
        done (see `storage.objectives.progress_rows`)."""
        with self._reading() as session:
            rows.study_row(session, study)
            return objectives.progress_rows(session, study_name(study))

    def outcomes(self, study: StudyRef, method: str | None = None) -> list[HistoryEntry]:
        """Every candidate of the study (of one method if given) with each of its evaluations under
        the study's model and spec hash (both stages, ok and failed), in the order they finished
        (unfinished last), then by evaluation id and candidate id. One query; a plan that several
        methods proposed appears once per candidate, a candidate never evaluated not at all."""
        with self._reading() as session:
            found = rows.outcomes(session, study_name(study), method)
            if not found:
                rows.study_row(session, study)  # StoreError for an unknown study
            return found

    def evaluated_marker(self, study: StudyRef) -> str:
        """A short text that changes whenever `outcomes(study)` would (one aggregate query): a page
        showing the study asks for it to know when to redraw."""
        with self._reading() as session:
            rows.study_row(session, study)  # StoreError for an unknown study
            return rows.evaluated_marker(session, study_name(study))

    def front(self, study: StudyRef, *, method: str | None = None, stage: str = "full") -> list[Point]:
        """The study's MACs/FID Pareto front (of one method's candidates if given). The database
        narrows the plans down to the few that can be on it (`objectives.front_superset`); only
        their points are read."""
        with self._reading() as session:
            rows.study_row(session, study)
            hashes = objectives.front_superset(session, study_name(study), method=method, stage=stage)
        if not hashes:
            return []
        return pareto_front(self.points(study, method=method, stage=stage, plan_hashes=hashes))

    def full_model_point(self, study: StudyRef, points: Sequence[Point] | None = None) -> Point | None:
        """The point of the uncompressed model's plan (the first candidate of method "full" with an
        ok full-stage evaluation), or None; `points`: the study's `points()`, if already read (else
        only the full model's plans are read)."""
        by_hash = None if points is None else {p.plan_hash: p for p in points}
        for candidate in self.candidates(study, method=FULL_METHOD):
            if by_hash is None:
                found = self.points(study, plan_hash=candidate.plan_hash)
                if found:
                    return found[0]
            elif candidate.plan_hash in by_hash:
                return by_hash[candidate.plan_hash]
        return None

    def best(
        self,
        study: StudyRef,
        *,
        max_fid: float | None = None,
        fid_within: float | None = None,
        max_macs: float | None = None,
        method: str | None = None,
    ) -> Point:
        """The plan chosen by exactly one constraint.

        max_fid: the cheapest plan with fid <= max_fid; fid_within: the cheapest with fid <= the full
        model's fid + fid_within; max_macs: the lowest-fid plan with macs <= max_macs. Ties go to the
        lower fid (resp. macs), then the plan hash. StoreError if no plan satisfies the constraint.
        """
        check_one_constraint(max_fid=max_fid, fid_within=fid_within, max_macs=max_macs)
        full = None
        if fid_within is not None:
            full = self.full_model_point(study)
            if full is None or full.quality is None:
                raise StoreError(
                    f"study '{study_name(study)}' has no evaluation of the full (uncompressed) plan "
                    "to compare "
                    "--fid-within with; evaluate the full plan first"
                )
        with self._reading() as session:  # the few plans `choose` can pick or name (see there)
            rows.study_row(session, study)
            hashes = objectives.best_superset(
                session, study_name(study), method=method, max_fid=max_fid, fid_within=fid_within,
                full_quality=None if full is None else full.quality, max_macs=max_macs,
            )
        points = self.points(study, method=method, plan_hashes=hashes) if hashes else []
        where = f"study '{study_name(study)}'" + ("" if method is None else f" (method {method})")
        return choose(
            points,
            where=where,
            max_fid=max_fid,
            fid_within=fid_within,
            full=full,
            max_macs=max_macs,
        )

    def plan_json(self, study: StudyRef, plan_hash: str) -> str:
        """The plan file text of one of the study's plans."""
        with self._reading() as session:
            study_id = rows.study_row(session, study).id
            query = select(Candidate.plan_json).where(
                Candidate.study_id == study_id, Candidate.plan_hash == plan_hash
            )
            text = session.scalars(query.order_by(Candidate.id).limit(1)).first()
        if text is None:
            raise StoreError(
                f"study '{study_name(study)}' has no plan with hash '{plan_hash}'; pick one of its points"
            )
        return text

    def export_plan(
        self, study: StudyRef, point: Point, path: str | os.PathLike[str], constraint: str
    ) -> ExportInfo:
        """Write the point's plan JSON to `path` and record the export, both or neither."""
        text = self.plan_json(study, point.plan_hash)
        target = Path(path).expanduser().absolute()
        with self._writing() as session:
            row = Export(
                study_id=rows.study_row(session, study).id,
                plan_hash=point.plan_hash,
                path=str(target),
                constraint=constraint,
            )
            session.add(row)
            session.flush()
            _write_atomically(target, text)  # last step before COMMIT: a failure rolls the row back
            return rows.export_info(row, study_name(study))

    def exports(self, study: StudyRef) -> list[ExportInfo]:
        """The study's exports, oldest first."""
        with self._reading() as session:
            query = select(Export).where(Export.study_id == rows.study_row(session, study).id)
            name = study_name(study)
            return [rows.export_info(row, name) for row in session.scalars(query.order_by(Export.id))]


def find_existing_study(url: str | None, name: str) -> StudyInfo | None:
    """The study called `name` if the store at `url` exists and has it; a store that does not
    exist yet is not created, an unreachable one raises StoreError."""
    try:
        with Store.open(url, create=False) as store:
            return store.find_study(name)
    except NoStoreError:
        return None


def check_study_name(name: str) -> None:
    """StoreError unless `name` can name a study: printable, not empty, no '/' or '\\' and not '.'
    or '..' (a study is a path segment of the dashboard's URLs), no space at either end, at most
    200 characters. Studies stored under other names before this check still open by name."""
    if not name.strip():
        raise StoreError("a study name cannot be empty; pass --study NAME")
    if len(name) > 200:
        raise StoreError(f"study name '{name[:40]}...' is {len(name)} characters long; use at most 200")
    if not name.isprintable():
        shown = "".join(c if c.isprintable() else "_" for c in name)
        raise StoreError(f"study name {name!r} holds a control character (a newline, tab, ...); "
                         f"use printable characters, e.g. '{shown}'")
    for bad in ("/", "\\"):
        if bad in name:
            raise StoreError(f"study name '{name}' contains '{bad}'; choose a name without it, "
                             f"e.g. '{name.replace(bad, '-')}'")
    if set(name) == {"."}:
        raise StoreError(f"study name '{name}' is only dots, which a browser reads as a folder; "
                         "choose a name with letters or digits")
    if name != name.strip():
        raise StoreError(f"study name '{name}' starts or ends with a space; use '{name.strip()}'")


def candidate_labels(label: str | None) -> list[str]:
    """The labels of a candidate (see `Store.add_candidate_label`)."""
    return [part for part in (label or "").split(", ") if part]


def _point_order(point: Point) -> tuple[bool, float, bool, float, str]:
    return (point.macs is None, point.macs or 0, point.fid is None, point.fid or 0.0, point.plan_hash)


def _new_study(
    name: str,
    model: str,
    spec_json: str,
    spec_hash: str,
    model_fingerprint: str | None,
    objectives: Sequence[str],
    method: str,
    notes: str | None,
) -> Study:
    check_study_name(name)
    return Study(
        name=name,
        model=model,
        model_fingerprint=model_fingerprint,
        spec_json=spec_json,
        spec_hash=spec_hash,
        objectives=list(objectives),
        method=method,
        notes=notes,
    )


def _check_record_fits(plan_hash: str, study: Study, record: EvaluationRecord) -> None:
    theirs = (record.model, record.spec_hash, record.plan_hash)
    if theirs != (study.model, study.spec_hash, plan_hash):
        raise ValueError(
            f"evaluation of model/spec/plan {theirs} does not belong to candidate {plan_hash} "
            f"of study '{study.name}' (model {study.model}, spec {study.spec_hash})"
        )


def _put_candidate(
    session: Session, study: Study, plan_json: str, plan_hash: str, method: str, label: str | None
) -> Candidate:
    new = Candidate(study_id=study.id, plan_hash=plan_hash, plan_json=plan_json, method=method, label=label)
    candidate, _ = rows.insert_or_get(session, new, rows.candidate_query(study.id, method, plan_hash))
    return candidate


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as err:
        with suppress(OSError):
            temporary.unlink()
        raise StoreError(
            f"cannot write the plan to '{path}': {err.strerror or err}; choose a writable path"
        ) from None
