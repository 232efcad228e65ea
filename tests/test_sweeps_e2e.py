"""Whole sweeps on real services: ``hypero worker`` processes, a real broker and database.

Each test starts its own workers on a queue of its own and stops them (the whole process group)
in its finalizer; it then asserts on what a user sees: rows in SQL and the Python API.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

import hypero
from hypero import dispatcher, spec, sweeps
from hypero.tasks import CONSUMER_TIMEOUT_MS, check_rabbitmq
from tests.conftest import Target
from tests.services import unavailable
from tests.workers import (
    REPO,
    Procs,
    celery_for,
    clean_env,
    hypero_cli,
    trial,
    unique,
    wait_final,
    wait_ready,
    write_spec,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


def _trials(conn: hypero.Connection, sid: int) -> list[dict[str, object]]:
    return [conn.store.experiment(h) for h in sweeps.trial_ids(conn.store, sid)]


# -- 1. random sweep, two workers --------------------------------------------------------------


def test_random_sweep_on_two_workers_records_everything(
    postgresql_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    target, queue = postgresql_target, unique("q")
    env = clean_env(target.env())
    names = [procs.worker(redis_clean_url, queue, env, concurrency=c) for c in (1, 2)]
    path = write_spec(tmp_path, f"""
battery: random e2e
trial: {trial("basic.py:train")}
method: random
run_cap: 10
queue: {queue}
parameters:
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 0.1}}
  depth: {{distribution: int_uniform, min: 1, max: 7}}
  decay: {{values: [linear, adaptive], probabilities: [0.8, 0.2]}}
  batch_size: {{value: 32}}
""")
    celery = celery_for(redis_clean_url, queue, target)
    wait_ready(celery, names, procs)
    with target.connect() as conn:
        sid = dispatcher.dispatch(conn, spec.load(path), celery, seed=7)
        counts = wait_final(conn, sid, procs)
        assert counts["completed"] == 10, counts
        ids = sweeps.trial_ids(conn.store, sid)
        bat = conn.battery("random e2e")
        params, metas = bat.get_param(ids), bat.get_meta(ids)
        results, metrics = bat.get_result(ids), bat.get_metrics(ids)
        rows = _trials(conn, sid)

    for h in ids:
        p = params[h]
        assert 1e-4 <= p["lr"] <= 0.1
        assert isinstance(p["depth"], int) and 1 <= p["depth"] <= 7
        assert p["decay"] in ("linear", "adaptive")
        assert p["batch_size"] == 32
        assert 0.0 <= p["extra"] <= 1.0  # undeclared: sampled in the trial, recorded
        # a declared param comes back with the dispatcher's value, whatever the call asks for
        assert results[h]["lr_seen"] == p["lr"]
        assert math.isclose(results[h]["valid"], p["extra"] + p["depth"])
        assert metas[h]["seen"]["depth"] == p["depth"]
        assert [s for s, _ in metrics[h]["loss"]] == [0, 1, 2]
        assert metrics[h]["acc"][-1][1] == pytest.approx(2 / 3)
        m = metas[h]
        assert m["hypero.worker"] in names
        assert m["hypero.attempt"] == 1
        assert m["hypero.host"] and m["hypero.python"] and m["hypero.version"]
        assert m["hypero.start"] <= m["hypero.end"]
    for row in rows:
        assert row["state"] == "completed" and row["attempt"] == 1 and row["error"] is None
        assert row["worker"] in names and row["finished_at"] is not None
    assert sorted(r["trial_index"] for r in rows) == list(range(10))


# -- 2. grid sweep ---------------------------------------------------------------------------


def test_grid_sweep_runs_each_combination_once(
    target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env(target.env())
    procs.worker(redis_clean_url, queue, env, concurrency=2)
    procs.worker(redis_clean_url, queue, env, concurrency=1)
    path = write_spec(tmp_path, f"""
trial: {trial("basic.py:grid")}
method: grid
queue: {queue}
parameters:
  a: {{values: [x, y]}}
  b: {{distribution: int_uniform, min: 0, max: 2}}
""", name="grid e2e.yaml")
    r = hypero_cli(["run", str(path), "--detach", "--broker", redis_clean_url], env)
    assert r.returncode == 0, r.stderr
    assert "6 trials" in r.stdout
    with target.connect() as conn:
        (row,) = sweeps.sweeps_of(conn.store)
        counts = wait_final(conn, int(row["id"]), procs)
        assert counts["completed"] == 6, counts
        bat = conn.battery("grid e2e")  # the battery defaults to the file's stem
        ids = bat.experiments()
        combos = [res["combo"] for res in bat.get_result(ids).values()]
        attempts = {r["attempt"] for r in _trials(conn, int(row["id"]))}
    assert sorted(combos) == ["x0", "x1", "x2", "y0", "y1", "y2"]
    assert attempts == {1}


# -- 6. a failing trial ------------------------------------------------------------------------


def test_failing_trial_retried_then_failed_and_run_exits_1(
    target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env(target.env())
    procs.worker(redis_clean_url, queue, env, concurrency=2)
    path = write_spec(tmp_path, f"""
