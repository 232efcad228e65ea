"""Fault 6: PostgreSQL restarted in the middle of a sweep, for less and for more than the lease.

Each test starts its own PostgreSQL cluster (``initdb``, a free port) and real ``hypero worker``
processes, stops the cluster while trials run, starts it again on the same port and data, waits
for every trial to be final, then checks in SQL and against the trials' journal: no trial lost
or left non-final, no result recorded twice or by an attempt that did not own the trial.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hypero import dispatcher, spec, sweeps
from hypero.tasks import publish
from tests import services
from tests.conftest import Target
from tests.faults.outage import JOURNAL_ENV, SECONDS_ENV, STEADY, Tally, journal, tally, wait_for
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
MAX_ATTEMPTS = 5


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[services.PostgresServer]:
    try:
        server = services.start_throwaway_postgres(tmp_path)
    except services.ServiceUnavailable as e:
        services.unavailable(f"PostgreSQL: {e}")
    yield server
    server.close()


class Sweep:
    """A sweep of ``steady`` trials on two workers of two slots each, against ``pg``."""

    def __init__(self, pg: services.PostgresServer, broker: str, procs: Procs, tmp_path: Path,
                 request: pytest.FixtureRequest, *, trials: int, seconds: str,
                 lease: float) -> None:
        self.target = Target("postgresql", pg.url, "hyper")
        self.journal = tmp_path / "journal"
        self.spools = [tmp_path / f"spool{k}" for k in range(2)]
        self.procs = procs
        queue = unique("q")
        env = clean_env({**self.target.env(), JOURNAL_ENV: str(self.journal),
                         SECONDS_ENV: seconds})
        names = [procs.worker(broker, queue, {**env, "HYPERO_SPOOL": str(s)}, concurrency=2)
                 for s in self.spools]
        path = write_spec(tmp_path, f"""
battery: db outage
trial: {STEADY}
method: grid
queue: {queue}
lease: {lease}s
max_attempts: {MAX_ATTEMPTS}
parameters:
  i: {{values: {list(range(trials))}}}
""")
        self.celery, self.queue = celery_for(broker, queue, self.target), queue
        wait_ready(self.celery, names, procs)
        self.conn = self.target.connect()
        request.addfinalizer(self.conn.close)
        self.id = dispatcher.dispatch(self.conn, spec.load(path), self.celery)

    def running(self) -> int:
        return sweeps.counts(self.conn.store, self.id)["running"]

    def started(self, n: int) -> None:
        """Wait until ``n`` trials run their function (claimed, forked, journaled)."""
        wait_for(lambda: len(journal(self.journal)) >= n, 30, f"{n} trials started")
        time.sleep(0.3)  # each has logged a few points

    def finish(self) -> Tally:
        counts = wait_final(self.conn, self.id, self.procs, timeout=120)
        assert counts["completed"] == sum(counts.values()), counts
        return tally(self.conn, self.id, self.journal)

    def take_back(self) -> int:
        """What a third host's lease keeper does: re-queue the trials whose lease ran out (and
        publish them again); how many."""
        n = 0
        for hid, attempt, _ in sweeps.expired(self.conn.store):
            if sweeps.requeue_lost(self.conn.store, hid, attempt, MAX_ATTEMPTS) == "queued":
                publish(self.celery, [hid], self.queue)
                n += 1
        return n

    def spooled(self) -> list[Path]:
        return [p for s in self.spools if s.exists() for p in s.rglob("*.json")]

    def logs(self) -> str:
        return self.procs.logs(tail=400)


def _outage(pg: services.PostgresServer, seconds: float) -> tuple[float, float]:
    """Stop the cluster, keep it down ``seconds`` (its restart included); (down at, up at)."""
    down = time.time()
    pg.stop()
    time.sleep(max(0.0, seconds - (time.time() - down) - 0.5))  # a start takes ~0.5 s
    pg.start()
    return down, time.time()


def _report(name: str, t: Tally, down: float, up: float, **extra: Any) -> None:
    print(f"\n{name}: trials={t.trials} executions={t.executions} lost={t.lost} "
          f"duplicated={t.duplicated} nonfinal={t.nonfinal} down={up - down:.1f}s "
          + " ".join(f"{k}={v}" for k, v in extra.items()))


def test_postgres_down_shorter_than_the_lease_reruns_nothing(
    pg: services.PostgresServer, redis_server: services.RedisServer, procs: Procs,
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    broker = f"{redis_server.url}/0"
    lease = 8.0  # heartbeats every 2 s: a 2 s outage leaves the lease half its time
    sweep = Sweep(pg, broker, procs, tmp_path, request, trials=8,
                  seconds="1.2,1.8,2.4,3.2", lease=lease)
    sweep.started(4)
    down, up = _outage(pg, 2.5)
    t = sweep.finish()
    spooled = sweep.logs().count("database away, spooling trial")
    _report("postgres down < lease", t, down, up, spooled=spooled)

    assert 2.0 <= up - down < lease / 2
    assert (t.trials, t.lost, t.duplicated, t.nonfinal) == (8, 0, 0, 0), sweep.logs()
    assert t.executions == 8, sweep.logs()  # no rerun
    assert {r["attempt"] for r in t.results.values()} == {1}
    for h, res in t.results.items():  # every point logged, those of the outage too
        assert t.steps[h] == res["steps"], (h, t.steps, t.results)
    assert any(down < x < up for x in t.times), "no value logged during the outage arrived"
    assert spooled >= 1, sweep.logs()  # trials that ended while it was down waited in the spool
    assert sweep.spooled() == []  # and the spool was emptied once the database was back
    conn = sweep.conn
    rows = [conn.store.experiment(h) for h in sweeps.trial_ids(conn.store, sweep.id)]
    assert {(r["attempt"], r["failures"], r["error"]) for r in rows} == {(1, 0, None)}


def test_postgres_down_longer_than_the_lease_loses_and_duplicates_nothing(
    pg: services.PostgresServer, redis_server: services.RedisServer, procs: Procs,
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    broker = f"{redis_server.url}/0"
    lease = 3.0
    sweep = Sweep(pg, broker, procs, tmp_path, request, trials=8,
                  seconds="1.5,2.5,3.5,4.5", lease=lease)
    sweep.started(4)
    running = sweep.running()
    down, up = _outage(pg, 2 * lease + 0.5)
    # the workers' own keepers look every 5 s, their heartbeats every lease/4: take back the
    # expired trials at once, as a keeper elsewhere may, so that stale attempts meet the fence
    taken = sweep.take_back()
    t = sweep.finish()
    logs = sweep.logs()
    refused = logs.count("its end (completed) was refused") + logs.count("is stale (")
    _report("postgres down > lease", t, down, up, running_at_outage=running, taken_back=taken,
            reruns=t.executions - t.trials, stale_refused=refused)

    assert up - down > 2 * lease
    assert 1 <= taken <= running
    assert t.trials < t.executions <= t.trials + taken  # only trials taken back ran again
    assert (t.trials, t.lost, t.duplicated, t.nonfinal) == (8, 0, 0, 0), sweep.logs()
    assert t.executions <= t.trials + running, sweep.logs()
    for h, res in t.results.items():
        assert t.steps[h] >= res["steps"], (h, t.steps, t.results)  # no gap in any curve
    assert sweep.spooled() == []
    bat = sweep.conn.battery("db outage")
    metas = bat.get_meta(bat.experiments())
    for h, res in t.results.items():
        assert metas[h]["hypero.attempt"] == res["attempt"]
