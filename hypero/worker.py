"""``hypero worker``: a Celery worker that runs hypero trials, one per GPU slot or CPU process."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from hypero import config, gpus
from hypero.errors import ConfigError


def node_name(name: str | None = None) -> str:
    """``--name``, else ``hypero-<pid>@<host>``: unique per process, so workers share a host."""
    return name or f"hypero-{os.getpid()}@{socket.gethostname()}"


def worker_argv(
    queues: Sequence[str], concurrency: int, name: str, loglevel: str = "INFO",
    events: bool = False,
) -> list[str]:
    argv = [
        "worker", "--pool", "prefork", "--concurrency", str(concurrency),
        "--queues", ",".join(queues), "--hostname", name, "--loglevel", loglevel,
        "--without-mingle", "--without-gossip",
    ]
    if events:
        argv.append("--task-events")
    return argv


def run(
    settings: config.Settings, queues: Sequence[str], concurrency: int | None = None,
    gpu_spec: str | None = None, name: str | None = None, loglevel: str = "INFO",
    events: bool = False,
) -> None:
    """Start a worker in this process (it returns when the worker stops)."""
    from hypero.tasks import app, configure

    slots = gpus.parse(gpu_spec)
    if concurrency is None:
        concurrency = len(slots) or (os.cpu_count() or 1)
    if concurrency < 1:
        raise ConfigError(f"--concurrency: must be >= 1 (got {concurrency})")
    name = node_name(name)
    # the pool processes read these (config.from_env) after the fork
    os.environ["HYPERO_DB"] = settings.db
    os.environ["HYPERO_SCHEMA"] = settings.schema
    os.environ["HYPERO_WORKER_NAME"] = name
    os.environ["HYPERO_GPUS"] = ",".join(slots)
    if settings.broker:
        os.environ["HYPERO_BROKER"] = settings.broker
    from hypero.connection import connect

    connect(settings.db, schema=settings.schema).close()  # migrate once, before the pool forks
    configure(app, settings, queues[0] if queues else config.DEFAULT_QUEUE, queues)
    app.worker_main(worker_argv(queues, concurrency, name, loglevel, events))