battery: flaky e2e
trial: {trial("basic.py:flaky")}
method: grid
queue: {queue}
retries: 1
parameters:
  k: {{values: [0, 1, 2]}}
""")
    r = hypero_cli(["run", str(path), "--broker", redis_clean_url], env)
    assert r.returncode == 1, r.stdout + r.stderr + procs.logs()
    assert "1 failed" in r.stdout
    with target.connect() as conn:
        (sw,) = sweeps.sweeps_of(conn.store)
        rows = {conn.store.docs("param", [t["id"]])[t["id"]]["k"]: t
                for t in _trials(conn, int(sw["id"]))}
        metrics = conn.store.metrics([rows[1]["id"]])
    assert rows[0]["state"] == rows[2]["state"] == "completed"
    bad = rows[1]
    assert bad["state"] == "failed"
    assert bad["attempt"] == 2 and bad["failures"] == 2
    assert "Traceback (most recent call last)" in bad["error"]
    assert "RuntimeError: k=1 is refused (attempt 2)" in bad["error"]
    assert metrics[bad["id"]]["k"] == [(0, 1.0)]  # what the failed trial logged is kept


# -- 3. a W&B program: trial -----------------------------------------------------------------


def test_program_sweep_gets_args_and_records_through_current(
    target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env(target.env())
    procs.worker(redis_clean_url, queue, env, concurrency=2)
    path = write_spec(tmp_path, f"""
name: wandb program e2e
program: {trial("program.py:")[:-1]}
command: ["${{env}}", "${{interpreter}}", "${{program}}", "--tag=lit", "${{args}}"]
method: grid
queue: {queue}
parameters:
  x: {{values: [0.5, 2]}}
  opt: {{values: [adam, sgd]}}
""")
    r = hypero_cli(["run", str(path), "--broker", redis_clean_url], env)
    assert r.returncode == 0, r.stdout + r.stderr + procs.logs()
    with target.connect() as conn:
        bat = conn.battery("wandb program e2e")
        ids = bat.experiments()
        params, results = bat.get_param(ids), bat.get_result(ids)
        metas, metrics = bat.get_meta(ids), bat.get_metrics(ids)
        states = {conn.store.experiment(h)["state"] for h in ids}
    assert len(ids) == 4 and states == {"completed"}
    assert sorted((p["x"], p["opt"]) for p in params.values()) == [
        (0.5, "adam"), (0.5, "sgd"), (2, "adam"), (2, "sgd")]
    for h in ids:
        p, res, m = params[h], results[h], metas[h]
        assert res == {"y": p["x"] ** 2, "opt": p["opt"], "tag": "lit"}
        # W&B's ${args}: declared params in spec order, --name=value
        assert m["argv"] == ["--tag=lit", f"--x={p['x']}", f"--opt={p['opt']}"]
        assert m["python"] == sys.executable  # ${interpreter} is the worker's Python
        assert m["hex_env"] == str(h) and m["attempt_env"] == "1"
        assert m["hypero.attempt"] == 1
        assert 0 <= p["lr"] <= 1 and m["lr"] == p["lr"]  # sampled inside the script
        assert metrics[h]["y"] == [(s, p["x"] * s) for s in range(3)]


# -- 4. the embedded default -----------------------------------------------------------------


def test_embedded_default_runs_on_sqlite_without_services(tmp_path: Path) -> None:
    write_spec(tmp_path, f"""
trial: {trial("basic.py:grid")}
method: grid
parameters:
  a: {{values: [x, y]}}
  b: {{values: [1, 2, 3]}}
