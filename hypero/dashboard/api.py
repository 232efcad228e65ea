"""The dashboard's queries: read-only, paged and sorted in SQL, ready to encode as JSON.

Every function takes a :class:`~hypero.store.Store`, runs parameterised ``SELECT`` statements only
and returns plain dicts and lists (timestamps as ISO 8601 strings; floats may be NaN or infinite,
the web layer encodes them). A trial page of a 100,000-trial battery is one top-N sort in the
database, by a column or by a param/result key (jsonb on PostgreSQL, JSON1 on SQLite), never a
load of every document. Bad arguments raise :class:`ValueError` naming the argument; unknown ids
raise :class:`~hypero.errors.NotFound`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hypero import sweeps
from hypero.config import redact
from hypero.dashboard import order
from hypero.db import as_utc
from hypero.errors import NotFound
from hypero.monitor import SweepStatus, rate
from hypero.schema import DOCS, STATES, battery, experiment, metric, param, result, sweep, version
from hypero.store import Store

MAX_LIMIT = 500  # rows in one trial page
MAX_CURVES = 50  # trials in one curves request
MAX_POINTS = 5000  # points of one curve sent to the page (evenly thinned beyond)
LIVE = ("queued", "running")


def _iso(t: datetime | None) -> str | None:
    t = as_utc(t)
    return None if t is None else t.isoformat()


# -- batteries ------------------------------------------------------------------------------------


def batteries(store: Store) -> list[dict[str, Any]]:
    """Every battery, oldest first, with its numbers of versions, sweeps and trials."""
    def per_battery(c: sa.Connection, table: sa.Table, *where: Any) -> dict[int, int]:
        q = sa.select(table.c.battery_id, sa.func.count()).where(*where).group_by(
            table.c.battery_id)
        return {int(b): int(n) for b, n in c.execute(q)}

    with store.db.read() as c:
        rows = c.execute(sa.select(battery).order_by(battery.c.id)).all()
        nver = per_battery(c, version)
        nsweep = per_battery(c, sweep)
        ntrial = per_battery(c, experiment)
        nlive = per_battery(c, experiment, experiment.c.state.in_(LIVE))
    return [
        {"id": int(r.id), "name": r.name, "created_at": _iso(r.created_at),
         "versions": nver.get(r.id, 0), "sweeps": nsweep.get(r.id, 0),
         "trials": ntrial.get(r.id, 0), "live": nlive.get(r.id, 0)}
        for r in rows
    ]


class KeyCache:
    """The keys of each battery's documents, scanned again only once its trials changed (their
    number, newest id or number finished) or ``ttl`` seconds passed: a scan reads every
    document, a check reads one index."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._memo: dict[int, tuple[tuple[Any, ...], float, dict[str, list[str]]]] = {}
        self._lock = threading.Lock()

    def keys(self, store: Store, battery_id: int) -> dict[str, list[str]]:
        q = sa.select(sa.func.count(), sa.func.max(experiment.c.id),
                      sa.func.count(experiment.c.finished_at)).where(
            experiment.c.battery_id == battery_id)
        with store.db.read() as c:
            stamp = tuple(c.execute(q).one())
        with self._lock:
            hit = self._memo.get(battery_id)
        if hit and hit[0] == stamp and time.monotonic() - hit[1] < self.ttl:
            return hit[2]
        keys = {kind: doc_keys(store, battery_id, kind) for kind in ("param", "result")}
        with self._lock:
            self._memo[battery_id] = (stamp, time.monotonic(), keys)
        return keys


