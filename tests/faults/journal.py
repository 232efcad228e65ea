"""The journal a fault-suite trial keeps of its own executions, and the trial plan it follows.

Every execution of a trial appends a ``start`` line when it begins and an ``end`` line when its
function returns (an execution killed on the way has a ``start`` only). Lines are JSON, written
with ``O_APPEND`` and fsynced, so that a process killed a moment later has left whole lines and
concurrent writers never interleave. This module is imported by the trials inside worker
processes: it needs nothing but the standard library.

The plan (a JSON file named by ``FAULT_PLAN``) says how long each trial index runs and which
ones misbehave: ``{"sleep": 0.5, "sleeps": {"3": 2.0}, "first": {"0": 60}, "suicide": [1]}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_ENV = "FAULT_JOURNAL"
PLAN_ENV = "FAULT_PLAN"


def append(path: str | os.PathLike[str], **fields: Any) -> None:
    """One line, appended atomically and made durable before returning."""
    data = (json.dumps(fields, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    """One journal line."""

    event: str  # start | end
    hex: int
    attempt: int
    pid: int
    t: float
    epoch: int = 0  # where a start resumed from (its checkpoint)


def read(path: str | os.PathLike[str]) -> list[Entry]:
    """Every whole line of the journal, in the order written (a missing file is empty)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        out.append(Entry(d["event"], int(d["hex"]), int(d["attempt"]), int(d["pid"]),
                         float(d["t"]), int(d.get("epoch", 0))))
    return out


def starts(entries: list[Entry], hex_ids: set[int] | None = None) -> Iterator[Entry]:
    return (e for e in entries if e.event == "start" and (hex_ids is None or e.hex in hex_ids))


def running(entries: list[Entry]) -> list[Entry]:
    """Executions that started and have not ended (alive or killed)."""
    ended = {(e.hex, e.attempt, e.pid) for e in entries if e.event == "end"}
    return [e for e in entries if e.event == "start" and (e.hex, e.attempt, e.pid) not in ended]


def write_plan(path: Path, *, sleep: float, sleeps: dict[int, float] | None = None,
               first: dict[int, float] | None = None, suicide: list[int] | None = None) -> Path:
    """Write a trial plan (see the module docstring); its path."""
    doc = {"sleep": sleep, "sleeps": {str(k): v for k, v in (sleeps or {}).items()},
           "first": {str(k): v for k, v in (first or {}).items()}, "suicide": suicide or []}
    path.write_text(json.dumps(doc))
    return path


def plan() -> dict[str, Any]:
    """The plan named by ``FAULT_PLAN`` (defaults when unset)."""
    name = os.environ.get(PLAN_ENV)
    if not name:
        return {"sleep": 0.2, "sleeps": {}, "first": {}, "suicide": []}
    return dict(json.loads(Path(name).read_text()))


def wait(seconds: float) -> None:
    """Sleep to a deadline in short steps: after SIGSTOP/SIGCONT an overdue wait ends at once."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))
