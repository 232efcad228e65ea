"""Long names on PostgreSQL: unique on md5 of battery names, version descriptions, metric names.

A btree entry holds at most ~2.7 kB, so a long version description (a commit message) or battery
or metric name failed with "index row size exceeds btree maximum". Uniqueness is now kept on the
md5 of the text, whose length is fixed. SQLite has no such limit and keeps its constraints.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_UNIQUE = (  # (table, old constraint, its type, new index, indexed expressions)
    ("battery", "battery_name_key", "unique", "battery_name_md5_key", ["md5(name)"]),
    ("version", "version_battery_description_key", "unique", "version_description_md5_key",
     ["battery_id", "md5(description)"]),
    ("metric", "metric_pkey", "primary", "metric_name_md5_key", ["hex_id", "md5(name)", "step"]),
)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, constraint, kind, index, exprs in _UNIQUE:
        op.drop_constraint(constraint, table, type_=kind)
        op.create_index(index, table, [sa.text(e) for e in exprs], unique=True)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, constraint, kind, index, _ in _UNIQUE:
        op.drop_index(index, table_name=table)
        cols = {"battery": ["name"], "version": ["battery_id", "description"],
                "metric": ["hex_id", "name", "step"]}[table]
        if kind == "primary":
            op.create_primary_key(constraint, table, cols)
        else:
            op.create_unique_constraint(constraint, table, cols)
