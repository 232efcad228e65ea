"""Micro-benchmark of the hex API: median cost of a sampling call and of ``hex.log()``,
side by side with a plain Python function call measured in the same process.

    python -m bench.hexapi [--db URL] [--n 20000]

Targets (issue 2): sampling call <= 20 us median, hex.log() <= 10 us median.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import hypero
from bench._common import Env, Procs, Row


def _median_us(fn: Callable[[int], Any], n: int, repeat: int = 5) -> float:
    """Median over ``repeat`` runs of the per-call time of ``n`` calls (batched timing)."""
    per_call = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for i in range(n):
            fn(i)
        per_call.append((time.perf_counter_ns() - t0) / n / 1000)
    return statistics.median(per_call)


def _baseline(a: float, b: float) -> float:
    return a + b


Case = tuple[str, float, float, float]


def cases(db: str, n: int, schema: str | None = None) -> tuple[list[Case], float, str]:
    """``(rows, seconds conn.close() took, backend)``; a row: (case, median us, baseline us,
    target us)."""
    conn = hypero.connect(db, schema=schema) if schema else hypero.connect(db)
    bat = conn.battery("bench hex api", "v1")
    base = _median_us(lambda i: _baseline(i, 1.0), n)
    hexes = [bat.experiment() for _ in range(5)]
    it = iter(hexes * 1000)
    rows = []

    def sampling(kind: str, call: Callable[[Any, int], Any]) -> None:
        def one(i: int) -> Any:
            return call(hex_, i)

        results = []
        for _ in range(5):
            hex_ = next(it)
            results.append(_median_us(one, n, repeat=1))
        rows.append((kind, statistics.median(results), base, 20.0))

    sampling("uniform (new name each call)", lambda h, i: h.uniform(f"p{i}", 0.0, 1.0))
    sampling("log_uniform (new name)", lambda h, i: h.log_uniform(f"q{i}", -5.0, 0.0))
    sampling("categorical w/ probs (new name)",
             lambda h, i: h.categorical(f"c{i}", ["a", "b", "c"], [0.5, 0.3, 0.2]))
    sampling("uniform (same name again)", lambda h, i: h.uniform("p0", 0.0, 1.0))
    log_hex = bat.experiment()
    t = _median_us(lambda i: log_hex.log(step=i, loss=0.5, acc=0.9), n)
    rows.append(("hex.log(step, 2 metrics)", t, base, 10.0))
    t0 = time.perf_counter()
    conn.close()
    return rows, time.perf_counter() - t0, conn.db.backend


def measure(env: Env, procs: Procs) -> list[Row]:
    """Case 3 for ``python -m bench``: on the run's PostgreSQL schema."""
    rows, _, _ = cases(env.db, 10000 if env.quick else 20000, schema=env.schema)
    return [Row(f"3 hex API: {name}", v, b, "us/call", f"<= {target:g} us", v <= target,
                higher_is_better=False, note="baseline: a plain Python call")
            for name, v, b, target in rows]


def main(argv: list[str] | None = None) -> list[Case]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    p.add_argument("--n", type=int, default=20000, help="calls per timed run")
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="hypero-bench-")
    rows, flush, backend = cases(args.db or f"sqlite:///{os.path.join(tmp, 'bench.db')}", args.n)
    print(f"hypero {hypero.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores, {backend}")
    print(f"{'case':36} {'median us':>10} {'baseline us':>12} {'ratio':>8} {'target us':>10}  met")
    for name, v, b, target in rows:
        print(f"{name:36} {v:10.2f} {b:12.3f} {v / b:8.1f} {target:10.1f}  "
              f"{'yes' if v <= target else 'NO'}")
    print(f"conn.close(), flushing what the flusher thread had not written yet: {flush:.2f} s")
    return rows


if __name__ == "__main__":
    main()
