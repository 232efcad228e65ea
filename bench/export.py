"""Case 4: export of a 100,000-trial battery to CSV, hypero's ``export`` vs ``psql \\copy``.

The battery (5 params, 3 results and a 50-point curve each, the curve a result list as
``hex.result_learning_curve`` writes it) is generated inside PostgreSQL in a few seconds. hypero
runs the code path of ``hypero export BATTERY -o out.csv`` in this process (no interpreter
start-up); the baseline is ``psql -c "\\copy (SELECT …) TO out.csv CSV HEADER"`` of the same
columns in the same order, timed as the whole ``psql`` process. Runs alternate.

    python -m bench.export [--quick]
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench._common import Env, Procs, Row, median

PARAMS = ("batch_size", "dropout", "lr", "n_layers", "optimizer")  # sorted, as export orders
RESULTS = ("accuracy", "epochs", "loss", "valid_curve")

FILL = """
WITH e AS (
  INSERT INTO experiment (battery_id, version_id, state, attempt, failures, cancel_requested,
                          created_at, started_at, finished_at)
  SELECT %(b)s, %(v)s, 'completed', 1, 0, false, now(), now(), now()
  FROM generate_series(1, %(n)s)
  RETURNING id
), p AS (
  INSERT INTO param (hex_id, doc)
  SELECT id, jsonb_build_object(
    'lr', power(10, -5 + 4 * random()), 'n_layers', 1 + floor(random() * 8)::int,
    'optimizer', (ARRAY['adam', 'sgd', 'rmsprop'])[1 + floor(random() * 3)::int],
    'batch_size', (ARRAY[16, 32, 64, 128])[1 + floor(random() * 4)::int],
    'dropout', 0.5 * random())
  FROM e
), m AS (
  INSERT INTO meta (hex_id, doc) SELECT id, '{}'::jsonb FROM e
)
INSERT INTO result (hex_id, doc)
SELECT id, jsonb_build_object(
  'loss', random(), 'accuracy', random(), 'epochs', 50,
  'valid_curve', (SELECT jsonb_agg(exp(-s::float8 / (5 + id %% 20)) + 0.01 * random())
                  FROM generate_series(1, 50) s))
FROM e
"""


def build(env: Env, name: str, n: int) -> tuple[int, int]:
    """A battery of ``n`` completed trials; ``(battery id, version id)``."""
    import hypero

    with hypero.connect(env.db, schema=env.schema) as conn:
        bat = conn.battery(name, "v1")
    with env.pg() as c:
        c.execute(FILL, {"b": bat.id, "v": bat.version_id, "n": n})
        for table in ("experiment", "param", "meta", "result"):
            c.execute(f"VACUUM (ANALYZE) {table}")
    return bat.id, bat.version_id


def copy_query(battery_id: int, version_id: int) -> str:
    """The baseline's query; psql's ``\\copy`` takes no parameters, and these are constants."""
    cols = ", ".join([f"p.doc->>'{k}' AS {k}" for k in PARAMS]
                     + [f"r.doc->>'{k}' AS {k}" for k in RESULTS])
    where = f"e.battery_id = {battery_id} AND e.version_id = {version_id}"
    return (f"SELECT e.id AS hex_id, {cols} FROM experiment e "  # noqa: S608
            "JOIN param p ON p.hex_id = e.id JOIN result r ON r.hex_id = e.id "
            f"WHERE {where} ORDER BY e.id")


def psql_copy(env: Env, query: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", env.libpq, "-c",
                    f"\\copy ({query}) TO '{out}' CSV HEADER"], check=True,
                   env={**os.environ, "PGOPTIONS": f"-csearch_path={env.schema}"})
    return time.perf_counter() - t0


def hypero_export(env: Env, name: str, out: Path) -> float:
    """``hypero export NAME -o out.csv``, run in this process (no interpreter start-up)."""
    from hypero.cli import main

    t0 = time.perf_counter()
    main.main(["export", name, "--db", env.db, "--schema", env.schema, "-o", str(out)],
              standalone_mode=False)
    return time.perf_counter() - t0


def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def measure(env: Env, procs: Procs) -> list[Row]:
    n = 100_000
    reps = 2 if env.quick else 3
    name = "bench export"
    t0 = time.perf_counter()
    bid, vid = build(env, name, n)
    built = time.perf_counter() - t0
    query = copy_query(bid, vid)
    out_h, out_b = env.workdir / "hypero.csv", env.workdir / "psql.csv"
    rh: list[float] = []
    rb: list[float] = []
    for rep in range(reps):
        first, second = (rb, rh) if rep % 2 == 0 else (rh, rb)
        for runs in (first, second):
            if runs is rb:
                rb.append(psql_copy(env, query, out_b))
            else:
                rh.append(hypero_export(env, name, out_h))
    for path in (out_h, out_b):
        if _lines(path) != n + 1:
            raise RuntimeError(f"{path}: {_lines(path)} lines, not {n + 1}")
    size = os.path.getsize(out_h) / 1e6
    h, b = median(rh), median(rb)
    return [Row("4 export 100k trials to CSV vs psql \\copy", h, b, "s", "<= 3x",
                h / b <= 3.0, higher_is_better=False,
                note=f"{size:.0f} MB CSV; battery built in {built:.0f} s",
                runs={"hypero": rh, "psql": rb})]


if __name__ == "__main__":
    from bench.__main__ import standalone

    standalone("4", None, __doc__)
