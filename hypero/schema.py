"""The tables, as SQLAlchemy Core objects (the Alembic migrations in ``migrations/`` create them).

On PostgreSQL they live in a configurable schema (default ``hyper``), reached through the
connection's ``search_path``; on SQLite in the main database. On PostgreSQL, the uniqueness of
battery names, version descriptions and metric names is kept on their md5 (migration 0002), so
that long ones fit in a btree index.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql

#: The Alembic revision this code expects; ``connect()`` upgrades an older database to it.
HEAD = "0003"

#: A JSON document: jsonb on PostgreSQL, JSON text on SQLite (encoded by :mod:`hypero.codec`).
Doc = JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")
When = DateTime(timezone=True)

#: Trial states. ``queued`` and ``running`` are live; the rest are final.
STATES = ("queued", "running", "completed", "failed", "pruned", "cancelled")
FINAL_STATES = ("completed", "failed", "pruned", "cancelled")

metadata = MetaData()

battery = Table(
    "battery", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", When, nullable=False),
)

version = Table(
    "version", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("battery_id", Id, ForeignKey("battery.id", ondelete="CASCADE"), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", When, nullable=False),
    UniqueConstraint("battery_id", "description", name="version_battery_description_key"),
)

sweep = Table(
    "sweep", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("battery_id", Id, ForeignKey("battery.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", Id, ForeignKey("version.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text),
    Column("spec", Doc, nullable=False),
    Column("state", Text, nullable=False),  # enqueueing | running | done | cancelled
    Column("seed", BigInteger, nullable=False),
    Column("trials", Integer, nullable=False),
    Column("created_at", When, nullable=False),
    Column("finished_at", When),
)

experiment = Table(
    "experiment", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("battery_id", Id, ForeignKey("battery.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", Id, ForeignKey("version.id", ondelete="CASCADE"), nullable=False),
    Column("sweep_id", Id, ForeignKey("sweep.id", ondelete="CASCADE")),
    Column("trial_index", Integer),
    Column("state", Text, nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),  # attempts whose function raised
    Column("worker", Text),
    Column("created_at", When, nullable=False),
    Column("started_at", When),
    Column("finished_at", When),
    Column("heartbeat_at", When),
    Column("lease_until", When),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("error", Text),
    Index("experiment_battery_version_idx", "battery_id", "version_id"),
    Index("experiment_sweep_state_idx", "sweep_id", "state"),
    Index("experiment_state_lease_idx", "state", "lease_until"),
    Index("experiment_sweep_finished_idx", "sweep_id", "finished_at"),  # status's rate
)


def _doc_table(name: str) -> Table:
    return Table(
        name, metadata,
        Column("hex_id", Id, ForeignKey("experiment.id", ondelete="CASCADE"), primary_key=True),
        Column("doc", Doc, nullable=False),
    )


param = _doc_table("param")
meta = _doc_table("meta")
result = _doc_table("result")
DOCS = {"param": param, "meta": meta, "result": result}

metric = Table(
    "metric", metadata,
    Column("hex_id", Id, ForeignKey("experiment.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("step", Double, nullable=False),
    Column("value", Double),  # NULL is NaN (SQLite cannot store NaN)
    PrimaryKeyConstraint("hex_id", "name", "step", name="metric_pkey"),
)
