"""The sample images of evaluated plans (edgediff_samples), and an index of each study's candidates
by plan hash, which joins candidates to their evaluations without a scan per evaluation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_HASH = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "edgediff_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("spec_hash", _HASH, nullable=False),
        sa.Column("plan_hash", _HASH, nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("columns", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("captions", sa.JSON(), nullable=False),
        sa.Column("seeds", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_edgediff_samples"),
        sa.UniqueConstraint(
            "model", "spec_hash", "plan_hash", name="uq_edgediff_samples_model_spec_hash_plan_hash"
        ),
    )
    op.create_index(
        "ix_edgediff_candidates_study_id_plan_hash", "edgediff_candidates", ["study_id", "plan_hash"]
    )


def downgrade() -> None:
    op.drop_index("ix_edgediff_candidates_study_id_plan_hash", table_name="edgediff_candidates")
    op.drop_table("edgediff_samples")
