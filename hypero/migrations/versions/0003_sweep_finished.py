"""An index on each sweep's trials by ``finished_at``: ``hypero status`` counts the trials that
finished in the last minutes (its rate and ETA) without reading every trial of the sweep.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("experiment_sweep_finished_idx", "experiment", ["sweep_id", "finished_at"])


def downgrade() -> None:
    op.drop_index("experiment_sweep_finished_idx", table_name="experiment")
