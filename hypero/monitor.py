"""Where sweeps stand: counts by state, rate, ETA, best so far; queue depth and live workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from hypero import sweeps
from hypero.db import as_utc, now
from hypero.schema import FINAL_STATES, experiment, result
from hypero.store import Store

RATE_WINDOW = 120.0  # seconds of finished trials the rate is measured over


@dataclass
class SweepStatus:
    id: int
    battery: str
    version: str
    name: str | None
    state: str
    total: int
    counts: dict[str, int]
    rate: float  # finished trials per second, recently
    metric: dict[str, Any] | None
    best: tuple[int, float] | None
    queue: str
    depth: int | None = None
    workers: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(self.counts[s] for s in FINAL_STATES)

    @property
    def eta(self) -> float | None:
        """Seconds until every trial is final, at the recent rate."""
        left = self.total - self.finished
        if left == 0:
            return 0.0
        return left / self.rate if self.rate > 0 else None


def best(store: Store, sweep_id: int, name: str, goal: str) -> tuple[int, float] | None:
    """``(hex id, value)`` of the completed trial with the best numeric result ``name``."""
    value = result.c.doc[name]
    v = value.as_float()
    if store.db.backend == "postgresql":
        # ordered by the jsonb value itself (numbers compare as numbers), which the sweep's
        # index on this key (Store.index_result_key) holds in order: no result is read in vain
        numeric = sa.and_(value.is_not(None), sa.func.jsonb_typeof(value) == "number")
        order: Any = value
    else:
        numeric = sa.func.json_type(result.c.doc, sa.literal("$." + _json_path(name))).in_(
            ["integer", "real"]
        )
        order = v
    q = (
        sa.select(experiment.c.id, v)
        .join(result, result.c.hex_id == experiment.c.id)
        .where(experiment.c.sweep_id == sweep_id, experiment.c.state == "completed", numeric)
        .order_by(order.desc() if goal == "maximize" else order.asc())
        .limit(1)
    )
    with store.db.read() as c:
        row = c.execute(q).first()
    return None if row is None else (int(row[0]), float(row[1]))


def _json_path(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rate(store: Store, sweep_id: int, started: datetime, window: float = RATE_WINDOW) -> float:
    """Trials finished per second over the last ``window`` seconds (or since ``started``)."""
    t = now()
    since = t - timedelta(seconds=window)
    q = sa.select(sa.func.count()).where(
        experiment.c.sweep_id == sweep_id, experiment.c.finished_at >= since
    )
    with store.db.read() as c:
        n = int(c.execute(q).scalar() or 0)
    span = min(window, (t - (as_utc(started) or t)).total_seconds())
    return n / max(span, 1.0)


def sweep_status(store: Store, sweep_id: int) -> SweepStatus:
    row = sweeps.get_sweep(store, sweep_id)
    spec = row["spec"] or {}
    metric = spec.get("metric")
    bid = int(row["battery_id"])
    counts = sweeps.counts(store, sweep_id)
    top = None
    if metric:
        top = best(store, sweep_id, metric["name"], metric.get("goal", "minimize"))
    return SweepStatus(
        id=sweep_id, battery=store.battery_name(bid), version=store.version(row["version_id"])[1],
        name=row["name"], state=row["state"], total=int(row["trials"]), counts=counts,
        rate=rate(store, sweep_id, row["created_at"]), metric=metric, best=top,
        queue=str(spec.get("queue", "hypero")),
    )


def statuses(store: Store, battery: str | None = None) -> list[SweepStatus]:
    bid = None if battery is None else store.battery_id(battery, create=False)
    return [sweep_status(store, int(r["id"])) for r in sweeps.sweeps_of(store, bid)]


def add_broker(statuses_: list[SweepStatus], celery: Any) -> None:
    """Fill in queue depth and live workers from the broker."""
    from hypero.broker import depth, live_workers

    workers = live_workers(celery)
    depths: dict[str, int | None] = {}
    for s in statuses_:
        if s.queue not in depths:
            depths[s.queue] = depth(celery, s.queue)
        s.depth = depths[s.queue]
        s.workers = None if workers is None else [w for w, qs in workers.items() if s.queue in qs]
