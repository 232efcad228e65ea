"""Dispatch of a 10,000-trial sweep (sample + record + publish), side by side in one run with a
bare Celery ``apply_async`` loop of 10,000 no-op tasks to the same Redis; runs alternate.

    python -m bench.dispatch [--db URL] [--broker URL] [--n 10000] [--reps 3]

Target (issue 3): hypero >= 0.5x the bare publish rate. Needs PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis
from celery import Celery

import hypero
from bench._common import Env, Procs, Row
from hypero import config, dispatcher
from hypero.spec import loads
from hypero.tasks import app, configure

SPEC = """
battery: bench dispatch
trial: trial.py:train
method: random
run_cap: {n}
queue: {queue}
parameters:
  lr: {{distribution: log_uniform_values, min: 1e-5, max: 0.1}}
  depth: {{distribution: int_uniform, min: 1, max: 7}}
  act: {{values: [relu, tanh, gelu]}}
"""


def bare(broker: str, n: int, queue: str) -> float:
    celery = Celery("bare", broker=broker)
    celery.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    sig = celery.signature("bare.noop")
    t0 = time.perf_counter()
    with celery.producer_or_acquire() as producer:
        for i in range(n):
            sig.apply_async((i,), queue=queue, producer=producer)
    return n / (time.perf_counter() - t0)


def ours(db: str, schema: str, broker: str, n: int, queue: str, folder: Path) -> float:
    (folder / "trial.py").write_text("def train(hex):\n    return {}\n")
    spec = loads(SPEC.format(n=n, queue=queue), path=folder / "bench.yaml")
    conn = hypero.connect(db, schema=schema)
    celery = configure(app, config.Settings(db=db, schema=schema, broker=broker), queue)
    t0 = time.perf_counter()
    dispatcher.dispatch(conn, spec, celery, seed=1)
    rate = n / (time.perf_counter() - t0)
    conn.close()
    return rate


def measure(env: Env, procs: Procs) -> list[Row]:
    """Case 2 for ``python -m bench``: alternating runs in ``env``'s schema and Redis db."""
    n, reps = 10000, 1 if env.quick else 3
    folder = env.workdir / "dispatch"
    folder.mkdir(parents=True, exist_ok=True)
    rb, rh = [], []
    for rep in range(reps):
        env.flush_redis()
        rb.append(bare(env.broker, n, f"bare-{rep}"))
        env.flush_redis()
        rh.append(ours(env.db, env.schema, env.broker, n, f"hypero-{rep}", folder))
    env.flush_redis()
    h, b = statistics.median(rh), statistics.median(rb)
    return [Row("2 dispatch of a 10,000-trial sweep vs bare apply_async", h, b, "trials/s",
                ">= 0.5x", h / b >= 0.5, note="sample + record + publish",
                runs={"hypero": rh, "bare": rb})]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", default="postgresql://postgres@127.0.0.1/test")
    p.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(args.broker)
    folder = Path(tempfile.mkdtemp(prefix="hypero-bench-"))
    rb, rh = [], []
    try:
        for rep in range(args.reps):
            client.flushdb()
            rb.append(bare(args.broker, args.n, f"bare-{rep}"))
            client.flushdb()
            rh.append(ours(args.db, schema, args.broker, args.n, f"hypero-{rep}", folder))
    finally:
        client.flushdb()
        import psycopg

        with psycopg.connect(args.db.replace("+psycopg", ""), autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    b, h = statistics.median(rb), statistics.median(rh)
    print(f"dispatch of {args.n} trials, median of {args.reps} alternating runs")
    print(f"{'case':40} {'hypero/s':>10} {'bare/s':>10} {'ratio':>7} {'target':>7}  met")
    print(f"{'sample + record + publish vs apply_async':40} {h:10.0f} {b:10.0f} {h / b:7.2f} "
          f"{0.5:7.2f}  {'yes' if h / b >= 0.5 else 'NO'}")
    print(f"runs: hypero {[round(x) for x in rh]}, bare {[round(x) for x in rb]}")


if __name__ == "__main__":
    main()
