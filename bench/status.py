"""Case 5: ``hypero status`` on sweeps of 1,000, 10,000 and 100,000 trials.

Each sweep is generated inside PostgreSQL (most trials completed with a numeric ``valid``
result, some failed, queued and running) in its own battery. hypero: what ``hypero status
BATTERY`` does in this process — :func:`hypero.monitor.statuses` and the rich table rendered
to a string — without the broker's part (queue depth, and ``inspect`` of live workers, which
waits out its 0.5 s reply timeout by design). Baseline: the one SQL statement a hand-written
status needs (``count(*) … GROUP BY state`` of the sweep) through psycopg. Median of runs.

    python -m bench.status [--quick]
"""

from __future__ import annotations

import io
import time

from bench._common import Env, Procs, Row, median

FILL = """
WITH e AS (
  INSERT INTO experiment (battery_id, version_id, sweep_id, trial_index, state, attempt,
                          failures, cancel_requested, created_at, started_at, finished_at,
                          heartbeat_at, lease_until)
  SELECT %(b)s, %(v)s, %(s)s, g - 1, st, 1, 0, false,
         now() - interval '1 hour', now() - interval '1 hour',
         CASE WHEN st IN ('completed', 'failed') THEN now() - (g %% 3600) * interval '1 second'
         END,
         CASE WHEN st = 'running' THEN now() END,
         CASE WHEN st = 'running' THEN now() + interval '1 hour' END
  FROM (SELECT g, CASE WHEN g %% 50 = 0 THEN 'failed' WHEN g > %(n)s - %(q)s THEN 'queued'
                       WHEN g > %(n)s - %(q)s - 2 THEN 'running' ELSE 'completed' END AS st
        FROM generate_series(1, %(n)s) g) x
  RETURNING id, state
), p AS (
  INSERT INTO param (hex_id, doc)
  SELECT id, jsonb_build_object('lr', power(10, -5 + 4 * random()), 'depth',
                                1 + floor(random() * 8)::int) FROM e
), m AS (
  INSERT INTO meta (hex_id, doc) SELECT id, '{}'::jsonb FROM e
)
INSERT INTO result (hex_id, doc)
SELECT id, CASE WHEN state = 'completed' THEN jsonb_build_object('valid', random())
                ELSE '{}'::jsonb END FROM e
"""
SPEC = {"battery": "", "queue": "hypero", "metric": {"name": "valid", "goal": "maximize"},
        "method": "random"}


def build(env: Env, n: int) -> tuple[str, int]:
    """A battery with one sweep of ``n`` trials; ``(battery name, sweep id)``."""
    import hypero
    from hypero import sweeps

    name = f"bench status {n}"
    with hypero.connect(env.db, schema=env.schema) as conn:
        bat = conn.battery(name, "v1")
        sid = sweeps.create_sweep(conn.store, bat.id, bat.version_id, {**SPEC, "battery": name},
                                  seed=1, trials=n, name=None)
        sweeps.set_sweep_state(conn.store, sid, "running")
    with env.pg() as c:
        c.execute(FILL, {"b": bat.id, "v": bat.version_id, "s": sid, "n": n,
                         "q": max(1, n // 100)})
        for table in ("experiment", "param", "meta", "result"):
            c.execute(f"VACUUM (ANALYZE) {table}")
    return name, sid


def hypero_status(conn: object, name: str) -> tuple[float, str]:
    """Seconds of what ``hypero status NAME`` does without a broker, and its text."""
    from rich.console import Console

    from hypero.launch import _status_table
    from hypero.monitor import statuses

    t0 = time.perf_counter()
    items = statuses(conn.store, name)  # type: ignore[attr-defined]
    out = io.StringIO()
    Console(file=out, width=200).print(_status_table(items))
    return time.perf_counter() - t0, out.getvalue()


def bare_status(c: object, sid: int) -> float:
    t0 = time.perf_counter()
    c.execute("SELECT state, count(*) FROM experiment WHERE sweep_id = %s "  # type: ignore
              "GROUP BY state", [sid]).fetchall()
    return time.perf_counter() - t0


def measure(env: Env, procs: Procs) -> list[Row]:
    import hypero

    sizes = [1000, 10_000, 100_000]
    reps = 9 if env.quick else 15
    built = {n: build(env, n) for n in sizes}
    rows = []
    with hypero.connect(env.db, schema=env.schema) as conn, env.pg() as c:
        for n in sizes:
            name, sid = built[n]
            hypero_status(conn, name)  # warm: imports, caches, connection
            bare_status(c, sid)
            rh, rb = [], []
            for _ in range(reps):
                t, text = hypero_status(conn, name)
                rh.append(t)
                rb.append(bare_status(c, sid))
            if "valid=" not in text:
                raise RuntimeError(f"status shows no best trial:\n{text}")
            h, b = median(rh) * 1000, median(rb) * 1000
            big = n == sizes[-1]
            rows.append(Row(f"5 hypero status, {n:,}-trial sweep", h, b, "ms",
                            "<= 50 ms" if big else "growth", h <= 50 if big else None,
                            higher_is_better=False,
                            note="baseline: one GROUP BY state query",
                            runs={"hypero": [x * 1000 for x in rh],
                                  "bare": [x * 1000 for x in rb]}))
    return rows


if __name__ == "__main__":
    from bench.__main__ import standalone

    standalone("5", None, __doc__)
