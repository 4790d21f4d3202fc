"""The store's tables (SQLAlchemy 2 typed ORM).

Every table name starts with `edgediff_`: Optuna's RDB storage shares the database and has its own
`studies`, `trials` and `alembic_version` tables. The schema itself is created by the Alembic
migrations in `storage/migrations/`, which must match these classes (a test compares them).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

HASH_LENGTH = 64  # sha256 hex digest

# Constraint and index names carry the (prefixed) table name, so they never clash with Optuna's.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps timezone-aware UTC times")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[int]: JSON(),
    }


class Study(Base):
    """One search over one model under one evaluation spec.

    Fields: `name` (unique), `model` (model name, e.g. "digits-dit"), `model_fingerprint` (hash of
    the model's class and config, if known), `spec_json` (the evaluation spec as JSON) and its
    `spec_hash`, `objectives` (e.g. ["macs", "fid"]), `method` (free text: "greedy", "optuna",
    "both", "manual", ...), `created_at` (UTC), `notes`.
    """

    __tablename__ = "edgediff_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model: Mapped[str] = mapped_column(String(200))
    model_fingerprint: Mapped[str | None] = mapped_column(String(HASH_LENGTH))
    spec_json: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    objectives: Mapped[list[str]] = mapped_column(default=lambda: ["macs", "fid"])
    method: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    notes: Mapped[str | None] = mapped_column(Text)


class Candidate(Base):
    """A plan proposed for a study by one method; unique per (study, method, plan_hash).

    Fields: `study_id`, `plan_hash` and `plan_json` (the plan file's text), `method` (who proposed
    it: "full" for the uncompressed model's plan, "greedy", "optuna", "manual", ...), `label`
    (e.g. "delta=0.05"), `created_at` (UTC). Its evaluation is found by hashes, not by a key.
    """

    __tablename__ = "edgediff_candidates"
    __table_args__ = (
        UniqueConstraint("study_id", "method", "plan_hash"),
        Index(None, "study_id", "plan_hash"),  # a study's candidates joined to evaluations by plan
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("edgediff_studies.id", ondelete="CASCADE"))
    plan_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), index=True)
    plan_json: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(50))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Evaluation(Base):
    """One measurement of one plan on one model under one spec, at one stage.

    Identified by (model, spec_hash, plan_hash, stage) and shared by every study and candidate with
    that model, spec and plan, so an identical evaluation is never recomputed. Fields: `stage`
    ("screen", "full" or a lower rung "rung-<images>"), `status` ("ok" or "failed", with `error`),
    cost (`macs_per_image`, `macs_per_generation`, `latency_per_image_s`), quality (`fid`, `mse`,
    `psnr`, `similarity`, `class_accuracy`), `num_images`, `device`, `versions` (library versions),
    `started_at`, `finished_at`, `seconds`, `worker`, and `extra` (anything else, as a JSON object).
    """

    __tablename__ = "edgediff_evaluations"
    __table_args__ = (
        UniqueConstraint("model", "spec_hash", "plan_hash", "stage"),
        Index(None, "model", "spec_hash", "stage", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    spec_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    plan_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    macs_per_image: Mapped[int | None] = mapped_column(BigInteger, index=True)
    macs_per_generation: Mapped[int | None] = mapped_column(BigInteger)
    latency_per_image_s: Mapped[float | None] = mapped_column(Float)
    fid: Mapped[float | None] = mapped_column(Float, index=True)
    mse: Mapped[float | None] = mapped_column(Float)
    psnr: Mapped[float | None] = mapped_column(Float)
    similarity: Mapped[float | None] = mapped_column(Float)
    class_accuracy: Mapped[float | None] = mapped_column(Float)
    num_images: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(100))
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    seconds: Mapped[float | None] = mapped_column(Float)
    worker: Mapped[str | None] = mapped_column(String(200))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Samples(Base):
    """The first images of a plan's evaluation as one PNG grid; one per (model, spec_hash, plan_hash).

    Kept with the plan's first ok evaluation (any stage: image k of every plan under a spec has the
    same seed, so the sheets of the screen and the full pass show the same images). Fields: `png`,
    `count` (images), `columns` (cells per row), `width` / `height` (one cell, pixels), `captions`
    (each image's condition as text), `seeds`, `created_at` (UTC).
    """

    __tablename__ = "edgediff_samples"
    __table_args__ = (UniqueConstraint("model", "spec_hash", "plan_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    spec_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    plan_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    png: Mapped[bytes] = mapped_column(LargeBinary)
    count: Mapped[int] = mapped_column(Integer)
    columns: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    captions: Mapped[list[str]] = mapped_column()
    seeds: Mapped[list[int]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Export(Base):
    """A plan written out for users: `study_id`, `plan_hash`, `path` (absolute), `constraint`
    (how it was chosen, e.g. "fid <= 25", "fid <= full + 2", "macs <= 1e9"), `created_at` (UTC)."""

    __tablename__ = "edgediff_exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("edgediff_studies.id", ondelete="CASCADE"), index=True)
    plan_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    path: Mapped[str] = mapped_column(Text)
    constraint: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Lease(Base):
    """Who drives a study now (`storage.lease`): one row per study name while a search runs.

    Fields: `study` (the study's name; the study itself may not exist yet), `holder` (a random token
    of the driver), `host` and `pid` (shown to a second driver that is refused), `acquired_at`,
    `heartbeat_at` (renewed while the driver lives; a lease not renewed for its time-to-live is stale
    and may be taken over), all UTC.
    """

    __tablename__ = "edgediff_leases"

    study: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(HASH_LENGTH))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column()
