"""Sweeps and the life of their trials, in SQL: create, claim, heartbeat, finish, re-queue.

The database, not the broker, decides who runs a trial. A claim moves a ``queued`` trial to
``running`` and increments ``attempt``, the fencing token; every later write of that run names
the attempt and is refused once another attempt owns the trial. Each method is one short
transaction and returns whether it changed anything (compare-and-set).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from hypero.config import redact
from hypero.db import as_utc, now
from hypero.errors import NotFound
from hypero.schema import FINAL_STATES, experiment, meta, param, result, sweep
from hypero.schema import metric as metric_t
from hypero.store import Mode, Store


def create_sweep(
    store: Store, battery_id: int, version_id: int, spec: Mapping[str, Any], seed: int,
    trials: int, name: str | None,
) -> int:
    """A new sweep row in state ``enqueueing``; its id. A sweep with a ``metric`` gets an
    index on that result key (:meth:`Store.index_result_key`) for ``hypero status``."""
    with store.db.write() as c:
        sid = int(c.execute(
            sa.insert(sweep).returning(sweep.c.id),
            {"battery_id": battery_id, "version_id": version_id, "name": name, "spec": spec,
             "state": "enqueueing", "seed": seed, "trials": trials, "created_at": now()},
        ).scalar_one())
    metric = spec.get("metric")
    if isinstance(metric, Mapping) and isinstance(metric.get("name"), str):
        store.index_result_key(metric["name"])
    return sid


def get_sweep(store: Store, sweep_id: int) -> dict[str, Any]:
    with store.db.read() as c:
        row = c.execute(sa.select(sweep).where(sweep.c.id == sweep_id)).mappings().first()
    if row is None:
        raise NotFound(f"no sweep with id {sweep_id}")
    return dict(row)


def sweeps_of(store: Store, battery_id: int | None = None) -> list[dict[str, Any]]:
    q = sa.select(sweep).order_by(sweep.c.id)
    if battery_id is not None:
        q = q.where(sweep.c.battery_id == battery_id)
    with store.db.read() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def set_sweep_state(store: Store, sweep_id: int, state: str) -> None:
    values: dict[str, Any] = {"state": state}
    if state in ("done", "cancelled"):
        values["finished_at"] = now()
    with store.db.write() as c:
        c.execute(sa.update(sweep).where(sweep.c.id == sweep_id).values(**values))


def latest_metric(store: Store, battery_id: int) -> tuple[str, str] | None:
    """``(name, goal)`` of the newest sweep of the battery that declares a ``metric``."""
    for row in reversed(sweeps_of(store, battery_id)):
        metric = (row["spec"] or {}).get("metric")
        if isinstance(metric, dict) and metric.get("name"):
            return str(metric["name"]), str(metric.get("goal", "minimize"))
    return None


def counts(store: Store, sweep_id: int) -> dict[str, int]:
    """Trials of the sweep by state (every state present, zeros included)."""
    q = (
        sa.select(experiment.c.state, sa.func.count())
        .where(experiment.c.sweep_id == sweep_id)
        .group_by(experiment.c.state)
    )
    out = dict.fromkeys(("queued", "running", *FINAL_STATES), 0)
    with store.db.read() as c:
        for state, n in c.execute(q):
            out[str(state)] = int(n)
    return out


def trial_ids(store: Store, sweep_id: int, states: Sequence[str] | None = None) -> list[int]:
    q = sa.select(experiment.c.id).where(experiment.c.sweep_id == sweep_id)
    if states is not None:
        q = q.where(experiment.c.state.in_(list(states)))
    with store.db.read() as c:
        return [int(i) for i in c.execute(q.order_by(experiment.c.id)).scalars()]


# -- a trial's run ------------------------------------------------------------------------------


def claim(store: Store, hex_id: int, worker: str, lease: float) -> int | None:
    """``queued`` → ``running`` with attempt + 1; the new attempt, or None if not claimable."""
    got = take(store, hex_id, worker, lease)
    return None if got is None else int(got[0]["attempt"])


def take(
    store: Store, hex_id: int, worker: str, lease: float
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """:func:`claim`, returning the claimed row (its ``attempt`` the new one) and the trial's
    params, read in the same transaction; None if not claimable."""
    t = now()
    values = {"hid": hex_id, "who": worker, "t": t, "until": t + timedelta(seconds=lease)}
    with store.db.write() as c:
        row = c.execute(_TAKE, values).mappings().first()
        if row is None:
            return None
        params = c.execute(_PARAMS, values).scalar()
    return dict(row), params or {}


# built once: a worker runs these for every trial
_TAKE = (
    sa.update(experiment)
    .where(experiment.c.id == sa.bindparam("hid"), experiment.c.state == "queued",
           experiment.c.cancel_requested.is_(False))
    .values(state="running", attempt=experiment.c.attempt + 1, worker=sa.bindparam("who"),
            started_at=sa.bindparam("t"), heartbeat_at=sa.bindparam("t"),
            lease_until=sa.bindparam("until"), error=None)
    .returning(*experiment.c)
)
_PARAMS = sa.select(param.c.doc).where(param.c.hex_id == sa.bindparam("hid"))


def heartbeat(store: Store, hex_id: int, attempt: int, lease: float) -> tuple[bool, bool]:
    """Extend the lease of a live attempt: ``(still ours, cancel requested)``."""
    t = now()
    q = (
        sa.update(experiment)
        .where(experiment.c.id == hex_id, experiment.c.attempt == attempt,
               experiment.c.state == "running")
        .values(heartbeat_at=t, lease_until=t + timedelta(seconds=lease))
        .returning(experiment.c.cancel_requested)
    )
    with store.db.write() as c:
        got = c.execute(q).scalar()
    return (got is not None), bool(got)


def finish(
    store: Store, hex_id: int, attempt: int, state: str, *,
    docs: Mapping[str, tuple[Mapping[str, Any], Mode]] | None = None,
    metrics: Sequence[tuple[str, float, float]] = (), error: str | None = None,
    failed_attempt: bool = False,
) -> bool:
    """Record the attempt's last values and its final ``state`` in one fenced transaction.

    ``state`` may be ``queued`` (run it again). False if another attempt owns the trial.
    ``error`` is stored with any password in it redacted (a trial's message may quote a URL).
    """
    final = state in FINAL_STATES
    q = _finish_statement(failed_attempt, final)
    values = {"hid": hex_id, "att": attempt, "st": state, "t": now() if final else None,
              "err": None if error is None else redact(error)}
    with store.db.write() as c:
        if c.execute(q, values).first() is None:
            store._fenced(c, hex_id, attempt)  # NotFound for an unknown id
            return False
        for kind, (doc, mode) in (docs or {}).items():
            if doc:
                store._merge_doc(c, kind, hex_id, doc, mode)
        if metrics:
            store._upsert_metrics(c, hex_id, metrics)
    return True


@functools.cache
def _finish_statement(failed_attempt: bool, final: bool) -> Any:
    """The fence and the row lock of :func:`finish` in one statement (built once per kind of
    end): the documents follow in its transaction."""
    values: dict[str, Any] = {"state": sa.bindparam("st"), "lease_until": None,
                              "error": sa.bindparam("err")}
    if failed_attempt:
        values["failures"] = experiment.c.failures + 1
    if final:
        values["finished_at"] = sa.bindparam("t")
    return (
        sa.update(experiment)
        .where(experiment.c.id == sa.bindparam("hid"),
               experiment.c.attempt == sa.bindparam("att"), experiment.c.state == "running")
        .values(**values)
        .returning(experiment.c.id)
    )


def next_expiry(store: Store) -> datetime | None:
    """When the first lease of a running trial runs out (None: nothing runs)."""
    q = sa.select(sa.func.min(experiment.c.lease_until)).where(experiment.c.state == "running")
    with store.db.read() as c:
        return as_utc(c.execute(q).scalar())


def expired(store: Store, limit: int = 100) -> list[tuple[int, int, int]]:
    """Running trials whose lease ran out: ``(hex_id, attempt, sweep_id)``."""
    q = (
        sa.select(experiment.c.id, experiment.c.attempt, experiment.c.sweep_id)
        .where(experiment.c.state == "running", experiment.c.lease_until < now())
        .limit(limit)
    )
    with store.db.read() as c:
        return [(int(i), int(a), int(s)) for i, a, s in c.execute(q)]


def request_cancel(store: Store, sweep_id: int, terminate: bool = False) -> tuple[int, int]:
    """Cancel a sweep: queued trials become ``cancelled``; with ``terminate`` running ones are
    flagged, and their workers stop them at the next heartbeat.

    Returns ``(cancelled queued, flagged running)``.
    """
    t = now()
    with store.db.write() as c:
        q1 = c.execute(
            sa.update(experiment)
            .where(experiment.c.sweep_id == sweep_id, experiment.c.state == "queued")
            .values(state="cancelled", finished_at=t, cancel_requested=True)
        ).rowcount
        q2 = 0 if not terminate else c.execute(
            sa.update(experiment)
            .where(experiment.c.sweep_id == sweep_id, experiment.c.state == "running")
            .values(cancel_requested=True)
        ).rowcount
        c.execute(sa.update(sweep).where(sweep.c.id == sweep_id).values(state="cancelled"))
    return int(q1), int(q2)


def requeue_lost(store: Store, hex_id: int, attempt: int, max_attempts: int) -> str | None:
    """Take back a running trial whose lease ran out: ``queued`` again, or ``failed`` once it
    has had ``max_attempts`` attempts. Returns the new state, or None if it was not lost."""
    final = attempt >= max_attempts
    values: dict[str, Any] = {"state": "failed" if final else "queued", "lease_until": None}
    if final:
        values.update(finished_at=now(), error=f"lost {attempt} times (worker died or lease "
                                                f"ran out); gave up after max_attempts")
    q = (
        sa.update(experiment)
        .where(experiment.c.id == hex_id, experiment.c.attempt == attempt,
               experiment.c.state == "running", experiment.c.lease_until < now())
        .values(**values)
    )
    with store.db.write() as c:
        changed = c.execute(q).rowcount
    return str(values["state"]) if changed else None


def finish_unrunnable(store: Store, hex_id: int, error: str) -> bool:
    """A queued trial no worker of this kind can run: ``failed`` with ``error``."""
    q = (
        sa.update(experiment)
        .where(experiment.c.id == hex_id, experiment.c.state == "queued")
        .values(state="failed", error=error, finished_at=now())
    )
    with store.db.write() as c:
        return bool(c.execute(q).rowcount)


def add_trials(
    store: Store, sweep_id: int, plans: Sequence[Mapping[str, Any]], batch: int
) -> list[int] | None:
    """Record the next ``batch`` trials of the sweep's plan that nobody has recorded yet; their
    ids, or None once every planned trial is recorded.

    One transaction holding the sweep's row: a dispatcher and a ``--resume`` working on the
    same sweep at once (a slow dispatcher taken for dead) each add other trials, never the same
    trial twice. ``plans`` is the sweep's whole plan, in trial-index order.
    """
    with store.db.write() as c:
        row = c.execute(
            store.db.lock_row(sweep).with_only_columns(sweep.c.battery_id, sweep.c.version_id)
            .where(sweep.c.id == sweep_id)
        ).first()
        if row is None:
            raise NotFound(f"no sweep with id {sweep_id}")
        top = c.execute(sa.select(sa.func.max(experiment.c.trial_index))
                        .where(experiment.c.sweep_id == sweep_id)).scalar()
        start = 0 if top is None else int(top) + 1
        if start >= len(plans):
            return None
        return store._insert_experiments(
            c, int(row.battery_id), int(row.version_id), plans[start:start + batch],
            state="queued", sweep_id=sweep_id, first_index=start,
        )


def last_trial_index(store: Store, sweep_id: int) -> int | None:
    """The highest ``trial_index`` recorded for the sweep (None if it has no trial yet)."""
    q = sa.select(sa.func.max(experiment.c.trial_index)).where(experiment.c.sweep_id == sweep_id)
    with store.db.read() as c:
        got = c.execute(q).scalar()
    return None if got is None else int(got)


def unfinished(store: Store) -> list[tuple[int, str]]:
    """``(sweep id, queue)`` of sweeps still enqueueing or running."""
    q = sa.select(sweep.c.id, sweep.c.spec).where(sweep.c.state.in_(["enqueueing", "running"]))
    with store.db.read() as c:
        return [(int(i), str((s or {}).get("queue", "hypero"))) for i, s in c.execute(q)]


# -- adaptive search and early termination ------------------------------------------------------

#: ``make(others) -> (params, meta)``: ``others`` are the sweep's other live or finished trials,
#: ``{"id", "state", "meta", "result", "curve"}`` each (``curve``: the metric's points by step)
MakeSuggestion = Callable[[list[dict[str, Any]]], tuple[dict[str, Any], dict[str, Any]]]


def suggest(
    store: Store, sweep_id: int, hex_id: int, attempt: int, metric: str, make: MakeSuggestion,
) -> bool:
    """Give a claimed trial its parameters, once, under the sweep's lock.

    The sweep row is locked (``SELECT … FOR UPDATE``; SQLite's write transaction locks the whole
    database), so suggestions are made one at a time and each sees the earlier ones as running.
    A trial whose meta already has ``hypero.suggestion`` (an earlier attempt's) keeps it. False
    if another attempt owns the trial.
    """
    with store.db.write() as c:
        c.execute(store.db.lock_row(sweep).with_only_columns(sweep.c.id)
                  .where(sweep.c.id == sweep_id))
        if not store._fenced(c, hex_id, attempt):
            return False
        mine = c.execute(sa.select(meta.c.doc).where(meta.c.hex_id == hex_id)).scalar()
        if "hypero.suggestion" in (mine or {}):
            return True
        q = (
            sa.select(experiment.c.id, experiment.c.state, meta.c.doc, result.c.doc)
            .select_from(experiment.outerjoin(meta, meta.c.hex_id == experiment.c.id)
                         .outerjoin(result, result.c.hex_id == experiment.c.id))
            .where(experiment.c.sweep_id == sweep_id, experiment.c.id != hex_id,
                   experiment.c.state.in_(["running", "completed", "pruned"]))
        )
        others: list[dict[str, Any]] = [
            {"id": int(i), "state": str(s), "meta": m or {}, "result": r or {}, "curve": []}
            for i, s, m, r in c.execute(q)
        ]
        need = [o["id"] for o in others if o["state"] == "pruned" or metric not in o["result"]]
        by_id = {o["id"]: o for o in others}
        for part in range(0, len(need), 500):
            pq = (sa.select(metric_t.c.hex_id, metric_t.c.step, metric_t.c.value)
                  .where(metric_t.c.hex_id.in_(need[part:part + 500]), metric_t.c.name == metric)
                  .order_by(metric_t.c.hex_id, metric_t.c.step))
            for hid, step, value in c.execute(pq):
                by_id[int(hid)]["curve"].append(
                    (float(step), float("nan") if value is None else float(value)))
        params, doc = make(others)
        store._merge_doc(c, "param", hex_id, params, "update")
        store._merge_doc(c, "meta", hex_id, doc, "update")
    return True


def values_at(store: Store, sweep_id: int, hex_id: int, name: str, step: float) -> list[float]:
    """The value of metric ``name`` of each other trial of the sweep at its first non-NaN point
    at or past ``step`` (trials that have not reached ``step`` give none)."""
    first = (
        sa.select(metric_t.c.hex_id, sa.func.min(metric_t.c.step).label("step"))
        .join(experiment, experiment.c.id == metric_t.c.hex_id)
        .where(experiment.c.sweep_id == sweep_id, experiment.c.id != hex_id,
               metric_t.c.name == name, metric_t.c.step >= step, metric_t.c.value.is_not(None))
        .group_by(metric_t.c.hex_id)
        .subquery()
    )
    q = sa.select(metric_t.c.value).join(
        first, sa.and_(metric_t.c.hex_id == first.c.hex_id, metric_t.c.step == first.c.step)
    ).where(metric_t.c.name == name)
    with store.db.read() as c:
        return [float(v) for v in c.execute(q).scalars()]


def stop_new_trials(store: Store, sweep_id: int, reason: str) -> int:
    """``metric.target`` reached: the sweep's queued trials become ``cancelled``; how many."""
    with store.db.write() as c:
        return int(c.execute(
            sa.update(experiment)
            .where(experiment.c.sweep_id == sweep_id, experiment.c.state == "queued")
            .values(state="cancelled", finished_at=now(), cancel_requested=True, error=reason)
        ).rowcount)


def close_if_finished(store: Store, sweep_id: int) -> bool:
    """A running sweep whose every trial is final becomes ``done``; whether it did."""
    with store.db.write() as c:
        return bool(c.execute(_CLOSE, {"sid": sweep_id, "t": now()}).rowcount)


# built once: a worker runs it after every trial
_CLOSE = (
    sa.update(sweep)
    .where(sweep.c.id == sa.bindparam("sid"), sweep.c.state == "running",
           ~sa.select(experiment.c.id)
           .where(experiment.c.sweep_id == sa.bindparam("sid"),
                  experiment.c.state.in_(["queued", "running"]))
           .exists())
    .values(state="done", finished_at=sa.bindparam("t"))
)
