"""The trial and the checks of the outage tests: the database away, a host cut off, one SQLite
file shared under load.

The trial ``steady`` appends ``HEX ATTEMPT`` to the journal named by ``OUTAGE_JOURNAL`` when an
execution starts (one ``write`` on an ``O_APPEND`` file, fsynced: whole lines, never interleaved),
then logs its wall-clock time and pid as metrics ``t`` and ``pid`` at steps 0, 1, 2, … every
``TICK`` seconds for as long as ``OUTAGE_SECONDS`` says (a comma-separated list indexed by its
parameter ``i``), appends ``HEX ATTEMPT end`` and returns its attempt, pid and step count.
Workers import this module: it needs only the standard library.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_ENV = "OUTAGE_JOURNAL"
SECONDS_ENV = "OUTAGE_SECONDS"
TICK = 0.1
#: the spec's `trial:` reference of :func:`steady`
STEADY = f"{__file__}:steady"


def steady(hex: Any) -> dict[str, Any]:
    i = hex.randint("i", 0, 10**6)
    choices = [float(s) for s in os.environ.get(SECONDS_ENV, "1").split(",")]
    seconds = choices[i % len(choices)]
    _append(f"{hex.id} {hex.attempt}")
    end = time.monotonic() + seconds
    step = 0
    while True:
        hex.log(step=step, t=time.time(), pid=os.getpid())
        step += 1
        if time.monotonic() >= end:
            break
        time.sleep(TICK)
    _append(f"{hex.id} {hex.attempt} end")
    return {"attempt": hex.attempt, "steps": step, "pid": os.getpid()}


def _append(line: str) -> None:
    fd = os.open(os.environ[JOURNAL_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the checks (run by the tests) ----------------------------------------------------------------


def journal(path: Path, event: str = "start") -> list[tuple[int, int]]:
    """``(hex id, attempt)`` of every execution that started (or ``event="end"``: returned)."""
    if not path.exists():
        return []
    lines = [ln.split() for ln in path.read_text().splitlines()]
    return [(int(f[0]), int(f[1])) for f in lines if (f[2:] or ["start"])[0] == event]


@dataclass
class Tally:
    """What a sweep's rows and the journal say, once every trial should be final."""

    trials: int
    executions: int
    nonfinal: int  # trials still queued or running
    lost: int  # trials without the result of their final attempt
    duplicated: int  # attempts run more than once, or results not written by the final attempt
    results: dict[int, dict[str, Any]]  # hex id -> its result document
    steps: dict[int, int]  # hex id -> points of metric t stored
    times: list[float]  # every stored value of metric t (wall-clock time it was logged)


def tally(conn: Any, sweep_id: int, journal_path: Path) -> Tally:
    """The invariants of a finished sweep, read in SQL and from the journal."""
    import sqlalchemy as sa

    from hypero.schema import FINAL_STATES, experiment, meta, metric, result

    q = (
        sa.select(experiment.c.id, experiment.c.state, experiment.c.attempt, result.c.doc,
                  meta.c.doc)
        .select_from(experiment.outerjoin(result, result.c.hex_id == experiment.c.id)
                     .outerjoin(meta, meta.c.hex_id == experiment.c.id))
        .where(experiment.c.sweep_id == sweep_id)
        .order_by(experiment.c.id)
    )
    points = (
        sa.select(metric.c.hex_id, sa.func.count(), sa.func.max(metric.c.step))
        .join(experiment, experiment.c.id == metric.c.hex_id)
        .where(experiment.c.sweep_id == sweep_id, metric.c.name == "t")
        .group_by(metric.c.hex_id)
    )
    times = (
        sa.select(metric.c.value).join(experiment, experiment.c.id == metric.c.hex_id)
        .where(experiment.c.sweep_id == sweep_id, metric.c.name == "t")
    )
    with conn.store.db.read() as c:
        rows = c.execute(q).all()
        counted = {int(h): (int(n), int(top)) for h, n, top in c.execute(points)}
        stamps = [float(v) for v in c.execute(times).scalars()]
    runs = journal(journal_path)
    ids = {int(r[0]) for r in rows}
    mine = [run for run in runs if run[0] in ids]
    twice = sum(n - 1 for n in Counter(mine).values() if n > 1)
    nonfinal = lost = wrong = 0
    results, steps = {}, {}
    for hid, state, attempt, res, doc in rows:
        res, doc = res or {}, doc or {}
        if state not in FINAL_STATES:
            nonfinal += 1
        if state != "completed" or res.get("attempt") != attempt or (hid, attempt) not in mine:
            lost += 1
        elif doc.get("hypero.attempt") != attempt:
            wrong += 1
        results[int(hid)] = res
        n, top = counted.get(int(hid), (0, -1))
        steps[int(hid)] = n if top == n - 1 else -1  # -1: a gap in the steps
    return Tally(len(rows), len(mine), nonfinal, lost, twice + wrong, results, steps, stamps)


def wait_for(predicate: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``predicate()`` until it is truthy (its value), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = predicate()
        except Exception:
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