""", name="quick.yaml")
    r = hypero_cli(["run", "quick.yaml", "--workers", "2"], clean_env(), cwd=tmp_path,
                   timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 completed, 0 failed" in r.stdout
    with hypero.connect(f"sqlite:///{tmp_path / 'hypero.db'}") as conn:
        (sw,) = sweeps.sweeps_of(conn.store)
        assert sweeps.counts(conn.store, int(sw["id"]))["completed"] == 6
        assert sw["state"] == "done"
        bat = conn.battery("quick")
        combos = sorted(r["combo"] for r in bat.get_result(bat.experiments()).values())
    assert combos == ["x1", "x2", "x3", "y1", "y2", "y3"]


# -- 7. GPU slots ----------------------------------------------------------------------------


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["t0"] < b["t1"] and b["t0"] < a["t1"]


def _gpu_sweep(
    target: Target, broker: str, procs: Procs, tmp_path: Path, gpus: int, n: int
) -> list[dict[str, object]]:
    queue = unique("gpu")
    env = clean_env({**target.env(), "TRIAL_SLEEP": "0.8"})
    procs.worker(broker, queue, env, concurrency=3, gpus="0,1,2")
    resources = f"resources: {{gpus: {gpus}}}" if gpus else ""
    path = write_spec(tmp_path, f"""
battery: gpu e2e {gpus}
trial: {trial("basic.py:gpu")}
run_cap: {n}
queue: {queue}
{resources}
parameters:
  i: {{distribution: int_uniform, min: 0, max: 1000}}