def battery_info(
    store: Store, battery_id: int, cache: KeyCache | None = None
) -> dict[str, Any]:
    """A battery: name, versions (with trial counts), sweep metric and the keys of its docs."""
    name = store.battery_name(battery_id)
    counts = (  # from the (battery, version) index alone
        sa.select(experiment.c.version_id, sa.func.count())
        .where(experiment.c.battery_id == battery_id)
        .group_by(experiment.c.version_id)
    )
    q = sa.select(version).where(version.c.battery_id == battery_id).order_by(version.c.id)
    with store.db.read() as c:
        n = {int(v): int(k) for v, k in c.execute(counts)}
        versions = [{"id": int(r.id), "description": r.description,
                     "created_at": _iso(r.created_at), "trials": n.get(r.id, 0)}
                    for r in c.execute(q)]
    metric_ = sweeps.latest_metric(store, battery_id)
    return {
        "id": battery_id, "name": name, "versions": versions,
        "metric": None if metric_ is None else {"name": metric_[0], "goal": metric_[1]},
        "keys": (cache or KeyCache(0)).keys(store, battery_id),
    }


def doc_keys(store: Store, battery_id: int, kind: str) -> list[str]:
    """Every key of the battery's ``kind`` documents (param, result or meta), sorted."""
    table = DOCS[kind]
    join = experiment.c.id == table.c.hex_id
    if store.db.backend == "postgresql":
        key: Any = sa.func.jsonb_object_keys(table.c.doc)
        q = sa.select(key).select_from(table.join(experiment, join))
    else:
        each = sa.func.json_each(table.c.doc).table_valued("key")
        key = each.c.key
        q = sa.select(key).select_from(table.join(experiment, join)).join(each, sa.true())
    q = q.where(experiment.c.battery_id == battery_id).distinct()
    with store.db.read() as c:
        return sorted(str(k) for k in c.execute(q).scalars())


Fill = Callable[[list[SweepStatus]], None]  # adds broker figures (queue depth, live workers)


def status(store: Store, battery_id: int, fill: Fill | None = None) -> dict[str, Any]:
    """What the page polls: the battery's trials by state and the status of each sweep."""
    store.battery_name(battery_id)  # NotFound for an unknown battery
    q = (
        sa.select(experiment.c.state, sa.func.count())
        .where(experiment.c.battery_id == battery_id)
        .group_by(experiment.c.state)
    )
    counts = dict.fromkeys(STATES, 0)
    with store.db.read() as c:
        for state, n in c.execute(q):
            counts[str(state)] = int(n)
    items = [_sweep_status(store, row) for row in sweeps.sweeps_of(store, battery_id)]
    if fill is not None:
        fill(items)
    return {"counts": counts, "total": sum(counts.values()),
            "sweeps": [sweep_dict(s) for s in items]}


def _sweep_status(store: Store, row: dict[str, Any]) -> SweepStatus:
    """:func:`hypero.monitor.sweep_status` of a sweep row, its best trial found by :func:`best`
    (the page polls this every second, on batteries of 100,000 trials)."""
    spec, sid = row["spec"] or {}, int(row["id"])
    metric_ = spec.get("metric")
    top = None if not metric_ else order.best(store, sid, metric_["name"],
                                        metric_.get("goal", "minimize"))
    return SweepStatus(
        id=sid, battery=store.battery_name(row["battery_id"]),
        version=store.version(row["version_id"])[1], name=row["name"], state=row["state"],
        total=int(row["trials"]), counts=sweeps.counts(store, sid),
        rate=rate(store, sid, row["created_at"]), metric=metric_, best=top,
        queue=str(spec.get("queue", "hypero")),
    )


def sweep_dict(s: SweepStatus) -> dict[str, Any]:
    return {
        "id": s.id, "battery": s.battery, "version": s.version, "name": s.name, "state": s.state,
        "total": s.total, "finished": s.finished, "counts": s.counts, "rate": s.rate,
        "eta": s.eta, "metric": s.metric, "queue": s.queue, "depth": s.depth,
        "workers": s.workers,
        "best": None if s.best is None else {"id": s.best[0], "value": s.best[1]},
    }


# -- trials ---------------------------------------------------------------------------------------


