"""An attached ``hypero run`` is what re-publishes the trials a broker lost (fault 5) while it
watches a sweep: it must outlive a database restart (fault 6), as the workers do.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypero import sweeps
from tests import services
from tests.conftest import Target
from tests.faults.harness import Rig, wait_for
from tests.workers import Procs

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[services.PostgresServer]:
    try:
        server = services.start_throwaway_postgres(tmp_path)
    except services.ServiceUnavailable as e:
        services.unavailable(f"PostgreSQL: {e}")
    yield server
    server.close()


def test_attached_run_waits_out_a_database_restart(
    pg: services.PostgresServer, redis_server: services.RedisServer, procs: Procs, tmp_path: Path
) -> None:
    rig = Rig(Target("postgresql", pg.url, "hyper"), f"{redis_server.url}/0", procs, tmp_path)
    rig.plan(sleep=1.0)
    rig.worker(concurrency=2)
    rig.ready()
    path = rig.spec("attached run, database restarted", n=6)
    run = procs.start([sys.executable, "-m", "hypero", "run", str(path), "--broker", rig.broker],
                      rig.env, "run")
    wait_for("the sweep under way", rig.entries, 60, procs.logs)
    pg.stop()
    time.sleep(2.0)
    pg.start()
    assert run.wait(90) == 0, rig.log("run")
    assert "6 completed, 0 failed" in rig.log("run")
    with rig.connect() as conn:
        (row,) = sweeps.sweeps_of(conn.store)
    assert row["state"] == "done"  # the attached run closed the sweep
    # the two trials running through the outage may have run again (it can outlast the lease)
    rig.verdict([int(row["id"])]).assert_clean(hits=2)
