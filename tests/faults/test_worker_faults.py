"""Faults of a worker host and of the trial's own process (issue 4, faults 1-3).

Each test runs a journalled sweep on PostgreSQL and a Redis of its own with real ``hypero
worker`` processes, hurts them, waits for every trial to be final and checks the invariants
(:mod:`tests.faults.harness`).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.harness import Rig, alive, wait_for

pytestmark = pytest.mark.timeout(120)

LEASE = 2.0
KEEPER_EVERY = 5.0  # hypero.tasks.keep_leases: how often any worker looks for expired leases


# -- 1. a worker host dies ------------------------------------------------------------------------


def test_worker_killed_mid_trial_reruns_from_its_checkpoint(rig: Rig) -> None:
    rig.plan(sleep=1.5)  # five epochs of 0.3 s, each saved in hex.checkpoint_dir
    doomed = rig.worker(concurrency=2)
    rig.worker(concurrency=2)
    rig.ready()
    sid = rig.dispatch(rig.spec("fault 1: host killed", n=8))

    # both of the doomed worker's slots busy, each trial past its first saved epoch
    def busy() -> list[dict[str, object]] | None:
        rows = rig.running_rows(sid, doomed)
        ok = len(rows) == 2 and all(rig.saved_epoch(r) >= 1 for r in rows)
        return rows if ok else None

    wait_for("two trials under way on the doomed worker", busy, 30, rig.procs.logs)
    rig.kill(doomed)  # kill -9 of the whole process group: Celery, its pool, the trials
    killed_at = time.monotonic()
    hit = rig.running_rows(sid, doomed)  # dead now: nobody can claim or release these rows
    saved = {int(r["id"]): rig.saved_epoch(r) for r in hit}
    assert len(hit) == 2 and all(e >= 1 for e in saved.values()), (hit, saved)
    # taken back by a live worker's lease keeper once the lease ran out
    wait_for("the dead worker's trials taken back", lambda: not any(
        r["id"] in saved and r["worker"] == doomed for r in rig.running_rows(sid)),
        LEASE + KEEPER_EVERY + 3.0, rig.procs.logs)
    recovered_in = time.monotonic() - killed_at

    rig.wait_final([sid], timeout=60)
    v = rig.verdict([sid])
    v.assert_clean(hits=len(hit))
    assert v.trials == 8 and v.executions == 8 + 2
    reruns = {e.hex: e for e in rig.entries() if e.event == "start" and e.attempt == 2}
    assert set(reruns) == set(saved)
    for h, epoch in saved.items():
        assert v.rows[h]["state"] == "completed" and v.rows[h]["attempt"] == 2
        # the re-run resumed from the epoch its lost predecessor saved, not from zero
        assert reruns[h].epoch == epoch and v.results[h]["from_epoch"] == epoch
    assert recovered_in >= LEASE - 0.5  # not before the lease ran out


# -- 2. the trial's process dies ------------------------------------------------------------------


def test_killed_trial_process_reruns_and_a_self_killing_trial_fails_at_max_attempts(
    rig: Rig,
) -> None:
    rig.plan(sleep=1.0, suicide=[0])  # trial i=0 kills its own process on every attempt
    rig.worker(concurrency=2)
    rig.ready()
    sid = rig.dispatch(rig.spec("fault 2: child killed", n=8, max_attempts=3))
    with rig.connect() as conn:
        params = conn.store.docs("param", list(rig.verdict([sid]).rows))
    (suicidal,) = [h for h, p in params.items() if p["i"] == 0]

    def victim() -> int | None:  # a healthy trial's process, journalled and still running
        live = [e for e in rig.entries() if e.event == "start" and e.hex != suicidal
                and alive(e.pid) and not any(x.event == "end" and x.pid == e.pid
                                             for x in rig.entries())]
        return live[0].pid if live else None

    pid = wait_for("a healthy trial running", victim, 30, rig.procs.logs)
    (target,) = [e for e in rig.entries() if e.event == "start" and e.pid == pid]
    os.kill(pid, signal.SIGKILL)  # the forked child only: the worker survives

    rig.wait_final([sid], timeout=60)
    v = rig.verdict([sid], expect_failed=[suicidal])
    v.assert_clean(hits=1 + 3)  # one kill from outside, three from inside
    assert v.executions == 8 + 1 + 2  # the suicidal trial ran three times
    assert v.executions_of[suicidal] == 3 and v.executions_of[target.hex] == 2
    bad = v.rows[suicidal]
    assert bad["state"] == "failed" and bad["attempt"] == 3
    assert "killed by signal 9" in bad["error"] and "max_attempts" in bad["error"]
    assert v.results.get(suicidal, {}) == {}
    killed = v.rows[target.hex]
    assert killed["state"] == "completed" and killed["attempt"] == 2 and killed["failures"] == 0
    others = [r for h, r in v.rows.items() if h not in (suicidal, target.hex)]
    assert {(r["state"], r["attempt"]) for r in others} == {("completed", 1)}


# -- 3. a worker frozen longer than its lease, then thawed (a zombie) ---------------------------


def test_stopped_worker_is_fenced_when_it_wakes(rig: Rig) -> None:
    # attempt 1 of i=0 ends 3 s in (so it is over when the zombie wakes); of i=1, 60 s in
    rig.plan(sleep=0.5, first={0: 3.0, 1: 60.0})
    zombie = rig.worker(concurrency=2)
    rig.ready()
    sid = rig.dispatch(rig.spec("fault 3: stopped worker", n=2))
    firsts = wait_for("both trials started on one worker",
                      lambda: [e for e in rig.entries() if e.event == "start"]
                      if len(rig.entries()) >= 2 else None, 30, rig.procs.logs)
    rig.signal_group(zombie, signal.SIGSTOP)
    stopped_at = time.monotonic()
    with rig.connect() as conn:
        params = conn.store.docs("param", [e.hex for e in firsts])
    late, hung = sorted(firsts, key=lambda e: params[e.hex]["i"])

    rig.worker()  # its lease keeper takes both trials back, then it runs them (attempt 2)
    try:
        rig.wait_final([sid], timeout=60)
        frozen = time.monotonic() - stopped_at
        assert frozen > LEASE
        # the late trial's own process wakes first and delivers its result to its stale parent
        os.kill(late.pid, signal.SIGCONT)
        wait_for("the late attempt's end", lambda: not alive(late.pid), 10, rig.procs.logs)
        assert any(e.event == "end" and e.pid == late.pid for e in rig.entries())
    finally:
        rig.signal_group(zombie, signal.SIGCONT)
    thawed = time.monotonic()
    # the stale parent of the other trial learns at its next heartbeat and stops its trial
    wait_for("the hung attempt stopped", lambda: not alive(hung.pid), LEASE + 1,
             rig.procs.logs)
    stopped_within = time.monotonic() - thawed
    for e in (late, hung):  # each refusal said so in the zombie's log
        wait_for(f"hex {e.hex} refused in the zombie's log",
                 lambda e=e: f"trial {e.hex} attempt 1 is stale" in rig.log(zombie), 10,
                 rig.procs.logs)
    assert rig.log(zombie).count("succeeded in") == rig.log(zombie).count("'fenced'") == 2

    v = rig.verdict([sid])
    v.assert_clean(hits=2)
    assert v.executions == 4
    for h in (late.hex, hung.hex):
        # the results are attempt 2's: the zombie's late one was refused, not merged
        assert v.rows[h]["state"] == "completed" and v.rows[h]["attempt"] == 2
        assert v.results[h]["attempt"] == 2
    assert not any(e.event == "end" and e.pid == hung.pid for e in rig.entries())
    assert rig.proc(zombie).poll() is None  # the zombie worker itself lives on
    assert stopped_within < LEASE
