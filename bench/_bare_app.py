"""The baseline of the end-to-end cases: a bare Celery app whose task does one PostgreSQL INSERT.

Started by the benchmark as ``celery -A bench._bare_app worker --pool prefork -c N`` with the
settings a careful Celery user picks for long jobs (JSON, acks late, prefetch 1, no results).
``BENCH_BROKER``, ``BENCH_PG`` and ``BENCH_SCHEMA`` say where to go.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

app = Celery("bare", broker=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/13"))
app.conf.update(
    task_serializer="json", accept_content=["json"], task_acks_late=True,
    worker_prefetch_multiplier=1, task_ignore_result=True, result_backend=None,
    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
)
_pg: Any = None

TABLE = """CREATE TABLE IF NOT EXISTS bare_trial (
    id bigserial PRIMARY KEY, batch text NOT NULL, payload jsonb NOT NULL,
    done_at timestamptz NOT NULL DEFAULT clock_timestamp())"""


def _connect() -> Any:
    import psycopg

    conn = psycopg.connect(os.environ["BENCH_PG"], autocommit=True)
    conn.execute(f'SET search_path TO "{os.environ["BENCH_SCHEMA"]}"')
    return conn


@worker_process_init.connect
def _open(**_: Any) -> None:
    global _pg
    _pg = _connect()


@app.task(name="bare.insert")
def insert(batch: str, lr: float, depth: int, optimizer: str) -> None:
    from psycopg.types.json import Jsonb

    value = lr * depth + (0.05 if optimizer == "adam" else 0.0)
    _pg.execute("INSERT INTO bare_trial (batch, payload) VALUES (%s, %s)",
                [batch, Jsonb({"lr": lr, "depth": depth, "optimizer": optimizer,
                               "valid": value})])
