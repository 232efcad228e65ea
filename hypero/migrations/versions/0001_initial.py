"""Initial schema: battery, version, sweep, experiment, param/meta/result, metric.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_when = sa.DateTime(timezone=True)


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "battery",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", _when, nullable=False),
    )
    op.create_table(
        "version",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("battery_id", _id, _fk("battery"), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.UniqueConstraint("battery_id", "description", name="version_battery_description_key"),
    )
    op.create_table(
        "sweep",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("battery_id", _id, _fk("battery"), nullable=False),
        sa.Column("version_id", _id, _fk("version"), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("spec", _doc, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("trials", sa.Integer, nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("finished_at", _when),
    )
    op.create_table(
        "experiment",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("battery_id", _id, _fk("battery"), nullable=False),
        sa.Column("version_id", _id, _fk("version"), nullable=False),
        sa.Column("sweep_id", _id, _fk("sweep")),
        sa.Column("trial_index", sa.Integer),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker", sa.Text),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("started_at", _when),
        sa.Column("finished_at", _when),
        sa.Column("heartbeat_at", _when),
        sa.Column("lease_until", _when),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text),
    )
    op.create_index("experiment_battery_version_idx", "experiment", ["battery_id", "version_id"])
    op.create_index("experiment_sweep_state_idx", "experiment", ["sweep_id", "state"])
    op.create_index("experiment_state_lease_idx", "experiment", ["state", "lease_until"])
    for name in ("param", "meta", "result"):
        op.create_table(
            name,
            sa.Column("hex_id", _id, _fk("experiment"), primary_key=True),
            sa.Column("doc", _doc, nullable=False),
        )
    op.create_table(
        "metric",
        sa.Column("hex_id", _id, _fk("experiment"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("step", sa.Double, nullable=False),
        sa.Column("value", sa.Double),
        sa.PrimaryKeyConstraint("hex_id", "name", "step", name="metric_pkey"),
    )


def downgrade() -> None:
    for name in ("metric", "result", "meta", "param", "experiment", "sweep", "version", "battery"):
        op.drop_table(name)
