"""The dispatcher killed while it enqueues a large sweep, then ``hypero run --resume`` (issue 4,
fault 4): every planned trial exists exactly once, with its planned parameters, and runs once.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from hypero import sweeps
from hypero.broker import pending_hex_ids
from tests.faults.harness import Rig, wait_for
from tests.workers import hypero_cli

pytestmark = pytest.mark.timeout(240)

N = 1500  # three of the dispatcher's 500-trial batches


def test_dispatcher_killed_mid_enqueue_then_resumed(rig: Rig) -> None:
    rig.plan(sleep=0.0)
    for _ in range(2):
        rig.worker(concurrency=2)
    path = rig.spec("fault 4: dispatcher killed", n=N)
    dispatcher = rig.procs.start(
        [sys.executable, "-m", "hypero", "run", str(path), "--detach", "--broker", rig.broker],
        rig.env, "dispatcher")

    with rig.connect() as conn:
        def some_batches_in() -> int | None:
            found = sweeps.sweeps_of(conn.store)
            n = len(sweeps.trial_ids(conn.store, int(found[0]["id"]))) if found else 0
            return n if n >= 500 else None

        wait_for("the first batch recorded", some_batches_in, 60, rig.procs.logs, every=0.01)
        os.killpg(dispatcher.pid, signal.SIGKILL)
        dispatcher.wait(10)
        (row,) = sweeps.sweeps_of(conn.store)
        sid = int(row["id"])
        recorded = len(sweeps.trial_ids(conn.store, sid))
    assert row["state"] == "enqueueing" and 500 <= recorded < N, (row["state"], recorded)

    t0 = time.monotonic()
    r = hypero_cli(["run", str(path), "--resume", "--broker", rig.broker], rig.env, timeout=200)
    assert r.returncode == 0, r.stdout + r.stderr + rig.procs.logs()
    assert f"sweep {sid}: re-published {N} queued trials" in r.stdout  # none had been sent
    elapsed = time.monotonic() - t0

    v = rig.verdict([sid])
    v.assert_clean(hits=0)
    assert v.trials == N and len(v.rows) == N and v.executions == N
    assert sorted(r["trial_index"] for r in v.rows.values()) == list(range(N))
    with rig.connect() as conn:
        params = conn.store.docs("param", list(v.rows))
        (row,) = sweeps.sweeps_of(conn.store)
    # the resumed tail is the plan's: trial k of the grid has i = k
    assert all(params[h]["i"] == r["trial_index"] for h, r in v.rows.items())
    assert {r["attempt"] for r in v.rows.values()} == {1}
    assert row["state"] == "done"
    print(f"killed after {recorded} of {N} trials recorded; resumed and ran in {elapsed:.0f} s")


def test_resume_while_the_dispatcher_still_enqueues_records_each_trial_once(rig: Rig) -> None:
    # a slow dispatcher taken for dead: --resume runs while it still adds batches
    n = 3000
    path = rig.spec("fault 4: dispatcher only slow", n=n)
    dispatcher = rig.procs.start(
        [sys.executable, "-m", "hypero", "run", str(path), "--detach", "--broker", rig.broker],
        rig.env, "dispatcher")
    with rig.connect() as conn:
        def first_batch_in() -> int | None:
            found = sweeps.sweeps_of(conn.store)
            got = len(sweeps.trial_ids(conn.store, int(found[0]["id"]))) if found else 0
            return got if got >= 500 else None

        wait_for("the first batch recorded", first_batch_in, 60, rig.procs.logs, every=0.01)
        r = hypero_cli(["run", str(path), "--resume", "--detach", "--broker", rig.broker],
                       rig.env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert dispatcher.wait(60) == 0, rig.procs.logs()
        (row,) = sweeps.sweeps_of(conn.store)
        ids = sweeps.trial_ids(conn.store, int(row["id"]))
        indices = [conn.store.experiment(h)["trial_index"] for h in ids]
    assert len(ids) == n and sorted(indices) == list(range(n))
    assert row["state"] == "running"
    assert set(ids) <= (pending_hex_ids(rig.celery, rig.queue) or set())  # all published
