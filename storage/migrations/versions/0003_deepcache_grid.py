"""The U-Net baseline's candidates are method "deepcache-grid" (they were stored as "greedy", the
name of the transformer baseline they shared a strategy with): a grid plan is a "greedy" candidate
with a `deepcache` section; its study's method list is renamed with it. Data only, no schema change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_GRID = "\"deepcache\""  # the plan section only DeepCache plans hold


def _rename(old: str, new: str) -> None:
    op.execute(
        f"UPDATE edgediff_studies SET method = REPLACE(method, '{old}', '{new}') "
        "WHERE id IN (SELECT study_id FROM edgediff_candidates "
        f"WHERE method = '{old}' AND plan_json LIKE '%{_GRID}%')"
    )
    op.execute(
        f"UPDATE edgediff_candidates SET method = '{new}' "
        f"WHERE method = '{old}' AND plan_json LIKE '%{_GRID}%'"
    )


def upgrade() -> None:
    _rename("greedy", "deepcache-grid")


def downgrade() -> None:
    _rename("deepcache-grid", "greedy")
