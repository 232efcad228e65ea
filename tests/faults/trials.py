"""The trial the fault suite runs on real workers: it keeps a journal of its executions.

A trial of index ``i`` (a grid parameter) works for the seconds the plan gives it, in five
epochs, saving the last finished epoch in ``hex.checkpoint_dir`` so that a re-run resumes there.
It logs one ``done`` point at step ``hex.attempt`` and returns its attempt and pid, so that a
result written twice, or by a stale attempt, shows in the database.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.faults import journal

EPOCHS = 5


def work(hex: Any) -> dict[str, Any]:
    i = hex.randint("i", 0, 10**9)  # declared by the sweep: the dispatcher's value
    plan = journal.plan()
    seconds = float(plan["sleeps"].get(str(i), plan["sleep"]))
    if hex.attempt == 1 and str(i) in plan["first"]:
        seconds = float(plan["first"][str(i)])
    saved = Path(hex.checkpoint_dir) / "epoch"
    epoch = int(saved.read_text()) if saved.exists() else 0
    path = os.environ[journal.JOURNAL_ENV]
    journal.append(path, event="start", hex=hex.id, attempt=hex.attempt, pid=os.getpid(),
                   t=time.time(), epoch=epoch)
    if i in plan["suicide"]:
        os.kill(os.getpid(), signal.SIGKILL)  # lost, never a result: an OOM kill, say
    for e in range(epoch, EPOCHS if seconds > 0 else 0):
        journal.wait(seconds / EPOCHS)
        tmp = saved.with_suffix(f".{os.getpid()}")
        tmp.write_text(str(e + 1))
        os.replace(tmp, saved)
    hex.log(step=hex.attempt, done=1.0)
    journal.append(path, event="end", hex=hex.id, attempt=hex.attempt, pid=os.getpid(),
                   t=time.time())
    return {"attempt": hex.attempt, "pid": os.getpid(), "from_epoch": epoch}

