"""What every fault test does around its fault: a sweep of journalled trials on real workers,
a bounded wait for every trial to be final, and the invariants checked in SQL and the journal.

The invariants (issue 4): no planned trial lost, no result written twice or by a stale attempt,
no trial left queued or running, and ``executions <= trials + faults that hit a running trial``.
:class:`Rig` holds one test's services, workers and files; :func:`verdict` computes the
figures, :meth:`Verdict.assert_clean` asserts them. ``bench/soak.py`` uses the same code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from celery import Celery

import hypero
from hypero import dispatcher, spec, sweeps
from tests.faults import journal
from tests.workers import REPO, Procs, celery_for, clean_env, unique, wait_ready, write_spec

T = TypeVar("T")
TRIAL = f"{REPO / 'tests' / 'faults' / 'trials.py'}:work"


def wait_for(what: str, fn: Callable[[], T | None], timeout: float,
             logs: Callable[[], str] = str, every: float = 0.05) -> T:
    """``fn()``'s first truthy value, polled until ``timeout`` s; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:g} s\n{logs()}")
        time.sleep(every)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, …), parents first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += children.get(p, [])
    return out


class Rig:
    """One test's sweep setup: a store, a broker, workers on a queue of their own, the journal
    and plan files, and the checkpoint root the trials share."""

    def __init__(self, target: Any, broker: str, procs: Procs, tmp: Path,
                 env: dict[str, str] | None = None) -> None:
        self.target, self.broker, self.procs, self.tmp = target, broker, procs, tmp
        self.queue = unique("fq")
        self.journal = tmp / "journal.jsonl"
        self.plan_path = tmp / "plan.json"
        self.checkpoints = tmp / "checkpoints"
        self.spool = tmp / "spool"
        journal.write_plan(self.plan_path, sleep=0.2)
        self.env = clean_env({
            **target.env(), journal.JOURNAL_ENV: str(self.journal),
            journal.PLAN_ENV: str(self.plan_path), "HYPERO_CHECKPOINTS": str(self.checkpoints),
            "HYPERO_SPOOL": str(self.spool), **(env or {}),
        })
        self.celery: Celery = celery_for(broker, self.queue, target)
        self.workers: list[str] = []

    # -- the sweep --------------------------------------------------------------------------------

    def plan(self, **kw: Any) -> None:
        """Rewrite the trial plan (see :func:`journal.write_plan`); trials read it as they start."""
        journal.write_plan(self.plan_path, **kw)

    def spec(self, battery: str, n: int, *, lease: str = "2s", max_attempts: int = 3,
             retries: int = 0, name: str = "spec.yaml") -> Path:
        """A grid sweep of ``n`` journalled trials (parameter ``i`` = 0 … n-1) on this queue."""
        axis = "{values: [0]}" if n == 1 else f"{{distribution: int_uniform, min: 0, max: {n - 1}}}"
        return write_spec(self.tmp, f"""
battery: "{battery}"
trial: {TRIAL}
method: grid
queue: {self.queue}
lease: {lease}
max_attempts: {max_attempts}
retries: {retries}
parameters:
  i: {axis}
""", name=name)

    def dispatch(self, path: Path, seed: int = 1) -> int:
        with self.target.connect() as conn:
            return dispatcher.dispatch(conn, spec.load(path), self.celery, seed=seed)

    def connect(self) -> hypero.Connection:
        return self.target.connect()  # type: ignore[no-any-return]

    # -- workers ----------------------------------------------------------------------------------

    def worker(self, concurrency: int = 1, env: dict[str, str] | None = None) -> str:
        """Start a ``hypero worker`` (its own session: killing its group kills its trials)."""
        name = self.procs.worker(self.broker, self.queue, {**self.env, **(env or {})},
                                 concurrency=concurrency)
        self.workers.append(name)
        return name

    def ready(self, names: Sequence[str] | None = None, timeout: float = 60) -> None:
        wait_ready(self.celery, list(names or self.workers), self.procs, timeout)

    def proc(self, name: str) -> Any:
        for label, proc, _ in self.procs.started:
            if label == name.partition("@")[0]:
                return proc
        raise KeyError(name)

    def log(self, name: str) -> str:
        for label, _, path in self.procs.started:
            if label == name.partition("@")[0]:
                return path.read_text(errors="replace")
        raise KeyError(name)

    def signal_group(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to all of the worker: its process group (Celery and its pool), then every
        process below it (trials run in sessions of their own), as a host that freezes would."""
        leader = self.proc(name).pid
        os.killpg(leader, sig)  # first: a stopped pool forks no new trial meanwhile
        for pid in descendants(leader):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self, name: str) -> None:
        """SIGKILL the worker's process group at once, as a host that dies would."""
        self.procs.kill(name)

    # -- what is going on -------------------------------------------------------------------------

    def entries(self) -> list[journal.Entry]:
        return journal.read(self.journal)

    def running_rows(self, sweep_id: int, worker: str | None = None) -> list[dict[str, Any]]:
        with self.connect() as conn:
            rows = [conn.store.experiment(h)
                    for h in sweeps.trial_ids(conn.store, sweep_id, ["running"])]
        return [r for r in rows if worker is None or r["worker"] == worker]

    def saved_epoch(self, row: dict[str, Any]) -> int:
        path = self.checkpoints / str(row["battery_id"]) / str(row["id"]) / "epoch"
        return int(path.read_text()) if path.exists() else 0

    def wait_final(self, sweep_ids: Iterable[int], timeout: float) -> None:
        """Wait (at most ``timeout`` s in all) until no trial of the sweeps is queued or running."""
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            for sid in sweep_ids:
                def final(sid: int = sid) -> bool:
                    c = sweeps.counts(conn.store, sid)
                    return c["queued"] == 0 and c["running"] == 0 and sum(c.values()) > 0
                wait_for(f"sweep {sid} final", final, max(0.0, deadline - time.monotonic()),
                         self.procs.logs, every=0.2)

    def verdict(self, sweep_ids: Iterable[int], expect_failed: Iterable[int] = ()) -> Verdict:
        with self.connect() as conn:
            return verdict(conn, list(sweep_ids), self.entries(), expect_failed)


# -- the invariants -------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The figures of issue 4 for some sweeps, and the trials behind each bad one."""

    trials: int = 0  # planned
    executions: int = 0  # journal starts
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    non_final: list[int] = field(default_factory=list)
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    executions_of: Counter[int] = field(default_factory=Counter)

    def assert_clean(self, hits: int) -> None:
        """0 lost, 0 duplicated, 0 non-final, executions <= trials + ``hits`` (faults that hit
        a running trial)."""
        assert not self.lost, f"lost: {self.lost}"
        assert not self.duplicated, f"duplicated: {self.duplicated}"
        assert not self.non_final, f"non-final: {self.non_final}"
        assert self.executions <= self.trials + hits, (
            f"{self.executions} executions > {self.trials} trials + {hits} faults")


def verdict(conn: hypero.Connection, sweep_ids: Sequence[int], entries: list[journal.Entry],
            expect_failed: Iterable[int] = ()) -> Verdict:
    """Check every trial of ``sweep_ids`` against the database and the journal.

    A trial is *lost* if its sweep planned it and no row holds it, if it failed though the test
    did not make it fail (``expect_failed``), or if it completed without an execution in the
    journal. A result is *duplicated* if two rows hold one planned trial, if one attempt number
    ran twice, or if the recorded result is not exactly the one of the attempt that owns the
    trial (its attempt and pid, one ``done`` point at step = that attempt).
    """
    v = Verdict()
    expected = set(expect_failed)
    for sid in sweep_ids:
        planned = int(sweeps.get_sweep(conn.store, sid)["trials"])
        ids = sweeps.trial_ids(conn.store, sid)
        rows = {h: conn.store.experiment(h) for h in ids}
        v.trials += planned
        v.rows.update(rows)
        index = Counter(r["trial_index"] for r in rows.values())
        v.lost += [f"sweep {sid} trial {i}: no row" for i in range(planned) if not index[i]]
        v.duplicated += [f"sweep {sid} trial {i}: {n} rows" for i, n in index.items() if n > 1]
        v.results.update(conn.store.docs("result", ids))
        done = {h: m.get("done", []) for h, m in conn.store.metrics(ids, ["done"]).items()}
        ours = set(ids)
        runs = [e for e in journal.starts(entries) if e.hex in ours]
        v.executions += len(runs)
        v.executions_of.update(e.hex for e in runs)
        tokens = Counter((e.hex, e.attempt) for e in runs)
        v.duplicated += [f"hex {h} attempt {a} ran {n} times"
                         for (h, a), n in tokens.items() if n > 1]
        pid_of = {(e.hex, e.attempt): e.pid for e in runs}
        for h, row in rows.items():
            state = row["state"]
            if state in ("queued", "running"):
                v.non_final.append(h)
            elif state == "failed" and h not in expected:
                v.lost.append(f"hex {h}: failed: {(row['error'] or '')[-300:]}")
            elif state == "completed":
                res, a = v.results.get(h, {}), int(row["attempt"])
                if (h, a) not in pid_of:
                    v.lost.append(f"hex {h}: completed by attempt {a}, which never ran")
                elif res.get("attempt") != a or res.get("pid") != pid_of[(h, a)]:
                    v.duplicated.append(f"hex {h}: result {res} is not attempt {a}'s "
                                        f"(pid {pid_of[(h, a)]})")
                if [s for s, _ in done.get(h, [])] != [a]:
                    v.duplicated.append(f"hex {h}: done points {done.get(h)} (attempt {a})")
    return v