""", name=f"gpu{gpus}.yaml")
    r = hypero_cli(["run", str(path), "--broker", broker], env)
    assert r.returncode == 0, r.stdout + r.stderr + procs.logs()
    with target.connect() as conn:
        bat = conn.battery(f"gpu e2e {gpus}")
        ids = bat.experiments()
        results, metas = bat.get_result(ids), bat.get_meta(ids)
    assert len(results) == n
    for h in ids:
        assert metas[h]["hypero.gpus"] == results[h]["cvd"]
    return list(results.values())


def test_gpu_slots_one_device_per_trial_never_shared(
    postgresql_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    runs = _gpu_sweep(postgresql_target, redis_clean_url, procs, tmp_path, gpus=0, n=6)
    for run in runs:
        assert run["cvd"] in ("0", "1", "2"), run
    overlapping = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:] if _overlap(a, b)]
    assert overlapping, "three slots and six trials: some trials must have run together"
    for a, b in overlapping:
        assert a["cvd"] != b["cvd"], (a, b)


def test_gpu_resources_two_slots_per_trial(
    sqlite_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    runs = _gpu_sweep(sqlite_target, redis_clean_url, procs, tmp_path, gpus=2, n=3)
    for run in runs:
        devices = str(run["cvd"]).split(",")
        assert len(devices) == 2 and len(set(devices)) == 2 and set(devices) <= {"0", "1", "2"}
    for i, a in enumerate(runs):  # 3 slots, 2 per trial: one trial at a time
        for b in runs[i + 1:]:
            assert not _overlap(a, b), (a, b)


# -- 10. a user's own Celery tasks -------------------------------------------------------------


def _wait_experiments(
    conn: hypero.Connection, battery: str, n: int, procs: Procs, timeout: float = 60
) -> list[dict[str, object]]:
    """Wait until ``battery`` holds ``n`` experiments, none of them running; their rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = []
        if battery in conn.batteries():
            rows = [conn.store.experiment(h) for h in conn.battery(battery).experiments()]
        if len(rows) >= n and all(r["state"] != "running" for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{battery}: {rows}\n" + procs.logs())
        time.sleep(0.2)


def test_user_celery_tasks_record_directly_and_through_hypero_trial(
    target: Target, redis_clean_url: str, procs: Procs
) -> None:
    queue, name = unique("custom"), f"{unique('custom')}@localhost"
    env = clean_env({**target.env(), "CUSTOM_BROKER": redis_clean_url, "CUSTOM_QUEUE": queue})
    procs.start([sys.executable, "-m", "celery", "-A", "tests.trials.custom_app", "worker",
                 "-Q", queue, "-c", "2", "--hostname", name, "-l", "INFO", "--without-mingle",
                 "--without-gossip"], env, "custom", cwd=REPO)
    celery = celery_for(redis_clean_url, queue, target)
    wait_ready(celery, [name], procs)
    for x in (1.0, 2.0):
        celery.send_task("custom.direct", args=[x], queue=queue)
    celery.send_task("custom.decorated", args=[1.0], queue=queue)
    celery.send_task("custom.decorated", args=[2.0], kwargs={"scale": 10.0}, queue=queue)
    celery.send_task("custom.decorated", args=[-1.0], queue=queue)

    with target.connect() as conn:
        direct = _wait_experiments(conn, "custom direct", 2, procs)
        decorated = _wait_experiments(conn, "custom decorated", 3, procs)
        bat = conn.battery("custom decorated")
        params = bat.get_param([r["id"] for r in decorated])
        results = bat.get_result([r["id"] for r in decorated])
        metrics = bat.get_metrics([r["id"] for r in decorated])
        direct_results = conn.battery("custom direct").get_result([r["id"] for r in direct])
    assert {r["state"] for r in direct} == {"completed"}
    assert sorted(v["y"] for v in direct_results.values()) == [2.0, 4.0]
    by_x = {params[r["id"]]["x"]: r for r in decorated}
    assert set(by_x) == {1.0, 2.0, -1.0}
    assert results[by_x[1.0]["id"]] == {"y": 3.0}
    assert results[by_x[2.0]["id"]] == {"y": 20.0}
    assert by_x[1.0]["state"] == by_x[2.0]["state"] == "completed"
    bad = by_x[-1.0]
    assert bad["state"] == "failed" and bad["sweep_id"] is None
    assert "ValueError: negative x: -1.0" in bad["error"] and "Traceback" in bad["error"]
    assert results.get(bad["id"], {}) == {}
    for r in decorated:
        assert 0.0 <= params[r["id"]]["noise"] <= 1.0
        assert metrics[r["id"]]["y"] == [(0, params[r["id"]]["x"])]


# -- 8. RabbitMQ -------------------------------------------------------------------------------


def _rabbitmqctl(*args: str) -> str | None:
    """What ``rabbitmqctl ARGS`` prints, or None if it cannot be run here."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    try:
        r = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def _delete_queue(celery: Celery, queue: str) -> None:
    with celery.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


def test_rabbitmq_sweep_completes(
    target: Target, rabbitmq_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("rq")
    env = clean_env(target.env())
    for _ in range(2):
        procs.worker(rabbitmq_url, queue, env)
    path = write_spec(tmp_path, f"""
battery: rabbit e2e
trial: {trial("basic.py:train")}
run_cap: 4
queue: {queue}
parameters:
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 0.1}}
""")
    celery = celery_for(rabbitmq_url, queue, target)
    try:
        r = hypero_cli(["run", str(path), "--broker", rabbitmq_url], env)
        assert r.returncode == 0, r.stdout + r.stderr + procs.logs()
        with target.connect() as conn:
            (sw,) = sweeps.sweeps_of(conn.store)
            rows = _trials(conn, int(sw["id"]))
        assert [(t["state"], t["attempt"]) for t in rows] == [("completed", 1)] * 4
        listing = _rabbitmqctl("list_queues", "name", "arguments")
        if listing is not None:  # the queue carries hypero's consumer timeout
            (line,) = [ln for ln in listing.splitlines() if ln.startswith(queue)]
            assert f'"x-consumer-timeout",{CONSUMER_TIMEOUT_MS}' in line
    finally:
        procs.stop_all()
        _delete_queue(celery, queue)


@pytest.fixture
def short_consumer_timeout() -> Iterator[int]:
    """RabbitMQ's global consumer_timeout at 3 s, checked every second, for the channels opened
    during the test; both settings restored afterwards. Needs ``rabbitmqctl eval`` rights."""
    keys = ("consumer_timeout", "channel_tick_interval")
    before = {k: (_rabbitmqctl("eval", f"application:get_env(rabbit, {k}).") or "")
              .splitlines()[-1:] for k in keys}
    if not all(before.values()):
        unavailable("rabbitmqctl eval is not available here: cannot shorten consumer_timeout")
    _rabbitmqctl("eval", "application:set_env(rabbit, consumer_timeout, 3000), "
                         "application:set_env(rabbit, channel_tick_interval, 1000).")
    yield 3000
    for k, old in before.items():
        m = re.fullmatch(r"\{ok,(\d+)\}", old[0].strip())
        _rabbitmqctl("eval", f"application:set_env(rabbit, {k}, {m[1]})." if m
                     else f"application:unset_env(rabbit, {k}).")


def test_rabbitmq_trial_longer_than_consumer_timeout_runs_once(
    sqlite_target: Target, rabbitmq_url: str, short_consumer_timeout: int, procs: Procs,
    tmp_path: Path,
) -> None:
    target, queue = sqlite_target, unique("rq")
    env = clean_env(target.env())
    names = [procs.worker(rabbitmq_url, queue, env) for _ in range(2)]
    celery = celery_for(rabbitmq_url, queue, target)
    path = write_spec(tmp_path, f"""
battery: consumer timeout
trial: {trial("basic.py:slow")}
run_cap: 1
queue: {queue}
parameters:
  sleep: {{value: 7}}
