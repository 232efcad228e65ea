"""The dashboard on a 100,000-trial battery: first paint in headless Chromium and the API's
trial-table page, side by side with a bare ``SELECT … LIMIT 50`` of the same rows in one run.

    python -m bench.dashboard [--db URL] [--schema S] [--n 100000] [--reps 5]

Target (issue 7): first paint <= 1 s. Needs ``hypero[dashboard]``, Playwright and Debian's
``chromium``. Without ``--db`` the battery is built in a temporary SQLite file; with it, the
battery is deleted at the end.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import hypero
from hypero import codec
from hypero.db import now
from hypero.schema import battery, experiment, metric, param, result, sweep

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
METRIC = {"name": "valid_acc", "goal": "maximize"}
_CHUNK = 5000
_DOC_SQL = {  # driver-level inserts of encoded documents (table names are constants)
    "sqlite": {"param": "INSERT INTO param (hex_id, doc) VALUES (?, ?)",
               "result": "INSERT INTO result (hex_id, doc) VALUES (?, ?)"},
    "postgresql": {"param": "INSERT INTO param (hex_id, doc) VALUES (%s, %s::jsonb)",
                   "result": "INSERT INTO result (hex_id, doc) VALUES (%s, %s::jsonb)"},
}


def _trial(rng: random.Random, i: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """State, params and results of the i-th synthetic trial."""
    lr = math.exp(rng.uniform(math.log(1e-5), math.log(0.1)))
    depth = rng.randint(1, 7)
    decay = rng.choice(["linear", "adaptive"])
    params: dict[str, Any] = {"lr": lr, "depth": depth, "decay": decay}
    if decay == "linear":  # a conditional parameter: absent from the other trials
        params["min lr"] = lr / rng.uniform(10, 1000)
    if i % 50 == 7:
        return "failed", params, {}
    acc = 0.5 + 0.4 * math.exp(-abs(math.log10(lr) + 3)) + 0.01 * depth + rng.gauss(0, 0.01)
    if i % 97 == 3:
        acc = math.nan  # diverged
    return "completed", params, {"valid_acc": acc, "loss": 1 - acc if acc == acc else acc}


def fill(
    conn: hypero.Connection, name: str, n: int, *, curves: int = 200, steps: int = 20,
    seed: int = 0,
) -> tuple[int, int]:
    """A battery of ``n`` finished trials in one sweep, ``curves`` of them with streamed
    curves of ``steps`` points; written in bulk. Returns ``(battery id, sweep id)``."""
    rng = random.Random(seed)
    bat = conn.battery(name, "bench")
    t = now()
    with conn.db.write() as c:
        sid = int(c.execute(sa.insert(sweep).returning(sweep.c.id), {
            "battery_id": bat.id, "version_id": bat.version_id, "name": "bench",
            "spec": {"metric": METRIC, "queue": "hypero"}, "state": "done", "seed": seed,
            "trials": n, "created_at": t, "finished_at": t,
        }).scalar_one())
    # One INSERT … SELECT over a recursive counter writes every experiment row; the documents
    # go straight to the driver, already encoded: 100,000 trials in a few seconds.
    k = sa.select(sa.literal(0).label("k")).cte("counter", recursive=True)
    k = k.union_all(sa.select(k.c.k + 1).where(k.c.k < n - 1))
    failed = k.c.k % 50 == 7  # as _trial decides
    when = sa.literal(t, type_=experiment.c.created_at.type)
    rows = sa.select(
        sa.literal(bat.id), sa.literal(bat.version_id), sa.literal(sid), k.c.k,
        sa.case((failed, "failed"), else_="completed"), sa.literal(1), sa.literal(0),
        sa.false(), when, when, when, sa.literal("bench@localhost"),
        sa.case((failed, "RuntimeError: diverged"), else_=None),
    )
    cols = ["battery_id", "version_id", "sweep_id", "trial_index", "state", "attempt",
            "failures", "cancel_requested", "created_at", "started_at", "finished_at", "worker",
            "error"]
    docs = _DOC_SQL[conn.db.backend]
    with conn.db.write() as c:
        c.execute(sa.insert(experiment).from_select(cols, rows))
        ids = c.execute(sa.select(experiment.c.id).where(experiment.c.sweep_id == sid)
                        .order_by(experiment.c.trial_index)).scalars().all()
        for part in range(0, n, _CHUNK):
            trials = [_trial(rng, i) for i in range(part, min(n, part + _CHUNK))]
            c.exec_driver_sql(docs["param"], [
                (h, codec.dumps(p)) for h, (_, p, _) in zip(ids[part:], trials, strict=False)])
            c.exec_driver_sql(docs["result"], [
                (h, codec.dumps(r)) for h, (_, _, r) in zip(ids[part:], trials, strict=False)])
        c.execute(sa.insert(metric), [
            {"hex_id": h, "name": m, "step": s,
             "value": (1 - s / steps) * rng.uniform(0.5, 1) if m == "loss"
             else 0.5 + 0.4 * s / steps * rng.uniform(0.8, 1)}
            for h in ids[:curves] for m in ("loss", "valid_acc") for s in range(steps)
        ])
    return bat.id, sid


def _timed(fn: Callable[[], Any], reps: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bare_select(conn: hypero.Connection, bid: int, order: Any) -> Callable[[], Any]:
    """A bare ``SELECT … LIMIT 50`` of the rows the trial table shows."""
    q = (
        sa.select(experiment.c.id, experiment.c.state, param.c.doc, result.c.doc)
        .join(param, param.c.hex_id == experiment.c.id)
        .join(result, result.c.hex_id == experiment.c.id)
        .where(experiment.c.battery_id == bid)
        .order_by(order)
        .limit(50)
    )

    def run() -> Any:
        with conn.db.read() as c:
            return c.execute(q).all()

    return run


def api_page(url: str) -> Callable[[], Any]:
    def run() -> Any:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.read()

    return run


def first_paint(base: str, bid: int, reps: int) -> float:
    """Median ms from navigation to the trial table's 50 rows on screen (fresh page each time)."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(reps + 1):  # the first run warms the browser's cache and the server's
                page = browser.new_page()
                t0 = time.perf_counter()
                page.goto(f"{base}/#/battery/{bid}")
                page.wait_for_function(
                    "() => document.querySelectorAll('#trials tbody tr[data-id]').length >= 50",
                    timeout=30_000,
                )
                times.append((time.perf_counter() - t0) * 1000)
                page.close()
        finally:
            browser.close()
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", help="Database URL (default: a temporary SQLite file).")
    ap.add_argument("--schema", default="hyper")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    from hypero.dashboard.app import Server

    with tempfile.TemporaryDirectory(prefix="hypero-bench-") as tmp:
        db = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        conn = hypero.connect(db, schema=args.schema)
        t0 = time.perf_counter()
        name = f"bench dashboard {time.time_ns()}"
        bid, _ = fill(conn, name, args.n)
        if conn.db.backend == "postgresql":  # as autovacuum soon would after a bulk insert
            with conn.db.write() as c:
                for table in ("experiment", "param", "result", "metric"):
                    c.exec_driver_sql(f"ANALYZE {table}")
        print(f"{conn.db.backend}: built a {args.n:,}-trial battery in "
              f"{time.perf_counter() - t0:.1f} s")
        try:
            with Server(conn, port=0) as server:
                figures = _measure(conn, server.url, bid, args.reps)
        finally:  # the battery goes (its trials by cascade): --db may be someone's real store
            with conn.db.write() as c:
                c.execute(sa.delete(battery).where(battery.c.id == bid))
            conn.close()
    width = max(len(k) for k in figures)
    print(f"{'':{width}}  hypero     bare SELECT … LIMIT 50")
    for what, (ours, bare) in figures.items():
        print(f"{what:{width}}  {ours:7.1f} ms  {'' if bare is None else f'{bare:7.1f} ms'}")


def _measure(
    conn: hypero.Connection, base: str, bid: int, reps: int
) -> dict[str, tuple[float, float | None]]:
    by_id = bare_select(conn, bid, experiment.c.id)
    by_acc = bare_select(conn, bid, sa.desc(sa.func.coalesce(
        result.c.doc["valid_acc"].as_float(), -1e300)))  # the bare form: non-numbers not handled
    page = f"{base}/api/batteries/{bid}/trials?limit=50"
    return {
        "trial page, by id": (_timed(api_page(page + "&sort=id"), reps), _timed(by_id, reps)),
        "trial page, by result valid_acc desc": (
            _timed(api_page(page + "&sort=result:valid_acc&order=desc"), reps),
            _timed(by_acc, reps),
        ),
        "first paint (Chromium, table on screen)": (first_paint(base, bid, reps), None),
    }


if __name__ == "__main__":
    main()
