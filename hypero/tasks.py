"""The Celery side of hypero: the app, its settings, and the ``hypero.run_trial`` task.

Celery lives here and in :mod:`hypero.worker` only. Messages are JSON (pickle is never
accepted), carry the hex id only, are acknowledged late and only after the attempt's end is
recorded, and are taken one at a time (prefetch 1).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from celery import Celery, signals
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from hypero import config, gpus, sweeps
from hypero.db import now
from hypero.errors import BrokerError, ConfigError, StorageError

log = logging.getLogger("hypero.worker")
TASK = "hypero.run_trial"
#: Redis re-delivers an unacknowledged message after this long (``HYPERO_VISIBILITY_TIMEOUT``
#: overrides it); hypero's lease recovers lost trials much sooner.
VISIBILITY_TIMEOUT = config.DEFAULT_VISIBILITY_TIMEOUT
#: RabbitMQ closes the channel of a consumer that holds a message longer than its consumer
#: timeout (30 min by default). From 3.11.15 a queue's ``x-consumer-timeout`` overrides it; ours
#: outlasts any trial (~24.8 days, the largest value RabbitMQ documents; 0 is not "off").
CONSUMER_TIMEOUT_MS = 2**31 - 1
#: older servers ignore the queue argument: only their global consumer_timeout counts
PER_QUEUE_TIMEOUT_SINCE = (3, 11, 15)

app = Celery("hypero")


def configure(
    celery: Celery, settings: config.Settings, queue: str = config.DEFAULT_QUEUE,
    queues: Sequence[str] = (),
) -> Celery:
    """Point ``celery`` at ``settings.broker`` with hypero's safe, at-least-once settings.

    ``queue`` is the default queue; on RabbitMQ, it and ``queues`` (a worker's other queues)
    are declared with hypero's consumer timeout.
    """
    if not settings.broker:
        raise ConfigError("no broker: pass --broker or set HYPERO_BROKER (redis://… or amqp://…)")
    from hypero.broker import transport_options

    url, options = transport_options(settings.broker)
    celery.conf.update(
        broker_url=url,
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queue,
        task_create_missing_queues=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout, **options},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    if settings.broker.startswith(("amqp", "pyamqp")):
        from kombu import Queue  # type: ignore[attr-defined]

        args = {"x-consumer-timeout": CONSUMER_TIMEOUT_MS}
        celery.conf.task_queues = [Queue(q, queue_arguments=args)
                                   for q in dict.fromkeys([queue, *queues])]
    return celery


def check_rabbitmq(celery: Celery) -> str | None:
    """A warning if the broker is a RabbitMQ too old to honour ``x-consumer-timeout``."""
    if not str(celery.conf.broker_url or "").startswith(("amqp", "pyamqp")):
        return None
    with celery.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1)
        raw = conn.connection.server_properties.get("version", "")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        version = tuple(int(p) for p in text.split("+")[0].split(".")[:3])
    except ValueError:
        return None
    if version >= PER_QUEUE_TIMEOUT_SINCE:
        return None
    return (f"RabbitMQ {text} ignores hypero's per-queue x-consumer-timeout: a trial longer "
            "than the server's consumer_timeout (30 min by default) closes this worker's "
            "channel and stops the worker (the trial is not run twice). Set consumer_timeout "
            "in rabbitmq.conf above your longest trial, or upgrade to RabbitMQ >= 3.11.15.")


def publish(celery: Celery, hex_ids: list[int], queue: str) -> None:
    """One ``hypero.run_trial`` message per hex id, over one producer connection."""
    try:
        _publish(celery, hex_ids, queue)
    except (OperationalError, OSError) as e:
        raise BrokerError(
            f"cannot publish to the broker {config.redact(str(celery.conf.broker_url))}: "
            f"{config.redact(str(e))} (the trials are recorded: once the broker is up, "
            "`hypero run SPEC --resume` publishes them)"
        ) from e


def _publish(celery: Celery, hex_ids: list[int], queue: str) -> None:
    task = celery.signature(TASK)
    with celery.producer_or_acquire() as producer:
        for hid in hex_ids:
            task.apply_async(
                (hid,), queue=queue, task_id=f"hypero-{hid}-{uuid.uuid4().hex[:8]}",
                producer=producer,
            )


_supervisor: Any = None


def _get_supervisor() -> Any:
    global _supervisor
    if _supervisor is None or _supervisor.pid != os.getpid():
        from hypero.connection import connect
        from hypero.runner import Supervisor

        settings = config.from_env()
        conn = connect(settings.db, schema=settings.schema)
        name = os.environ.get("HYPERO_WORKER_NAME") or f"hypero-{os.getpid()}"
        _supervisor = Supervisor(conn.store, conn.settings, name)
        _supervisor.pid = os.getpid()
        _supervisor.replay_spool()
    return _supervisor


@app.task(name=TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_trial(hex_id: int) -> str:
    """Run trial ``hex_id`` (claimed in the database first; a duplicate does nothing)."""
    if not isinstance(hex_id, int) or isinstance(hex_id, bool):
        log.error("hypero: rejected a run_trial message whose argument is not a hex id")
        return "rejected"
    from hypero.runner import patiently

    try:
        sup = _get_supervisor()
        row = patiently(lambda: sup.store.experiment(hex_id), patience=300)
    except StorageError as e:
        # the database stayed away: give the message back to the broker, never drop it
        log.warning("hypero: trial %s waits for the database: %s", hex_id, e)
        raise Reject(str(e), requeue=True) from e
    if row["state"] != "queued" or row["sweep_id"] is None:
        return "skipped"
    cfg = sup.config(int(row["sweep_id"]))

    def republish(hid: int) -> None:
        publish(app, [hid], cfg.queue)

    # a spec silent about GPUs gets one slot per trial on a GPU worker (none elsewhere)
    need = cfg.gpus if cfg.gpus is not None else min(1, len(gpus.worker_slots()))
    with gpus.slots(need) as ids:
        if ids is None:
            sweeps.finish_unrunnable(sup.store, hex_id, f"needs {need} GPU slots; "
                                     f"this worker has {len(gpus.worker_slots())}")
            return "unrunnable"
        return str(sup.run(hex_id, ids, republish, row))


# -- lease keeper: any worker takes back trials whose lease ran out -------------------------------


def keep_leases(celery: Celery, stop: threading.Event, every: float = 5.0) -> None:
    """Re-queue (or fail, past max_attempts) running trials whose lease ran out, forever.

    It looks every ``every`` seconds, and sooner when a running trial's lease runs out
    before that, so that a short lease is not outlasted by the wait.
    """
    from hypero.connection import connect
    from hypero.runner import TrialConfig

    settings = config.from_env()
    conn = None
    cache: dict[int, TrialConfig] = {}
    last_reconcile = time.monotonic()
    wait = every
    while not stop.wait(wait):
        wait = every
        try:
            if conn is None:  # the database may be away when the worker starts
                conn = connect(settings.db, schema=settings.schema)
            if time.monotonic() - last_reconcile > RECONCILE_EVERY:
                last_reconcile = time.monotonic()
                reconcile(celery, conn.store)
            for hid, attempt, sweep_id in sweeps.expired(conn.store):
                if sweep_id not in cache:
                    spec = sweeps.get_sweep(conn.store, sweep_id)["spec"]
                    cache[sweep_id] = TrialConfig.from_spec(spec)
                cfg = cache[sweep_id]
                state = sweeps.requeue_lost(conn.store, hid, attempt, cfg.max_attempts)
                if state == "queued":
                    publish(celery, [hid], cfg.queue)
                if state:
                    log.warning("hypero: trial %s lost its lease (attempt %s): %s",
                                hid, attempt, state)
                if state == "failed":
                    sweeps.close_if_finished(conn.store, sweep_id)
            first = sweeps.next_expiry(conn.store)
            if first is not None:
                wait = min(every, max(0.1, (first - now()).total_seconds() + 0.05))
        except Exception as e:
            log.warning("hypero: lease keeper: %s", config.redact(str(e)))
            time.sleep(every)


RECONCILE_EVERY = 60.0


def reconcile(celery: Celery, store: Any) -> int:
    """Re-publish queued trials of unfinished sweeps that a Redis broker no longer holds
    (it restarted without persistence); how many. Brokers that cannot list what they hold
    are left alone here (``hypero run --resume`` re-publishes to them)."""
    from hypero.broker import depth, pending_hex_ids

    by_queue: dict[str, list[int]] = {}
    for sweep_id, queue in sweeps.unfinished(store):
        by_queue.setdefault(queue, []).extend(sweeps.trial_ids(store, sweep_id, ["queued"]))
    n = 0
    for queue, queued in by_queue.items():
        waiting = depth(celery, queue)
        if not queued or waiting is None or waiting >= len(queued):
            continue  # the cheap check: the broker holds at least as many as are queued
        held = pending_hex_ids(celery, queue) or set()
        missing = [h for h in queued if h not in held]
        if missing:
            publish(celery, missing, queue)
            log.warning("hypero: re-published %d queued trials the broker lost (queue %s)",
                        len(missing), queue)
            n += len(missing)
    return n


_keeper_stop = threading.Event()


@signals.worker_ready.connect
def _start_keeper(sender: Any = None, **_: Any) -> None:
    if os.environ.get("HYPERO_DB") is None and os.environ.get("HYPERO_WORKER_NAME") is None:
        return  # not started by `hypero worker`
    t = threading.Thread(target=keep_leases, args=(app, _keeper_stop), daemon=True,
                         name="hypero-lease-keeper")
    t.start()
    try:
        warning = check_rabbitmq(app)
    except Exception as e:
        warning = f"could not ask the broker for its version: {config.redact(str(e))}"
    if warning:
        log.warning("hypero: %s", warning)


@signals.worker_shutdown.connect
def _stop_keeper(sender: Any = None, **_: Any) -> None:
    _keeper_stop.set()
