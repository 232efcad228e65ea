"""Alembic environment: runs on the connection :mod:`hypero.db` hands over (never its own)."""

from __future__ import annotations

from alembic import context

_conn = context.config.attributes["connection"]
context.configure(
    connection=_conn,
    target_metadata=None,
    transactional_ddl=True,
    version_table=context.config.get_main_option("version_table") or "alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