def _filters(
    battery_id: int, version: int | None, state: Sequence[str] | None, sweep: int | None
) -> list[Any]:
    where: list[Any] = [experiment.c.battery_id == battery_id]
    if version is not None:
        where.append(experiment.c.version_id == version)
    if sweep is not None:
        where.append(experiment.c.sweep_id == sweep)
    if state:
        bad = [s for s in state if s not in STATES]
        if bad:
            raise ValueError(f"state: unknown {', '.join(map(repr, bad))} "
                             f"(one of {', '.join(STATES)})")
        where.append(experiment.c.state.in_(list(state)))
    return where


def trial_page(
    store: Store, battery_id: int, *, version: int | None = None,
    state: Sequence[str] | None = None, sweep: int | None = None, sort: str | None = None,
    desc: bool | None = None, offset: int = 0, limit: int = 50,
) -> dict[str, Any]:
    """One page of the battery's trials, filtered and sorted in SQL, with the total count.

    Without ``sort``, the best first by the battery's sweep metric, else by id.
    """
    if sort is None:
        goal = sweeps.latest_metric(store, battery_id)
        sort = "id" if goal is None else f"result:{goal[0]}"
        if desc is None:
            desc = goal is not None and goal[1] == "maximize"
    desc = bool(desc)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be between 1 and {MAX_LIMIT} (got {limit})")
    if offset < 0:
        raise ValueError(f"offset: must be >= 0 (got {offset})")
    store.battery_name(battery_id)
    where = _filters(battery_id, version, state, sweep)
    q = (
        sa.select(experiment.c.id, experiment.c.version_id, experiment.c.sweep_id,
                  experiment.c.state, experiment.c.attempt, experiment.c.worker,
                  experiment.c.started_at, experiment.c.finished_at,
                  param.c.doc.label("params"), result.c.doc.label("results"))
        .select_from(experiment.outerjoin(param, param.c.hex_id == experiment.c.id)
                     .outerjoin(result, result.c.hex_id == experiment.c.id))
    )
    with store.db.read() as c:
        total = int(c.execute(sa.select(sa.func.count()).where(*where)).scalar_one())
        ids = order.page_ids(c, store.db.backend, where, sort, desc, offset, limit)
        found = {r.id: r for r in c.execute(q.where(experiment.c.id.in_(ids)))}
    rows = [found[i] for i in ids if i in found]
    return {
        "total": total, "offset": offset, "limit": limit, "sort": sort,
        "order": "desc" if desc else "asc",
        "rows": [{
            "id": int(r.id), "version": int(r.version_id),
            "sweep": None if r.sweep_id is None else int(r.sweep_id), "state": r.state,
            "attempt": int(r.attempt), "worker": r.worker, "started_at": _iso(r.started_at),
            "finished_at": _iso(r.finished_at), "params": r.params or {},
            "results": r.results or {},
        } for r in rows],
    }


def trial(store: Store, hex_id: int) -> dict[str, Any]:
    """One trial: its row, params, results, meta, error and the names of its curves."""
    row = store.experiment(hex_id)
    docs = {kind: store.docs(kind, [hex_id]).get(hex_id, {}) for kind in DOCS}
    with store.db.read() as c:
        names = sorted(c.execute(
            sa.select(metric.c.name).where(metric.c.hex_id == hex_id).distinct()).scalars())
    bid = int(row["battery_id"])
    return {
        "id": hex_id, "battery": {"id": bid, "name": store.battery_name(bid)},
        "version": {"id": int(row["version_id"]),
                    "description": store.version(row["version_id"])[1]},
        "sweep": row["sweep_id"], "trial_index": row["trial_index"], "state": row["state"],
        "attempt": row["attempt"], "failures": row["failures"], "worker": row["worker"],
        "cancel_requested": bool(row["cancel_requested"]),
        **{k: _iso(row[k]) for k in ("created_at", "started_at", "finished_at",
                                     "heartbeat_at", "lease_until")},
        "error": None if row["error"] is None else redact(row["error"]),
        "params": docs["param"], "results": docs["result"], "meta": docs["meta"],
        "metrics": names,
    }


