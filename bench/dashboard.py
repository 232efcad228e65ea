"""The dashboard on a 100,000-trial battery: first paint in headless Chromium and the API's
trial-table page, side by side with a bare ``SELECT … LIMIT 50`` of the same rows in one run.

    python -m bench.dashboard [--db URL] [--schema S] [--n 100000] [--reps 5]

Target (issue 7): first paint <= 1 s. Needs ``hypero[dashboard]``, Playwright and Debian's
``chromium``. Without ``--db`` the battery is built in a temporary SQLite file.
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
from hypero.db import now
from hypero.schema import experiment, metric, param, result, sweep

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
METRIC = {"name": "valid_acc", "goal": "maximize"}
_CHUNK = 5000


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
    for start in range(0, n, _CHUNK):
        trials = [_trial(rng, i) for i in range(start, min(n, start + _CHUNK))]
        rows = [{
            "battery_id": bat.id, "version_id": bat.version_id, "sweep_id": sid,
            "trial_index": start + k, "state": state, "attempt": 1, "failures": 0,
            "cancel_requested": False, "created_at": t, "started_at": t, "finished_at": t,
            "worker": "bench@localhost", "error": "RuntimeError: diverged" if not res else None,
        } for k, (state, _, res) in enumerate(trials)]
        with conn.db.write() as c:
            ids = c.execute(
                sa.insert(experiment).returning(experiment.c.id, sort_by_parameter_order=True),
                rows,
            ).scalars().all()
            c.execute(sa.insert(param), [
                {"hex_id": h, "doc": p} for h, (_, p, _) in zip(ids, trials, strict=True)])
            c.execute(sa.insert(result), [
                {"hex_id": h, "doc": r} for h, (_, _, r) in zip(ids, trials, strict=True)])
            if start == 0:
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
        print(f"{conn.db.backend}: built a {args.n:,}-trial battery in "
              f"{time.perf_counter() - t0:.1f} s")
        with Server(conn, port=0) as server:
            figures = _measure(conn, server.url, bid, args.reps)
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
