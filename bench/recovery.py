"""Case 7: time from a worker host's death to its trial running again, against the lease.

Two ``hypero worker --concurrency 1`` processes (two "hosts", each in its own session) take the
same queue. A one-trial sweep with a short ``lease`` runs a minute-long trial; once it has run
for a moment, the whole process group of the worker running it gets SIGKILL (no goodbye to the
database or the broker). The time runs from the kill to the ``started_at`` of attempt 2, which
the surviving worker claims after the lease has run out. Target: within two leases.

    python -m bench.recovery [--quick]
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from bench._common import Env, Procs, Row, median, wait_until
from bench.e2e import HyperoWorker, run_sweep


def one(env: Env, workers: list[HyperoWorker], lease: float) -> tuple[float, HyperoWorker]:
    """Seconds from the kill to attempt 2 running; the worker that was killed."""
    _, sid = run_sweep(env, 1, workers[0].queue, trial="sleeper", lease=f"{lease:g}s",
                       wait=False)
    q = ("SELECT id, state, attempt, worker, extract(epoch FROM started_at) FROM experiment "
         "WHERE sweep_id = %s")
    with env.pg() as c:
        def running(attempt: int) -> Any:
            row = c.execute(q, [sid]).fetchone()
            return row if row and row[1] == "running" and row[2] == attempt else None

        hid, _, _, name, _ = wait_until(lambda: running(1), 60, what="attempt 1")
        time.sleep(min(2.0, lease / 2))  # a heartbeat or two into the trial
        victim = next(w for w in workers if name == f"{w.name}@localhost")
        t_kill = time.time()
        os.killpg(victim.proc.pid, signal.SIGKILL)
        *_, started = wait_until(lambda: running(2), 10 * lease + 30, every=0.05,
                                 what="attempt 2")
        c.execute("UPDATE experiment SET cancel_requested = true WHERE id = %s", [hid])
    victim.proc.wait()
    return float(started) - t_kill, victim


def measure(env: Env, procs: Procs) -> list[Row]:
    lease = 5.0 if env.quick else 10.0
    reps = 1 if env.quick else 3
    first = HyperoWorker(env, procs, 1)
    workers = [first, HyperoWorker(env, procs, 1, queue=first.queue)]
    took = []
    try:
        run_sweep(env, 4, first.queue)  # both up and warm
        for _ in range(reps):
            t, victim = one(env, workers, lease)
            took.append(t)
            procs.started.remove(victim.proc)
            workers.remove(victim)
            workers.append(HyperoWorker(env, procs, 1, queue=first.queue))
    finally:
        for w in workers:
            w.stop()
    t = median(took)
    return [Row("7 recovery after kill -9 of a worker host vs the lease", t, lease, "s",
                "<= 2x lease", t <= 2 * lease, higher_is_better=False,
                note=f"lease {lease:g} s; 2 workers, the one running the trial killed",
                runs={"hypero": took})]


if __name__ == "__main__":
    from bench.__main__ import standalone

    standalone("7", None, __doc__)
