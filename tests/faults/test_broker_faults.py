"""Faults of the broker (issue 4, faults 5, 7 and 9): Redis loses its memory mid-sweep, Redis
delivers a long trial again while it runs, and a crafted pickle message sits in the queue.

Each test has a ``redis-server`` of its own (never the machine's), so killing it, or pushing
messages into it, touches nobody else's queues.
"""

from __future__ import annotations

import base64
import json
import pickle
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from hypero import sweeps
from tests import services
from tests.faults.harness import Rig, wait_for

pytestmark = pytest.mark.timeout(120)

REPUBLISH_EVERY = 15.0  # hypero.launch.RECONCILE_EVERY: an attached run's re-publishing period


# -- 5. Redis restarted without persistence --------------------------------------------------------


def test_redis_restarted_empty_mid_sweep_loses_no_trial(
    rig: Rig, redis_server: services.RedisServer
) -> None:
    rig.plan(sleep=0.5)
    for _ in range(2):
        rig.worker()
    rig.ready()
    path = rig.spec("fault 5: redis restarted", n=20)
    run = rig.procs.start(  # an attached run: it watches, and re-publishes what Redis lost
        [sys.executable, "-m", "hypero", "run", str(path), "--broker", rig.broker], rig.env,
        "run")
    with rig.connect() as conn:
        def progress() -> tuple[int, dict[str, int]] | None:
            found = sweeps.sweeps_of(conn.store)
            if not found:
                return None
            c = sweeps.counts(conn.store, int(found[0]["id"]))
            return (int(found[0]["id"]), c) if c["completed"] >= 4 else None

        sid, _ = wait_for("a few trials done", progress, 60, rig.procs.logs)
        redis_server.kill()  # SIGKILL: every queued and unacknowledged message is gone
        running = sweeps.counts(conn.store, sid)["running"]
        time.sleep(1.0)
        redis_server.start()  # same port, empty
        restarted = time.monotonic()
        with redis.Redis.from_url(rig.broker) as client:
            assert client.llen(rig.queue) == 0  # nothing survived
        queued = sweeps.counts(conn.store, sid)["queued"]
        assert queued > 0
    rig.wait_final([sid], timeout=REPUBLISH_EVERY + 45)
    recovered_in = time.monotonic() - restarted
    assert run.wait(30) == 0, rig.procs.logs()

    v = rig.verdict([sid])
    v.assert_clean(hits=running)  # an attempt running through the restart may run again
    assert v.trials == 20 and v.executions <= 20 + running
    # the queue came back empty, yet the trials queued then all ran: they were re-published
    assert {r["state"] for r in v.rows.values()} == {"completed"}
    assert recovered_in < REPUBLISH_EVERY + 30
    print(f"redis killed with {queued} queued and {running} running; all final "
          f"{recovered_in:.1f} s after its restart; {v.executions} executions")


# -- 7. a trial longer than the broker's visibility timeout ----------------------------------------


def test_trial_longer_than_visibility_timeout_runs_once(rig: Rig) -> None:
    rig.plan(sleep=6.0)
    rig.env["HYPERO_VISIBILITY_TIMEOUT"] = "1"  # Redis may deliver it again after 1 s
    first = rig.worker()
    rig.ready()
    sid = rig.dispatch(rig.spec("fault 7: visibility timeout", n=1, lease="2s"))
    (start,) = wait_for("the trial started", lambda: rig.entries() or None, 30, rig.procs.logs)
    time.sleep(1.5)  # past the visibility timeout
    # a worker that starts restores overdue unacknowledged messages: the trial, still running
    second = rig.worker()
    wait_for("the second worker got the message again",
             lambda: f"run_trial[hypero-{start.hex}-" in rig.log(second), 30, rig.procs.logs)
    rig.wait_final([sid], timeout=30)

    v = rig.verdict([sid])
    v.assert_clean(hits=0)
    assert v.executions == 1 and v.rows[start.hex]["attempt"] == 1
    assert v.rows[start.hex]["state"] == "completed"
    # the duplicate delivery did nothing: its claim was refused while the first attempt ran
    assert wait_for("the duplicate skipped", lambda: "'skipped'" in rig.log(second), 10)
    assert "'completed'" in rig.log(first)


# -- 9. a crafted pickle message ------------------------------------------------------------------


class _Evil:
    """Unpickling this opens (creates) ``path``: any code could run in its place."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def _pickle_message(queue: str, body: bytes, *, protocol: int) -> bytes:
    """A kombu/Redis envelope carrying a pickled body (protocol 2: task in the headers; 1: in the
    body, as Celery 3 sent it)."""
    tid = f"hypero-999999-{uuid.uuid4().hex[:8]}"
    headers = {"lang": "py", "task": "hypero.run_trial", "id": tid, "root_id": tid,
               "argsrepr": "(0,)", "kwargsrepr": "{}", "ignore_result": True, "retries": 0,
               "timelimit": [None, None]} if protocol == 2 else {}
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": "binary",
        "content-type": "application/x-python-serialize", "headers": headers,
        "properties": {"correlation_id": tid, "delivery_mode": 2, "priority": 0,
                       "delivery_info": {"exchange": "", "routing_key": queue},
                       "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
    }).encode()


def test_pickle_message_is_refused_and_the_worker_lives_on(rig: Rig, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    v2 = pickle.dumps(((_Evil(str(marker)),), {}, {"callbacks": None, "errbacks": None}))
    v1 = pickle.dumps({"task": "hypero.run_trial", "id": "evil", "args": (_Evil(str(marker)),),
                       "kwargs": {}})
    probe = tmp_path / "probe"  # the payload is live: unpickling it does create its file
    pickle.loads(pickle.dumps(_Evil(str(probe)))).close()
    assert probe.exists()

    worker = rig.worker()
    rig.ready()
    with redis.Redis.from_url(rig.broker) as client:
        for protocol, body in ((2, v2), (1, v1)):
            client.lpush(rig.queue, _pickle_message(rig.queue, body, protocol=protocol))
        wait_for("both crafted messages taken off the queue",
                 lambda: client.llen(rig.queue) == 0 and not client.hlen("unacked"), 30,
                 rig.procs.logs)
    log = wait_for("the refusals logged",
                   lambda: (t := rig.log(worker)).count("ContentDisallowed") >= 2 and t, 30,
                   rig.procs.logs)
    assert "application/x-python-serialize" in log

    # nothing ran, the file was never created, and the worker still runs trials
    sid = rig.dispatch(rig.spec("fault 9: pickle refused", n=1))
    rig.wait_final([sid], timeout=30)
    v = rig.verdict([sid])
    v.assert_clean(hits=0)
    assert v.executions == 1
    assert not marker.exists()
    assert rig.proc(worker).poll() is None
    rig.signal_group(worker, signal.SIGTERM)
