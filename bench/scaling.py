"""Case 6: end-to-end rate with 1, 2 and 4 worker processes, and the RSS of an idle worker.

Rates: the no-op sweep of case 1 through ``hypero worker --concurrency C`` beside the bare
Celery ``-c C`` worker, C = 1, 2, 4 (fresh workers per C, warmed up; runs alternate). On a
2-core machine both flatten from 2 on: the worker, its trial processes, PostgreSQL, Redis and the
publisher share those cores.

Memory: each worker (concurrency 2) after its warm-up batch, left idle; the peak over a few
seconds of the summed RSS of its process tree (main process and pool processes), sampled with
psutil. PSS, which counts pages shared after ``fork`` once, is in the notes.

    python -m bench.scaling [--quick]
"""

from __future__ import annotations

import time

from bench._common import Env, Procs, Row, median, tree_rss, tree_size
from bench.e2e import WARMUP, BareWorker, HyperoWorker


def peak_rss(pid: int, seconds: float = 3.0) -> tuple[float, float]:
    """Peak summed RSS and PSS of the tree of ``pid`` over ``seconds``, in MB."""
    rss = pss = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r, p = tree_rss(pid)
        rss, pss = max(rss, r), max(pss, p)
        time.sleep(0.1)
    return rss / 2**20, pss / 2**20


def measure(env: Env, procs: Procs) -> list[Row]:
    n = 300 if env.quick else 800
    n_bare = 1000
    reps = 1 if env.quick else 2
    rows = []
    rates: dict[int, tuple[float, float]] = {}
    for c in (1, 2, 4):
        hyp = HyperoWorker(env, procs, c)
        bare = BareWorker(env, procs, c)
        try:
            hyp.run(WARMUP)
            bare.run(WARMUP)
            rh, rb = [], []
            for rep in range(reps):
                if rep % 2:
                    rh.append(hyp.run(n))
                    rb.append(bare.run(n_bare))
                else:
                    rb.append(bare.run(n_bare))
                    rh.append(hyp.run(n))
            if c == 2:
                time.sleep(2.0)  # idle: the last trial's child reaped, the pool at rest
                mh = (peak_rss(hyp.proc.pid), tree_size(hyp.proc.pid))
                mb = (peak_rss(bare.proc.pid), tree_size(bare.proc.pid))
        finally:
            hyp.stop()
            bare.stop()
        h, b = median(rh), median(rb)
        rates[c] = (h, b)
        rows.append(Row(f"6 scaling: {c} worker process{'es' if c > 1 else ''}", h, b,
                        "trials/s", "flattens at 2 cores", None,
                        note=f"{n} trials a run (bare {n_bare})", runs={"hypero": rh, "bare": rb}))
    (h1, b1), (h2, b2), (h4, b4) = rates[1], rates[2], rates[4]
    rows.append(Row("6 scaling: speed-up 1 -> 2 -> 4 processes", h4 / h1, b4 / b1, "x",
                    "flattens at 2 cores", None,
                    note=f"hypero {h2 / h1:.2f}x at 2, {h4 / h1:.2f}x at 4; bare "
                         f"{b2 / b1:.2f}x at 2, {b4 / b1:.2f}x at 4"))
    ((rss_h, pss_h), nh), ((rss_b, pss_b), nb) = mh, mb
    rows.append(Row("6 peak RSS of an idle worker, concurrency 2", rss_h, rss_b, "MB",
                    "<= 1.5x", rss_h / rss_b <= 1.5, higher_is_better=False,
                    note=f"{nh} vs {nb} processes; PSS {pss_h:.0f} vs {pss_b:.0f} MB"))
    return rows


if __name__ == "__main__":
    from bench.__main__ import standalone

    standalone("6", None, __doc__)
