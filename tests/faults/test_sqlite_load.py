"""Fault 10: four processes share one SQLite file under load, and nothing is lost.

Two ``hypero worker`` processes run a sweep (heartbeats, relayed points every second, fenced
ends) while two other processes write experiments through the hex API as fast as they can. Every
count is then checked exactly, in SQL and against the trials' journal.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from hypero import dispatcher, spec
from hypero.schema import experiment, meta, metric, param, result
from tests import services
from tests.conftest import Target
from tests.faults.outage import JOURNAL_ENV, SECONDS_ENV, STEADY, tally
from tests.procs import run_together, write_many
from tests.workers import (
    Procs,
    celery_for,
    clean_env,
    unique,
    wait_final,
    wait_ready,
    write_spec,
)

pytestmark = pytest.mark.timeout(180)
TRIALS_N, WRITERS, PER_WRITER, POINTS = 16, 2, 250, 20


def test_two_workers_and_two_writers_on_one_sqlite_file_lose_nothing(
    sqlite_target: Target, redis_server: services.RedisServer, procs: Procs, tmp_path: Path
) -> None:
    broker = f"{redis_server.url}/0"
    target, queue = sqlite_target, unique("q")
    journal_path = tmp_path / "journal"
    env = clean_env({**target.env(), JOURNAL_ENV: str(journal_path), SECONDS_ENV: "0.4,0.7"})
    names = [procs.worker(broker, queue, env) for _ in range(2)]
    path = write_spec(tmp_path, f"""
battery: sqlite load
trial: {STEADY}
method: grid
queue: {queue}
lease: 5s
parameters:
  i: {{values: {list(range(TRIALS_N))}}}
""")
    celery = celery_for(broker, queue, target)
    wait_ready(celery, names, procs)
    with target.connect() as conn:
        sid = dispatcher.dispatch(conn, spec.load(path), celery)
        started = time.time()
        written = run_together(write_many, [(target.url, target.schema, i, PER_WRITER, POINTS)
                                            for i in range(WRITERS)])
        stopped = time.time()
        counts = wait_final(conn, sid, procs, timeout=120)
        t = tally(conn, sid, journal_path)
        with conn.store.db.read() as c:
            rows = {name: c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    for name, table in (("experiment", experiment), ("param", param),
                                        ("meta", meta), ("result", result),
                                        ("metric", metric))}
        bat = conn.battery("writers")
        ids = bat.experiments()
        params, results = bat.get_param(ids), bat.get_result(ids)
        metrics, metas = bat.get_metrics(ids), bat.get_meta(ids)
    steps = sum(r["steps"] for r in t.results.values())
    overlap = sum(started < x < stopped for x in t.times)
    print(f"\nsqlite load: {WRITERS} writers x {PER_WRITER} experiments x {POINTS} points, "
          f"{TRIALS_N} trials ({steps} steps) on 2 workers; rows {rows}; "
          f"{overlap} trial points logged during the {stopped - started:.1f} s the writers wrote")

    assert counts["completed"] == TRIALS_N, counts
    assert (t.trials, t.executions, t.lost, t.duplicated, t.nonfinal) == (TRIALS_N,) * 2 + (0,) * 3
    assert {r["attempt"] for r in t.results.values()} == {1}
    for h, res in t.results.items():
        assert t.steps[h] == res["steps"], (h, t.steps[h], res)
    assert overlap > 0, "the sweep and the writers did not overlap"
    # the writers' experiments: every one, every document, every point
    assert sorted(ids) == sorted(h for w in written for h in w)
    assert len(ids) == WRITERS * PER_WRITER
    assert sorted((p["proc"], p["k"]) for p in params.values()) == [
        (i, k) for i in range(WRITERS) for k in range(PER_WRITER)]
    for h in ids:
        p = params[h]
        assert metas[h] == {"writer": f"{p['proc']}/{p['k']}"}
        assert results[h] == {"train": p["proc"], "valid": p["k"]}
        assert [s for s, _ in metrics[h]["loss"]] == list(range(POINTS))
    # and nothing else: exact row counts in every table
    n = WRITERS * PER_WRITER + TRIALS_N
    assert rows == {"experiment": n, "param": n, "meta": n, "result": n,
                    "metric": WRITERS * PER_WRITER * POINTS + 2 * steps}
