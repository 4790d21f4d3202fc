"""The SQL store of studies, candidate plans, evaluations and exports (SQLAlchemy); no torch.

`Store.open(url)` opens (and migrates) a SQLite file or PostgreSQL database; evaluations are keyed by
(model, spec hash, plan hash, stage) so identical ones are shared and never recomputed; `pareto`
holds the MACs/FID front. Problems a user can fix are one-line `StoreError`s.
"""

from storage.choose import describe_constraint
from storage.errors import NoStoreError, StoreError
from storage.lease import HEARTBEAT_S, LEASE_TTL_S, LeaseHeldError, LeaseInfo, new_holder
from storage.pareto import (
    COSTS,
    HV_FID_FACTOR,
    Point,
    hypervolume_2d,
    normalized_hypervolume,
    pareto_front,
    reference_point,
    study_cost,
)
from storage.queries import FULL_METHOD
from storage.records import (
    CandidateInfo,
    EvaluationInfo,
    EvaluationRecord,
    ExportInfo,
    HistoryEntry,
    SampleImages,
    StudyInfo,
    StudySummary,
)
from storage.schema import SCHEMA_HEAD
from storage.store import Store, find_existing_study
from storage.studies import candidate_labels, check_same_study, check_study_name
from storage.url import DEFAULT_URL, ENV_VAR, resolve_url

__all__ = [
    "COSTS",
    "DEFAULT_URL",
    "ENV_VAR",
    "FULL_METHOD",
    "HEARTBEAT_S",
    "HV_FID_FACTOR",
    "LEASE_TTL_S",
    "LeaseHeldError",
    "LeaseInfo",
    "new_holder",
    "SCHEMA_HEAD",
    "CandidateInfo",
    "EvaluationInfo",
    "EvaluationRecord",
    "ExportInfo",
    "candidate_labels",
    "check_same_study",
    "check_study_name",
    "find_existing_study",
    "NoStoreError",
    "HistoryEntry",
    "Point",
    "SampleImages",
    "Store",
    "StoreError",
    "StudyInfo",
    "StudySummary",
    "describe_constraint",
    "hypervolume_2d",
    "normalized_hypervolume",
    "pareto_front",
    "reference_point",
    "study_cost",
    "resolve_url",
]
