"""``early_terminate: hyperband``: W&B's brackets and rule, judged by the worker running the trial
from its streamed points, checked against a brute-force computation from the logged points."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypero import dispatcher, hyperband, spec, sweeps
from hypero.config import Settings
from hypero.runner import Supervisor
from tests.conftest import Target
from tests.workers import (
    TRIALS,
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


def test_brackets_follow_wandb() -> None:
    assert hyperband.brackets({"min_iter": 3, "eta": 3})[:4] == [3, 9, 27, 81]
    assert hyperband.brackets({"min_iter": 2, "eta": 2.5})[:3] == [2, 5, 12]
    # W&B's own example: max_iter 5, eta 2, s 2 -> bands 1 and 2
    assert hyperband.brackets({"max_iter": 5, "s": 2, "eta": 2}) == [1, 2]
    assert hyperband.brackets({"max_iter": 27, "s": 5, "eta": 3}) == [1, 3, 9]


def test_the_rule_at_one_bracket() -> None:
    # W&B: threshold = sorted(values)[int(n / eta)], stop when worse; lower is better
    assert hyperband.decide((5.0, 5.0), [1.0, 2.0], 3, 3, strict=True).stop
    assert not hyperband.decide((1.5, 1.5), [1.0, 2.0], 3, 3, strict=True).stop
    assert not hyperband.decide((9.0, 9.0), [], 3, 3, strict=True).stop  # the first passes
    # conservative (default): the best value so far counts, not the one at the bracket
    assert not hyperband.decide((5.0, 0.5), [1.0, 2.0], 3, 3, strict=False).stop
    j = hyperband.Judge({"min_iter": 1, "eta": 3}, "acc", "maximize")
    j.add([("acc", 0, 0.1), ("loss", 1, 9.0), ("acc", 1, 0.2)])
    assert j.reached() == 1 and j.reached() is None and j.gate == 3
    d = j.judge(1, lambda b: [0.9, 0.8])
    assert d is not None and d.stop and d.as_meta("maximize")["threshold"] == 0.8


def expected(curves: list[dict[float, float]], bands: list[int], eta: float,
             strict: bool) -> list[int | None]:
    """Brute force, for trials run one after the other: the bracket each trial is stopped at
    (None: kept), from the points they logged."""
    out: list[int | None] = []
    for k, curve in enumerate(curves):
        stop = None
        for b in bands:
            mine = hyperband.at(sorted(curve.items()), b)
            if mine is None:
                break
            others = [v for c in curves[:k]
                      if (got := hyperband.at(sorted(c.items()), b)) is not None
                      for v in [got[0]]]
            values = sorted([mine[0], *others])
            if (mine[0] if strict else mine[1]) > values[int(len(values) / eta)]:
                stop = b
                break
        out.append(stop)
    return out


@pytest.mark.parametrize("strict", [False, True])
def test_hyperband_prunes_what_the_brackets_say(
    sqlite_target: Target, tmp_path: Path, strict: bool
) -> None:
    path = write_spec(tmp_path, f"""
trial: {trial("adaptive.py:curve")}
run_cap: 16
metric: {{name: loss, goal: minimize}}
early_terminate: {{type: hyperband, min_iter: 1, eta: 2, strict: {str(strict).lower()}}}
parameters:
  final: {{min: 0.0, max: 1.0}}
  gap: {{min: 0.0, max: 1.0}}
  epochs: {{value: 9}}
