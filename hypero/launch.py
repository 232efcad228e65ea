"""What ``hypero run`` and ``hypero status`` do, with their terminal output (rich)."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hypero import config, dispatcher, search, sweeps
from hypero.connection import Connection, connect
from hypero.errors import ConfigError, HyperoError, NotFound, SpecError, StorageError
from hypero.monitor import SweepStatus, add_broker, statuses, sweep_status
from hypero.spec import Spec

RECONCILE_EVERY = 15.0


def dry_run(out: Console, spec: Spec, trials: int | None, seed: int | None) -> None:
    n = dispatcher.trial_count(spec, trials)
    out.print(f"{n} trials")
    out.print(f"battery: {spec.battery}   version: {spec.version}   method: {spec.method}")
    if spec.method == "bayes":
        out.print("(bayes: parameters are suggested at run time)")
        return
    for i, params in enumerate(search.plan(spec, 0 if seed is None else seed, min(n, 5))):
        out.print(f"  trial {i}: {params}")
    if n > 5:
        out.print(f"  … and {n - 5} more")


def _local_workers(settings: config.Settings, n: int, queue: str, logdir: Path) -> Any:
    argv = [sys.executable, "-m", "hypero", "worker", "--concurrency", str(n), "--queues", queue,
            "--loglevel", "WARNING", "--name", f"hypero-local-{os.getpid()}@localhost"]
    env = {**os.environ, "HYPERO_DB": settings.db, "HYPERO_SCHEMA": settings.schema,
           "HYPERO_BROKER": str(settings.broker)}
    log = open(logdir / "worker.log", "ab")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, log


def _stop_workers(proc: subprocess.Popen[bytes], log: Any) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


def _find_unfinished(conn: Connection, spec: Spec) -> int:
    try:
        bid = conn.store.battery_id(spec.battery, create=False)
    except NotFound:
        bid = None
    path = str(spec.path) if spec.path else None
    for row in reversed(sweeps.sweeps_of(conn.store, bid) if bid else []):
        if row["state"] in ("enqueueing", "running") and (row["spec"] or {}).get("path") == path:
            return int(row["id"])
    raise SpecError(f"--resume: no unfinished sweep of battery {spec.battery!r} from this file",
                    file=path)


def run(settings: config.Settings, spec: Spec, out: Console, *, workers: int | None,
        detach: bool, resume: bool, trials: int | None, seed: int | None) -> int:
    """Create (or resume) the sweep, enqueue, and attach; the exit code."""
    from hypero.tasks import app, configure

    if not resume:
        dispatcher.trial_count(spec, trials)  # a spec without a count is refused before anything
    if detach and not settings.broker:
        raise ConfigError("--detach needs a broker (--broker or HYPERO_BROKER): the embedded "
                          "one stops with this command")
    conn = connect(settings.db, schema=settings.schema)
    watch: Callable[[], None] | None = None
    with contextlib.ExitStack() as stack:
        stack.callback(conn.close)
        if not settings.broker:
            from hypero.broker import embedded

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hypero-run-")))
            settings = replace(settings, broker=stack.enter_context(embedded()))
            proc, log = _local_workers(settings, workers or os.cpu_count() or 1, spec.queue, tmp)
            stack.callback(_stop_workers, proc, log)
            watch = functools.partial(_workers_died, proc, tmp / "worker.log")
        celery = configure(app, settings, spec.queue)
        if resume:
            sid = _find_unfinished(conn, spec)
            n = dispatcher.resume(conn, sid, celery)
            out.print(f"sweep {sid}: re-published {n} queued trials the broker did not hold")
        else:
            sid = dispatcher.dispatch(conn, spec, celery, seed=seed, run_cap=trials)
            st = sweep_status(conn.store, sid)
            out.print(f"sweep {sid}: {st.total} trials of battery {spec.battery!r} enqueued "
                      f"on queue {spec.queue!r}")
        if detach:
            return 0
        return attach(conn, sid, celery, out, watch)


def _workers_died(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        raise HyperoError(f"the local workers stopped (exit status {proc.returncode})"
                          + (f": {tail[0]}" if tail else ""))


def attach(conn: Connection, sid: int, celery: Any, out: Console,
           watch: Callable[[], None] | None = None) -> int:
    """Show the sweep's progress until every trial is final; 0 if all completed, else 1.
    ``watch`` raises if what runs the trials (the embedded workers) is gone."""
    last_reconcile = time.monotonic()
    with Live(console=out, refresh_per_second=4, transient=False) as live:
        while True:
            try:
                st = sweep_status(conn.store, sid)
            except StorageError:  # the database restarts: wait for it, as the workers do
                time.sleep(1.0)
                continue
            live.update(_progress(st))
            if st.finished >= st.total:
                break
            if watch is not None:
                watch()
            if time.monotonic() - last_reconcile > RECONCILE_EVERY:
                last_reconcile = time.monotonic()
                with contextlib.suppress(Exception):
                    # not blind: every 15 s, RabbitMQ would get every queued trial again
                    dispatcher.resume(conn, sid, celery, blind=False)
            time.sleep(0.5)
    if st.state not in ("cancelled",):
        sweeps.set_sweep_state(conn.store, sid, "done")
    _print_best(conn, st, out)
    bad = st.counts["failed"]
    return 1 if bad else 0


def _bar(st: SweepStatus, width: int = 30) -> str:
    done = int(width * st.finished / st.total) if st.total else width
    return "█" * done + "░" * (width - done)


def _eta(st: SweepStatus) -> str:
    eta = st.eta
    if eta is None:
        return "?"
    return f"{eta:.0f}s" if eta < 120 else f"{eta / 60:.0f}m"


def _progress(st: SweepStatus) -> Table:
    t = Table.grid(padding=(0, 1))
    c = st.counts
    best = "" if st.best is None or st.metric is None else (
        f"  best {st.metric['name']}={st.best[1]:.6g} (hex {st.best[0]})")
    t.add_row(f"sweep {st.id}", _bar(st), f"{st.finished}/{st.total}",
              f"{st.rate * 60:.1f}/min", f"ETA {_eta(st)}")
    t.add_row("", f"queued {c['queued']}  running {c['running']}  completed {c['completed']}  "
              f"failed {c['failed']}  pruned {c['pruned']}  cancelled {c['cancelled']}{best}")
    return t


def _print_best(conn: Connection, st: SweepStatus, out: Console, n: int = 5) -> None:
    c = st.counts
    out.print(f"sweep {st.id} finished: {c['completed']} completed, {c['failed']} failed, "
              f"{c['pruned']} pruned, {c['cancelled']} cancelled")
    if st.metric is None:
        return
    name, goal = st.metric["name"], st.metric.get("goal", "minimize")
    ids = sweeps.trial_ids(conn.store, st.id, ["completed"])
    from hypero.export import table

    rows, cols = table(conn.store, ids, "*", [name], None, f"result:{name}", goal == "minimize")
    t = Table(title=f"best trials by {name} ({goal})")
    for col in cols:
        t.add_column(col)
    for r in rows[:n]:
        t.add_row(*(f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)
                    for v in r))
    out.print(t)


def _status_table(items: list[SweepStatus]) -> Table:
    t = Table(title="hypero sweeps")
    for col in ("sweep", "battery", "version", "state", "queued", "running", "completed",
                "failed", "pruned", "cancelled", "depth", "workers", "rate/min", "ETA", "best"):
        t.add_column(col)
    for s in items:
        c = s.counts
        best = "" if s.best is None or s.metric is None else (
            f"{s.metric['name']}={s.best[1]:.6g} (hex {s.best[0]})")
        t.add_row(
            str(s.id), s.battery, s.version, s.state, *(str(c[k]) for k in (
                "queued", "running", "completed", "failed", "pruned", "cancelled")),
            "-" if s.depth is None else str(s.depth),
            "-" if s.workers is None else str(len(s.workers)),
            f"{s.rate * 60:.1f}", _eta(s), best,
        )
    return t


def status(ctx: Any, conn: Connection, battery: str | None, watch: bool,
           interval: float) -> None:
    celery = None
    if ctx.settings.broker:
        from hypero.tasks import app, configure

        celery = configure(app, ctx.settings)

    def snapshot() -> Table:
        items = statuses(conn.store, battery)
        if celery is not None:
            add_broker(items, celery)
        return _status_table(items)

    if not watch:
        ctx.out.print(snapshot())
        return
    with Live(snapshot(), console=ctx.out, auto_refresh=False) as live:
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(interval)
                live.update(snapshot(), refresh=True)
