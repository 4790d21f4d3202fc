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

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage import lease, rows
from storage.engine import WRITE, create_store_engine
from storage.errors import DamagedStoreError, NoStoreError, StoreError, damaged_message
from storage.lease import LeaseInfo
from storage.models import Candidate, Export, Study
from storage.pareto import Point
from storage.queries import StoreQueries
from storage.records import (
    CandidateInfo,
    EvaluationInfo,
    EvaluationRecord,
    ExportInfo,
    SampleImages,
    StudyInfo,
    StudyRef,
    StudySummary,
    study_name,
)
from storage.schema import ensure_schema
from storage.studies import candidate_labels, check_same_study, check_study_name
from storage.url import redact, resolve_url


class Store(StoreQueries):
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

    # ---- queries: see storage.queries.StoreQueries

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
        self, study: StudyRef, point: Point, path: str | os.PathLike[str], constraint: str,
        plan_text: str | None = None,
    ) -> ExportInfo:
        """Write the point's plan JSON (or `plan_text`: the same plan with other notes) to `path`
        and record the export, both or neither."""
        text = plan_text if plan_text is not None else self.plan_json(study, point.plan_hash)
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
