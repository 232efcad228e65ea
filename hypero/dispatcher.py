"""Turn a validated spec into a sweep: record every trial, then publish one message per trial.

No trial exists only in the broker: rows and their parameters are committed first, messages
are published after, and ``resume`` re-publishes queued trials the broker does not hold.
"""

from __future__ import annotations

import random
from typing import Any

from celery import Celery

from hypero import search, sweeps
from hypero.connection import Connection
from hypero.spec import Spec
from hypero.tasks import publish

BATCH = 500


def spec_doc(spec: Spec) -> dict[str, Any]:
    """What workers need from the spec, stored with the sweep (plus the spec as written)."""
    return {**spec.to_json(), "declared": list(spec.parameters)}


def trial_count(spec: Spec, run_cap: int | None = None) -> int:
    if run_cap is not None:
        return run_cap if spec.method != "grid" else min(run_cap, search.grid_size(spec))
    if spec.method == "grid":
        size = search.grid_size(spec)
        return size if spec.run_cap is None else min(size, spec.run_cap)
    if spec.run_cap is None:  # spec.error names the file and line, like every spec error
        raise spec.error(f"method {spec.method} needs run_cap (or --trials N): how many "
                         "trials?", key="run_cap")
    return spec.run_cap


def create(conn: Connection, spec: Spec, seed: int | None = None,
           run_cap: int | None = None) -> tuple[int, list[int]]:
    """Record the sweep and all its trials (state ``queued``); ``(sweep id, hex ids)``."""
    n = trial_count(spec, run_cap)
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    plans = list(search.plan(spec, seed, n))
    bat = conn.battery(spec.battery, spec.version)
    sid = sweeps.create_sweep(conn.store, bat.id, bat.version_id, spec_doc(spec), seed,
                              len(plans), spec.name)
    ids: list[int] = []
    while (got := sweeps.add_trials(conn.store, sid, plans, BATCH)) is not None:
        ids += got  # a concurrent --resume may add other batches meanwhile
    return sid, ids


def dispatch(conn: Connection, spec: Spec, celery: Celery, seed: int | None = None,
             run_cap: int | None = None) -> int:
    """Create the sweep, then publish its trials; the sweep id."""
    sid, ids = create(conn, spec, seed, run_cap)
    publish(celery, ids, spec.queue)
    sweeps.set_sweep_state(conn.store, sid, "running")
    return sid


def resume(conn: Connection, sweep_id: int, celery: Celery, blind: bool = True) -> int:
    """Re-publish the sweep's queued trials that the broker does not hold; how many.

    A broker that cannot list what it holds (RabbitMQ) gets every queued trial again if
    ``blind`` (duplicates do nothing), else none.
    """
    from hypero.broker import pending_hex_ids

    _complete_enqueueing(conn, sweep_id)
    doc = sweeps.get_sweep(conn.store, sweep_id)["spec"]
    queue = str(doc.get("queue", "hypero"))
    queued = sweeps.trial_ids(conn.store, sweep_id, ["queued"])
    held = pending_hex_ids(celery, queue)
    if held is None and not blind:
        queued = []
    missing = [h for h in queued if held is None or h not in held]
    if missing:
        publish(celery, missing, queue)
    if sweeps.get_sweep(conn.store, sweep_id)["state"] == "enqueueing":
        sweeps.set_sweep_state(conn.store, sweep_id, "running")
    return len(missing)


def _complete_enqueueing(conn: Connection, sweep_id: int) -> int:
    """Record the trials a dispatcher killed while enqueueing did not; how many.

    The plan is deterministic for the sweep's seed and batches commit in order, so the
    missing trials are the plan's tail after the last recorded index. A dispatcher that is
    only slow, not dead, goes on adding batches meanwhile: each batch is taken under the
    sweep's row lock (:func:`sweeps.add_trials`), so no trial is recorded twice.
    """
    row = sweeps.get_sweep(conn.store, sweep_id)
    if row["state"] != "enqueueing":
        return 0
    done = sweeps.last_trial_index(conn.store, sweep_id)
    if (0 if done is None else done + 1) >= int(row["trials"]):
        return 0
    spec = Spec.from_json(row["spec"])
    plans = list(search.plan(spec, int(row["seed"]), int(row["trials"])))
    n = 0
    while (got := sweeps.add_trials(conn.store, sweep_id, plans, BATCH)) is not None:
        n += len(got)
    return n
