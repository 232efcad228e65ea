"""The ``hypero`` command as a user runs it: exit codes, one-line errors, status and cancel.

Every command runs in a subprocess with a clean environment (no ``HYPERO_*`` but the store's).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypero import sweeps
from tests.conftest import Target
from tests.workers import (
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

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


def _row(table: str, first_cell: str) -> list[str]:
    """The cells of the rich table row whose first cell is ``first_cell``."""
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{table}")


def _header(table: str) -> list[str]:
    return _row(table, "sweep")


def _status(env: dict[str, str], *args: str) -> dict[str, dict[str, str]]:
    """``hypero status``: ``{sweep id: {column: cell}}``."""
    r = hypero_cli(["status", *args], env)
    assert r.returncode == 0, r.stderr
    cols = _header(r.stdout)
    out = {}
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == len(cols) and cells[0].isdigit():
            out[cells[0]] = dict(zip(cols, cells, strict=True))
    return out


# -- 5. bad specs --------------------------------------------------------------------------------

TRAIN = trial("basic.py:train")
BAD_SPECS = {
    "typo": (f"trial: {TRAIN}\nrun_cap: 2\nmethdo: grid\n", 3, "did you mean 'method'"),
    "bounds": (f"trial: {TRAIN}\nrun_cap: 2\nparameters:\n  lr:\n    distribution: uniform\n"
               "    min: 0.1\n    max: 0.01\n", 6, "parameters.lr.min: must be < max"),
    "no file": ("run_cap: 2\ntrial: nothere.py:train\n", 2, "file nothere.py not found"),
    "no function": (f"run_cap: 2\ntrial: {TRAIN[:-5]}trian\n", 2, "did you mean 'train'"),
    "grid": (f"trial: {TRAIN}\nmethod: grid\nparameters:\n  lr: {{min: 0.0, max: 1.0}}\n", 4,
             "grid search needs a finite set"),
    "yaml": (f"trial: {TRAIN}\nparameters: [\n", 3, "YAML syntax error"),
    "no count": (f"trial: {TRAIN}\nmethod: random\nparameters:\n  lr: {{values: [1, 2]}}\n", 1,
                 "needs run_cap"),
    "bad command": (f"program: {TRAIN[:-6]}\nrun_cap: 1\ncommand: [python, '${{prgram}}']\n", 3,
                    "did you mean ${program}?"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_exits_2_with_one_line_and_records_nothing(
    case: str, sqlite_target: Target, tmp_path: Path
) -> None:
    text, line, words = BAD_SPECS[case]
    write_spec(tmp_path, text, name="bad.yaml")
    started = time.monotonic()
    # no broker: a bad spec must be refused before the embedded broker and workers start
    r = hypero_cli(["run", "bad.yaml", "--workers", "1"], clean_env(sqlite_target.env()),
                   cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith(f"hypero: error: bad.yaml:{line}: "), r.stderr
    assert words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert time.monotonic() - started < 20
    with sqlite_target.connect() as conn:
        assert sweeps.sweeps_of(conn.store) == []
        assert conn.batteries() == []


def test_dry_run_prints_the_plan_and_records_nothing(sqlite_target: Target, tmp_path: Path) -> None:
    write_spec(tmp_path, f"trial: {TRAIN}\nmethod: grid\nparameters:\n  a: {{values: [1, 2, 3]}}\n"
               "  b: {values: [x, y]}\n", name="plan.yaml")
    r = hypero_cli(["run", "plan.yaml", "--dry-run"], clean_env(sqlite_target.env()), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("6 trials")
    assert "trial 0: {'a': 1, 'b': 'x'}" in r.stdout
    with sqlite_target.connect() as conn:
        assert sweeps.sweeps_of(conn.store) == []


def test_detach_without_a_broker_is_bad_input(sqlite_target: Target, tmp_path: Path) -> None:
    write_spec(tmp_path, f"trial: {TRAIN}\nrun_cap: 2\n", name="d.yaml")
    r = hypero_cli(["run", "d.yaml", "--detach"], clean_env(sqlite_target.env()), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("hypero: error: --detach needs a broker")


# -- 9. status and cancel ----------------------------------------------------------------------


def test_status_counts_and_cancel_turns_queued_trials_cancelled(
    target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env({**target.env(), "HYPERO_BROKER": redis_clean_url})
    path = write_spec(tmp_path, f"battery: cancel me\ntrial: {TRAIN}\nrun_cap: 5\n"
                                f"queue: {queue}\n", name="c.yaml")
    r = hypero_cli(["run", str(path), "--detach"], env)  # no worker on the queue yet
    assert r.returncode == 0, r.stderr
    sid = re.search(r"sweep (\d+): 5 trials", r.stdout)
    assert sid, r.stdout
    sweep = sid.group(1)

    st = _status(env)[sweep]
    assert (st["battery"], st["state"], st["queued"], st["completed"]) == (
        "cancel me", "running", "5", "0")
    assert st["depth"] == "5"  # the broker holds the five messages

    r = hypero_cli(["cancel", sweep], env)
    assert r.returncode == 0, r.stderr
    assert f"sweep {sweep}: 5 queued trials cancelled" in r.stdout
    st = _status(env, "cancel me")[sweep]
    assert (st["state"], st["queued"], st["cancelled"]) == ("cancelled", "0", "5")

    # a worker now takes the five messages and runs none of them
    name = procs.worker(redis_clean_url, queue, env)
    wait_ready(celery_for(redis_clean_url, queue, target), [name], procs)
    deadline = time.monotonic() + 30
    while _status(env)[sweep]["depth"] != "0" and time.monotonic() < deadline:
        time.sleep(0.3)
    with target.connect() as conn:
        counts = wait_final(conn, int(sweep), procs)
        ids = sweeps.trial_ids(conn.store, int(sweep))
        attempts = {conn.store.experiment(h)["attempt"] for h in ids}
    assert counts["cancelled"] == 5 and counts["completed"] == 0
    assert attempts == {0}
    # status pings the workers for half a second: give a busy machine a few tries
    assert any(_status(env)[sweep]["workers"] == "1" for _ in range(5))


def test_cancel_terminate_stops_running_trials(
    sqlite_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env({**sqlite_target.env(), "HYPERO_BROKER": redis_clean_url})
    procs.worker(redis_clean_url, queue, env)
    path = write_spec(tmp_path, f"battery: stop me\ntrial: {trial('basic.py:slow')}\nrun_cap: 3\n"
                                f"queue: {queue}\nlease: 2s\nparameters:\n  sleep: {{value: 60}}\n",
                      name="t.yaml")
    assert hypero_cli(["run", str(path), "--detach"], env).returncode == 0
    with sqlite_target.connect() as conn:
        (sw,) = sweeps.sweeps_of(conn.store)
        sid = int(sw["id"])
        deadline = time.monotonic() + 30
        while sweeps.counts(conn.store, sid)["running"] != 1:
            assert time.monotonic() < deadline, procs.logs()
            time.sleep(0.1)
        started = time.monotonic()
        r = hypero_cli(["cancel", str(sid), "--terminate"], env)
        assert r.returncode == 0, r.stderr
        assert f"sweep {sid}: 2 queued trials cancelled, 1 running trials stopping" in r.stdout
        counts = wait_final(conn, sid, procs, timeout=30)
        stopped_in = time.monotonic() - started
        states = {t: conn.store.experiment(t)["state"] for t in sweeps.trial_ids(conn.store, sid)}
    assert counts["cancelled"] == 3, states
    assert stopped_in < 15  # at the next heartbeat, not after the trial's 60 s


def test_status_and_cancel_refuse_unknown_names(sqlite_target: Target) -> None:
    env = clean_env(sqlite_target.env())
    r = hypero_cli(["status", "nope"], env)
    assert r.returncode == 2 and r.stderr.strip() == "hypero: error: no battery named 'nope'"
    r = hypero_cli(["cancel", "41"], env)
    assert r.returncode == 2 and r.stderr.strip() == "hypero: error: no sweep with id 41"


def test_status_of_a_finished_sweep(
    sqlite_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env({**sqlite_target.env(), "HYPERO_BROKER": redis_clean_url})
    procs.worker(redis_clean_url, queue, env, concurrency=2)
    path = write_spec(tmp_path, f"battery: done\ntrial: {TRAIN}\nrun_cap: 4\nqueue: {queue}\n"
                                "metric: {name: valid, goal: maximize}\n", name="s.yaml")
    r = hypero_cli(["run", str(path)], env)
    assert r.returncode == 0, r.stdout + r.stderr + procs.logs()
    assert "best trials by valid (maximize)" in r.stdout
    (st,) = _status(env, "done").values()
    assert (st["state"], st["queued"], st["running"], st["completed"]) == (
        "done", "0", "0", "4")
    assert st["best"].startswith("valid=")


# -- 11. Celery's own tools see a hypero worker ------------------------------------------------


def test_celery_inspect_ping_sees_a_hypero_worker(
    sqlite_target: Target, redis_clean_url: str, procs: Procs
) -> None:
    env = clean_env(sqlite_target.env())
    name = procs.worker(redis_clean_url, unique("q"), env)
    deadline = time.monotonic() + 60
    while True:
        r = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "hypero.tasks", "-b", redis_clean_url,
             "inspect", "ping", "-d", name, "--timeout", "1"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.returncode == 0, r.stdout + r.stderr + procs.logs()
    assert name in r.stdout and "pong" in r.stdout


def test_export_csv_to_a_file_or_standard_output(target: Target, tmp_path: Path) -> None:
    with target.connect() as conn:
        bat = conn.battery("cli export", "v1")
        for lr in (0.1, 0.01):
            with bat.experiment() as h:
                h.hyper_param("lr", lr)
                h.set_result({"valid": lr * 2, "curve": [lr, lr / 2]})
    env = clean_env(target.env())
    out = tmp_path / "out.csv"
    r = hypero_cli(["export", "cli export", "-o", str(out), "--desc", "--order-by", "valid"], env)
    assert r.returncode == 0, r.stderr
    assert "wrote 2 trials" in r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "hex_id,lr,curve,valid"
    assert lines[1].endswith(',0.1,"[0.1,0.05]",0.2')
    r = hypero_cli(["export", "cli export", "--desc", "--order-by", "valid"], env)
    assert r.returncode == 0 and r.stdout.splitlines() == lines
    r = hypero_cli(["export", "cli export", "-o", str(out), "--order-by", "nope"], env)
    assert r.returncode == 2 and "nope" in r.stderr
    assert out.read_text().splitlines() == lines  # a failed export leaves the old file alone
    assert not list(tmp_path.glob("out.csv.*"))
