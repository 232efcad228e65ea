"""What every case of ``python -m bench`` shares: where the services are, a row of the table,
processes started in their own session, RSS of a process tree, and waiting.

The benchmark uses the machine's own PostgreSQL and Redis; it owns one fresh PostgreSQL schema
per run (dropped at the end) and one Redis database number (only that one is flushed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_BROKER = "redis://127.0.0.1:6379/13"


@dataclass
class Env:
    """The services of one run and the names it owns."""

    db: str = DEFAULT_DB
    broker: str = DEFAULT_BROKER
    quick: bool = False
    schema: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:8]}")
    workdir: Path = field(default_factory=lambda: Path("/tmp") / f"hypero-bench-{os.getpid()}")

    @property
    def libpq(self) -> str:
        """The DSN for psycopg/psql (no SQLAlchemy driver tag)."""
        return self.db.replace("postgresql+psycopg://", "postgresql://")

    def pg(self, schema: str | None = None) -> Any:
        """An autocommit psycopg connection, ``search_path`` set to ``schema`` (default ours)."""
        import psycopg

        conn = psycopg.connect(self.libpq, autocommit=True)
        conn.execute(f'SET search_path TO "{schema or self.schema}"')
        return conn

    def hypero_env(self, **extra: str) -> dict[str, str]:
        """The environment of a ``hypero`` child process pointed at this run's services."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERO_")}
        env.update(HYPERO_DB=self.db, HYPERO_SCHEMA=self.schema, HYPERO_BROKER=self.broker,
                   HYPERO_CHECKPOINTS=str(self.workdir / "checkpoints"))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env.update(extra)
        return env

    def flush_redis(self) -> None:
        import redis

        with redis.Redis.from_url(self.broker) as client:
            client.flushdb()

    def drop_schema(self, schema: str | None = None) -> None:
        with self.pg("public") as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema or self.schema}" CASCADE')


@dataclass
class Row:
    """One line of the table: hypero's figure beside its baseline's, measured in one run."""

    case: str
    hypero: float | None
    baseline: float | None
    unit: str
    target: str = ""
    #: True/False against the target; None when the row has no target (context only)
    met: bool | None = None
    higher_is_better: bool = True
    note: str = ""
    runs: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.hypero is None or not self.baseline:
            return None
        return self.hypero / self.baseline


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def wait_until(check: Callable[[], Any], timeout: float, every: float = 0.1,
               what: str = "condition") -> Any:
    """``check()``'s first truthy value; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Procs:
    """Processes this run started, each in its own session, logging to a file."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str],
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "ab")
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
        """SIGTERM the process's group, SIGKILL it after ``grace``; reap the leader."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # pool processes outliving the leader
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.started):
            self.stop(proc, grace=5.0)

    def log_tail(self, name: str, n: int = 2000) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


def tree_rss(pid: int) -> tuple[int, int]:
    """``(sum of RSS, sum of PSS)`` in bytes over a process and its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    rss = pss = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss, pss


def tree_size(pid: int) -> int:
    """How many processes the tree of ``pid`` has (the leader included)."""
    import psutil

    try:
        return 1 + len(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return 0


def python() -> str:
    return sys.executable