def _thin(points: list[tuple[float | int, float]], most: int) -> list[tuple[float | int, float]]:
    if len(points) <= most:
        return points
    step = len(points) / (most - 1)
    return [points[int(i * step)] for i in range(most - 1)] + [points[-1]]


def curves(
    store: Store, hex_ids: Sequence[int], names: Sequence[str] | None = None,
    max_points: int = MAX_POINTS,
) -> dict[str, Any]:
    """Streamed curves of some trials: every metric name they have, and the points of
    ``names`` (default: all) as ``{hex id: {name: [[step, value], …]}}``, thinned to
    ``max_points`` per curve."""
    if len(hex_ids) > MAX_CURVES:
        raise ValueError(f"ids: at most {MAX_CURVES} trials at once (got {len(hex_ids)})")
    ids = list(dict.fromkeys(hex_ids))
    with store.db.read() as c:
        found = set(c.execute(sa.select(experiment.c.id).where(experiment.c.id.in_(ids)))
                    .scalars())
        all_names = sorted(c.execute(
            sa.select(metric.c.name).where(metric.c.hex_id.in_(ids)).distinct()).scalars())
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no experiment with id {missing[0]}")
    data = store.metrics(ids, names)
    return {
        "names": all_names,
        "curves": {str(h): {n: [list(p) for p in _thin(pts, max_points)]
                            for n, pts in data[h].items()} for h in ids},
    }


def points(
    store: Store, battery_id: int, x: str, y: str, *, version: int | None = None,
    limit: int = MAX_POINTS,
) -> dict[str, Any]:
    """Values of two keys (``param:KEY`` / ``result:KEY``) over the battery's completed trials,
    newest first, for a scatter of a parameter against the metric."""
    if not 1 <= limit <= 20_000:
        raise ValueError(f"limit: must be between 1 and 20000 (got {limit})")
    store.battery_name(battery_id)
    cols = []
    for arg, ref in (("x", x), ("y", y)):
        kind, sep, key = ref.partition(":")
        if not sep or kind not in ("param", "result") or not key:
            raise ValueError(f"{arg}: {ref!r} must be param:KEY or result:KEY")
        cols.append((param if kind == "param" else result).c.doc)
    q = (
        sa.select(experiment.c.id, cols[0].label("x"), cols[1].label("y"))
        .select_from(experiment.join(param, param.c.hex_id == experiment.c.id)
                     .join(result, result.c.hex_id == experiment.c.id))
        .where(*_filters(battery_id, version, ["completed"], None))
        .order_by(experiment.c.id.desc())
        .limit(limit)
    )
    kx, ky = x.partition(":")[2], y.partition(":")[2]
    ids, xs, ys = [], [], []
    with store.db.read() as c:
        for hid, dx, dy in c.execute(q):
            if kx in dx and ky in dy:
                ids.append(int(hid))
                xs.append(dx[kx])
                ys.append(dy[ky])
    return {"x": x, "y": y, "ids": ids, "xs": xs, "ys": ys}


def sweep_info(
    store: Store, sweep_id: int, top: int = 5, fill: Fill | None = None
) -> dict[str, Any]:
    """A sweep's status, its spec and its ``top`` best trials by the spec's metric."""
    spec = sweeps.get_sweep(store, sweep_id)
    s = _sweep_status(store, spec)
    if fill is not None:
        fill([s])
    best: list[dict[str, Any]] = []
    if s.metric:
        page = trial_page(
            store, int(spec["battery_id"]), sweep=sweep_id, state=["completed"],
            sort=f"result:{s.metric['name']}", desc=s.metric.get("goal") == "maximize",
            limit=top,
        )
        best = page["rows"]
    return {**sweep_dict(s), "battery_id": int(spec["battery_id"]),
            "created_at": _iso(spec["created_at"]), "finished_at": _iso(spec["finished_at"]),
            "spec": spec["spec"], "top": best}