""")
    try:
        wait_ready(celery, names, procs)
        with target.connect() as conn:
            sid = dispatcher.dispatch(conn, spec.load(path), celery)
            assert wait_final(conn, sid, procs)["completed"] == 1
            (row,) = _trials(conn, sid)
            meta = conn.store.docs("meta", [row["id"]])[row["id"]]
        assert row["attempt"] == 1 and row["failures"] == 0  # claimed once, run once
        assert meta["hypero.end"] - meta["hypero.start"] >= 7
        logs = procs.logs(tail=400)
        old_server = check_rabbitmq(celery)
        if old_server is None:  # RabbitMQ >= 3.11.15 honours the queue's own timeout
            assert "PRECONDITION_FAILED" not in logs, logs
            assert all(proc.poll() is None for _, proc, _ in procs.started), logs
        else:
            # the queue argument is ignored: the channel is closed, the message delivered to
            # the other worker, whose claim is refused; the worker said so when it started
            assert "ignores hypero's per-queue x-consumer-timeout" in logs, logs
            assert "PRECONDITION_FAILED" in logs, logs
    finally:
        procs.stop_all()
        _delete_queue(celery, queue)


# -- lost attempts: a killed worker, a trial that kills itself, a broker that forgot -------------


def _wait_state(conn: hypero.Connection, hex_id: int, state: str, procs: Procs,
                timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        row = conn.store.experiment(hex_id)
        if row["state"] == state:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"hex {hex_id} never {state}: {row}\n" + procs.logs())
        time.sleep(0.1)


def test_killed_worker_trial_runs_again_on_another(
    postgresql_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    target, queue = postgresql_target, unique("q")
    env = clean_env(target.env())
    first = procs.worker(redis_clean_url, queue, env)
    celery = celery_for(redis_clean_url, queue, target)
    path = write_spec(tmp_path, f"""
battery: killed worker
trial: {trial("basic.py:slow")}
run_cap: 1
queue: {queue}
lease: 2s
parameters:
  sleep: {{value: 3}}
""")
    with target.connect() as conn:
        sid = dispatcher.dispatch(conn, spec.load(path), celery)
        (hid,) = sweeps.trial_ids(conn.store, sid)
        assert _wait_state(conn, hid, "running", procs)["worker"] == first
        procs.kill(first)  # its message stays unacknowledged in Redis: only the lease helps
        second = procs.worker(redis_clean_url, queue, env)
        assert wait_final(conn, sid, procs, timeout=60)["completed"] == 1
        row = conn.store.experiment(hid)
        meta = conn.store.docs("meta", [hid])[hid]
    assert row["attempt"] == 2 and row["worker"] == second and row["failures"] == 0
    assert meta["hypero.attempt"] == 2 and meta["hypero.worker"] == second


def test_trial_that_kills_itself_fails_after_max_attempts(
    sqlite_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env(sqlite_target.env())
    procs.worker(redis_clean_url, queue, env)
    path = write_spec(tmp_path, f"""
battery: suicide
trial: {trial("basic.py:suicide")}
run_cap: 1
queue: {queue}
retries: 0
max_attempts: 2
""")
    r = hypero_cli(["run", str(path), "--broker", redis_clean_url], env)
    assert r.returncode == 1, r.stdout + r.stderr + procs.logs()
    with sqlite_target.connect() as conn:
        (sw,) = sweeps.sweeps_of(conn.store)
        (row,) = _trials(conn, int(sw["id"]))
        metrics = conn.store.metrics([row["id"]])[row["id"]]
    assert row["state"] == "failed" and row["attempt"] == 2
    assert "killed by signal 9" in row["error"] and "max_attempts" in row["error"]
    assert metrics["alive"] == [(0, 1.0)]


def test_resume_republishes_trials_the_broker_lost(
    sqlite_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env(sqlite_target.env())
    path = write_spec(tmp_path, f"""
battery: resumed
trial: {trial("basic.py:grid")}
method: grid
queue: {queue}
parameters:
  a: {{values: [x, y, z]}}
  b: {{value: 1}}
""")
    r = hypero_cli(["run", str(path), "--detach", "--broker", redis_clean_url], env)
    assert r.returncode == 0, r.stderr
    with redis.Redis.from_url(redis_clean_url) as client:  # Redis loses its memory
        client.flushdb()
    procs.worker(redis_clean_url, queue, env)
    r = hypero_cli(["run", str(path), "--resume", "--broker", redis_clean_url], env)
    assert r.returncode == 0, r.stdout + r.stderr + procs.logs()
    assert "re-published 3 queued trials" in r.stdout
    with sqlite_target.connect() as conn:
        (sw,) = sweeps.sweeps_of(conn.store)  # resumed, not a second sweep
        rows = _trials(conn, int(sw["id"]))
    assert [(t["state"], t["attempt"]) for t in rows] == [("completed", 1)] * 3
