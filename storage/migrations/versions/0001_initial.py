"""The initial schema: studies, candidates, evaluations, exports.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_HASH = sa.String(64)
_WHEN = sa.DateTime(timezone=True)


def _study_fk(table: str) -> sa.ForeignKeyConstraint:
    name = f"fk_{table}_study_id_edgediff_studies"
    return sa.ForeignKeyConstraint(["study_id"], ["edgediff_studies.id"], name=name, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "edgediff_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_fingerprint", _HASH, nullable=True),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("spec_hash", _HASH, nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=False),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_edgediff_studies"),
        sa.UniqueConstraint("name", name="uq_edgediff_studies_name"),
    )
    op.create_table(
        "edgediff_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("plan_hash", _HASH, nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=False),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_edgediff_candidates"),
        _study_fk("edgediff_candidates"),
        sa.UniqueConstraint(
            "study_id", "method", "plan_hash", name="uq_edgediff_candidates_study_id_method_plan_hash"
        ),
    )
    op.create_index("ix_edgediff_candidates_plan_hash", "edgediff_candidates", ["plan_hash"])
    op.create_table(
        "edgediff_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("spec_hash", _HASH, nullable=False),
        sa.Column("plan_hash", _HASH, nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("macs_per_image", sa.BigInteger(), nullable=True),
        sa.Column("macs_per_generation", sa.BigInteger(), nullable=True),
        sa.Column("latency_per_image_s", sa.Float(), nullable=True),
        sa.Column("fid", sa.Float(), nullable=True),
        sa.Column("mse", sa.Float(), nullable=True),
        sa.Column("psnr", sa.Float(), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("class_accuracy", sa.Float(), nullable=True),
        sa.Column("num_images", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(100), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", _WHEN, nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_edgediff_evaluations"),
        sa.UniqueConstraint(
            "model",
            "spec_hash",
            "plan_hash",
            "stage",
            name="uq_edgediff_evaluations_model_spec_hash_plan_hash_stage",
        ),
    )
    op.create_index(
        "ix_edgediff_evaluations_model_spec_hash_stage_status",
        "edgediff_evaluations",
        ["model", "spec_hash", "stage", "status"],
    )
    op.create_index("ix_edgediff_evaluations_plan_hash", "edgediff_evaluations", ["plan_hash"])
    op.create_index("ix_edgediff_evaluations_fid", "edgediff_evaluations", ["fid"])
    op.create_index("ix_edgediff_evaluations_macs_per_image", "edgediff_evaluations", ["macs_per_image"])
    op.create_table(
        "edgediff_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("plan_hash", _HASH, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("constraint", sa.String(200), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_edgediff_exports"),
        _study_fk("edgediff_exports"),
    )
    op.create_index("ix_edgediff_exports_study_id", "edgediff_exports", ["study_id"])


def downgrade() -> None:
    op.drop_table("edgediff_exports")
    op.drop_table("edgediff_evaluations")
    op.drop_table("edgediff_candidates")
    op.drop_table("edgediff_studies")
