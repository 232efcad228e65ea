"""Real hypero processes for the end-to-end tests: workers, the CLI, and waiting on sweeps.

Every process is started in a session of its own, so that stopping it (SIGTERM to the whole
process group, then SIGKILL) also stops the pool processes and trials it forked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from celery import Celery

import hypero
from hypero import config, sweeps
from hypero.tasks import configure

REPO = Path(__file__).resolve().parents[1]
TRIALS = REPO / "tests" / "trials"
STOP_GRACE = 10.0


def unique(prefix: str) -> str:
    """A name no other test uses (queues, worker names, batteries)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any ``HYPERO_*`` variable, the repository on ``PYTHONPATH``,
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERO_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def hypero_cli(
    args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hypero ARGS`` to its end; stdout and stderr captured as text."""
    env = {"COLUMNS": "250", **env}  # rich tables keep their columns readable
    return subprocess.run(
        [sys.executable, "-m", "hypero", *args], env=dict(env), cwd=cwd, capture_output=True,
        text=True, timeout=timeout,
    )


def stop(proc: subprocess.Popen[Any], grace: float = STOP_GRACE) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; reap the leader."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # pool processes and trials may outlive the leader for a moment
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Procs:
    """The processes one test started, each logging to a file; ``stop_all`` ends them all."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(
        self, argv: Sequence[str], env: Mapping[str, str], label: str, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        log = self.logdir / f"{label}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((label, proc, log))
        return proc

    def worker(
        self, broker: str, queue: str, env: Mapping[str, str], *, concurrency: int = 1,
        name: str | None = None, gpus: str | None = None, extra: Sequence[str] = (),
    ) -> str:
        """Start ``hypero worker`` on ``queue``; its node name."""
        name = name or f"{unique('w')}@localhost"
        argv = [sys.executable, "-m", "hypero", "worker", "--broker", broker,
                "--concurrency", str(concurrency), "--queues", queue, "--name", name,
                "--loglevel", "INFO", *extra]
        if gpus is not None:
            argv += ["--gpus", gpus]
        self.start(argv, env, name.partition("@")[0])
        return name

    def kill(self, name: str) -> None:
        """SIGKILL the process group of worker ``name`` at once, as a crashed host would."""
        for label, proc, _ in self.started:
            if label == name.partition("@")[0]:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                return
        raise KeyError(name)

    def logs(self, tail: int = 40) -> str:
        parts = []
        for label, proc, log in self.started:
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {label} (exit {proc.poll()}) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop_all(self) -> None:
        for _, proc, _ in reversed(self.started):
            stop(proc)


def celery_for(broker: str, queue: str, target: Any) -> Celery:
    """A Celery app of this test's own, configured as hypero's dispatcher configures its app."""
    settings = config.Settings(db=target.url, schema=target.schema, broker=broker)
    return configure(Celery(unique("test")), settings, queue)


def wait_ready(celery: Celery, names: Sequence[str], procs: Procs, timeout: float = 60) -> None:
    """Wait until every worker in ``names`` answers a ping."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        replies = celery.control.ping(destination=list(names), timeout=0.5) or []
        seen |= {n for r in replies for n in r}
        if seen >= set(names):
            return
        time.sleep(0.2)
    raise AssertionError(f"workers {sorted(set(names) - seen)} never answered a ping\n"
                         + procs.logs())


def wait_final(
    conn: hypero.Connection, sweep_id: int, procs: Procs, timeout: float = 60
) -> dict[str, int]:
    """Wait until no trial of the sweep is queued or running; its counts by state."""
    deadline = time.monotonic() + timeout
    while True:
        counts = sweeps.counts(conn.store, sweep_id)
        if counts["queued"] == 0 and counts["running"] == 0:
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"sweep {sweep_id} not final after {timeout:g} s: {counts}\n"
                                 + procs.logs())
        time.sleep(0.2)


def write_spec(directory: Path, text: str, name: str = "spec.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def trial(ref: str) -> str:
    """``basic.py:train`` → the absolute ``trial:`` reference of a trial under tests/trials."""
    file, _, func = ref.partition(":")
    return f"{TRIALS / file}:{func}"