""")
    with sqlite_target.connect() as conn:
        _, ids = dispatcher.create(conn, spec.load(path), seed=5)
        sup = Supervisor(conn.store, Settings(db=sqlite_target.url, schema="hyper"), "inline")
        kinds = [sup.run(h, [], lambda _: None) for h in ids]  # one after the other
        metrics = conn.store.metrics(ids, ["loss"])
        metas, results = conn.store.docs("meta", ids), conn.store.docs("result", ids)
        rows = [conn.store.experiment(h) for h in ids]
    curves = [{float(s): v for s, v in metrics[h]["loss"]} for h in ids]
    want = expected(curves, [1, 2, 4, 8], 2, strict)
    got = [metas[h].get("hypero.pruned", {}).get("bracket") for h in ids]
    assert got == want, (got, want)
    assert kinds == [("pruned" if w else "completed") for w in want]
    assert 0 < sum(w is not None for w in want) < len(ids) - 2
    for h, w, row, curve in zip(ids, want, rows, curves, strict=True):
        if w is None:
            assert row["state"] == "completed" and max(curve) == 9
            assert results[h]["loss"] == curve[9.0]
        else:  # stopped at the very point that reached the bracket, every value kept
            assert row["state"] == "pruned" and row["finished_at"] is not None
            assert sorted(curve) == [float(s) for s in range(1, w + 1)]
            assert results[h] == {"should_stop": True, "stopped_at": w}  # hypero.Pruned


def test_program_trial_is_terminated_at_a_bracket(
    target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env(target.env())
    names = [procs.worker(redis_clean_url, queue, env, concurrency=1)]
    wait_ready(celery_for(redis_clean_url, queue, target), names, procs)
    path = write_spec(tmp_path, f"""
battery: hyperband program
program: {TRIALS / "curve_program.py"}
method: grid
queue: {queue}
metric: {{name: loss, goal: minimize}}
early_terminate: {{type: hyperband, min_iter: 2, eta: 3}}
parameters:
  final: {{values: [0.1, 0.9]}}
  gap: {{value: 0.5}}
""")
    r = hypero_cli(["run", str(path), "--detach", "--broker", redis_clean_url], env)
    assert r.returncode == 0, r.stderr
    with target.connect() as conn:
        (row,) = sweeps.sweeps_of(conn.store)
        counts = wait_final(conn, int(row["id"]), procs, timeout=60)
        good, bad = sweeps.trial_ids(conn.store, int(row["id"]))
        rows = {h: conn.store.experiment(h) for h in (good, bad)}
        metas = conn.store.docs("meta", [good, bad])
        curves = conn.store.metrics([good, bad], ["loss"])
        status = hypero_cli(["status", "hyperband program"], env)
        export = hypero_cli(["export", "hyperband program", "--params", "-", "--results", "-",
                             "--metas", "hypero.state"], env)
        top = hypero_cli(["top", "hyperband program"], env)
    assert counts["completed"] == 1 and counts["pruned"] == 1, counts
    assert rows[good]["state"] == "completed" and rows[bad]["state"] == "pruned"
    steps = [s for s, _ in curves[bad]["loss"]]
    assert 2 <= max(steps) < 8  # SIGTERM about a second after step 2; its values kept
    assert metas[bad]["hypero.pruned"]["bracket"] == 2
    assert math.isclose(metas[bad]["hypero.pruned"]["threshold"], 0.1 + 0.5 / 2)
    spent = (rows[bad]["finished_at"] - rows[bad]["started_at"]).total_seconds()
    assert spent < 8 * 0.4  # stopped well before its 8 epochs
    assert status.returncode == 0 and "pruned" in status.stdout
    lines = export.stdout.splitlines()
    assert f"{bad},pruned" in lines and f"{good},completed" in lines
    assert top.returncode == 0 and "pruned" in top.stdout


def test_hyperband_with_bayes_feeds_pruned_trials_to_the_engine(
    sqlite_target: Target, tmp_path: Path
) -> None:
    path = write_spec(tmp_path, f"""
trial: {trial("adaptive.py:curve")}
method: bayes
run_cap: 12
metric: {{name: loss, goal: minimize}}
bayes: {{n_startup_trials: 4}}
early_terminate: {{type: hyperband, min_iter: 1, eta: 2}}
parameters:
  final: {{min: 0.0, max: 1.0}}
  gap: {{min: 0.0, max: 1.0}}
""")
    with sqlite_target.connect() as conn:
        _, ids = dispatcher.create(conn, spec.load(path), seed=2)
        sup = Supervisor(conn.store, Settings(db=sqlite_target.url, schema="hyper"), "inline")
        kinds = [sup.run(h, [], lambda _: None) for h in ids]
        metas = conn.store.docs("meta", ids)
    assert "pruned" in kinds and "completed" in kinds, kinds
    seen = [metas[h]["hypero.suggestion"]["pruned"] for h in ids]
    assert seen[-1] == kinds[:-1].count("pruned") > 0  # the engine learns from pruned trials
