"""``method: bayes``: the distribution mapping, suggestions from hypero's own records, real
workers suggesting without a controller, ``run_cap`` exact, ``metric.target``, and the extra."""

from __future__ import annotations

import importlib.util
import math
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypero import bayes, dispatcher, spec, sweeps
from hypero import distributions as d
from hypero.config import Settings
from hypero.errors import SpecError
from hypero.runner import Supervisor
from tests.conftest import Target
from tests.services import unavailable
from tests.trials.adaptive import loss_of
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

pytestmark = pytest.mark.timeout(180)

BOWL = """
battery: {battery}
trial: {trial}
method: {method}
run_cap: {n}
queue: {queue}
metric: {{name: loss, goal: minimize{target}}}
bayes: {{n_startup_trials: 5}}
parameters:
  x: {{min: -1.0, max: 1.0}}
  lr: {{distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}}
  depth: {{distribution: int_uniform, min: 1, max: 8}}
"""


def bowl_spec(tmp_path: Path, method: str, n: int, queue: str = "hypero",
              target: float | None = None, battery: str = "bowl") -> spec.Spec:
    text = BOWL.format(battery=battery, trial=trial("adaptive.py:bowl"), method=method, n=n,
                       queue=queue, target="" if target is None else f", target: {target}")
    return spec.load(write_spec(tmp_path, text, f"{unique('bowl')}.yaml"))


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


# -- the mapping of every distribution ------------------------------------------------------------


def test_every_distribution_maps_to_the_engine_exactly() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = bayes.engine_space({
        "u": d.Uniform(-2, 3), "i": d.IntUniform(1, 7), "q": d.QUniform(0, 10, 2),
        "lu": d.LogUniform(-3, 2), "luv": d.LogUniformValues(1e-4, 1e-1),
        "qluv": d.QLogUniformValues(1, 1000, 5), "ilu": d.InvLogUniform(1, 4),
        "iluv": d.InvLogUniformValues(0.01, 0.5), "c": d.Categorical(["a", [1, 2], {"k": 3}]),
        "w": d.Categorical(["x", "y", "z"], [1, 0, 3]), "n": d.Normal(5, 2),
        "ln": d.LogNormal(0, 1), "qn": d.QNormal(0, 10, 5), "b": d.Beta(2, 5),
        "k": d.Constant(32),
    })
    assert "k" not in space  # a constant is assigned, not searched
    kinds = {n: type(s) for n, (s, _) in space.items()}
    assert kinds["i"] is IntDistribution and kinds["q"] is IntDistribution
    assert kinds["c"] is CategoricalDistribution
    assert all(kinds[n] is FloatDistribution for n in ("u", "lu", "luv", "ilu", "w", "n", "b"))
    u, i, q = space["u"][0], space["i"][0], space["q"][0]
    assert (u.low, u.high, u.log) == (-2, 3, False) and (i.low, i.high) == (1, 7)
    assert (q.low, q.high) == (0, 5) and space["q"][1](3) == 6  # multiples of q, ints for int q
    for name, (lo, hi) in {"lu": (math.exp(-3), math.exp(2)), "luv": (1e-4, 1e-1),
                           "ilu": (math.exp(-4), math.exp(-1)), "iluv": (0.01, 0.5)}.items():
        s = space[name][0]
        assert s.log and math.isclose(s.low, lo) and math.isclose(s.high, hi), name
    assert space["qluv"][0].log and space["qluv"][1](12.4) == 10
    to_c = space["c"][1]
    assert [to_c(k) for k in range(3)] == ["a", [1, 2], {"k": 3}]  # values as given
    to_w = space["w"][1]  # weights through the inverse CDF: "y" has weight 0
    assert [to_w(u) for u in (0.1, 0.24, 0.26, 0.9)] == ["x", "x", "z", "z"]
    # unbounded and shaped priors through their inverse CDF: the median is the median
    assert math.isclose(space["n"][1](0.5), 5) and math.isclose(space["ln"][1](0.5), 1)
    assert math.isclose(space["n"][1](0.8413447), 7, rel_tol=1e-4)  # mu + sigma
    assert space["qn"][1](0.9) == 15 and space["qn"][1](0.5) == 0
    assert math.isclose(space["b"][1](0.5), 0.26445, rel_tol=1e-3)  # Beta(2, 5)'s median


def test_suggestions_stay_in_the_spec_and_avoid_running_points() -> None:
    dists = {"x": d.Uniform(0, 1, param="x"), "c": d.Categorical([[1], [2]], param="c"),
             "n": d.Constant("fixed", param="n")}
    records: list[bayes.Record] = []
    for k in range(30):
        s = bayes.suggest(dists, "maximize", records, {"n_startup_trials": 3}, seed=k)
        assert 0 <= s.params["x"] <= 1 and s.params["c"] in ([1], [2])
        assert s.params["n"] == "fixed" and set(s.engine) == {"x", "c"}
        assert s.inputs["completed"] + s.inputs["running"] == k
        state = "running" if k % 3 == 0 else "completed"
        records.append(bayes.Record(s.engine, state, -abs(s.params["x"] - 0.7)))
    xs = [r.engine["x"] for r in records]
    assert len(set(xs)) == len(xs)
    best = max(records, key=lambda r: r.value if r.state == "completed" else -9)
    assert abs(best.engine["x"] - 0.7) < 0.05


def test_gp_sampler_suggests_with_running_trials_as_liars() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        unavailable("sampler gp needs hypero[bayes-gp] (PyTorch): pip install torch")
    dists = {"x": d.Uniform(-1, 1, param="x"), "k": d.IntUniform(1, 4, param="k")}
    records: list[bayes.Record] = []
    for i in range(6):
        s = bayes.suggest(dists, "minimize", records, {"sampler": "gp", "n_startup_trials": 3},
                          seed=i)
        assert -1 <= s.params["x"] <= 1 and s.params["k"] in range(1, 5)
        state = "running" if i == 4 else "completed"
        records.append(bayes.Record(s.engine, state, (s.params["x"] - 0.5) ** 2))
    assert s.inputs["sampler"] == "gp" and s.inputs["running"] == 1 and s.inputs["used"] == 5
    assert len({r.engine["x"] for r in records}) == 6


def test_suggestion_with_500_completed_trials_is_quick() -> None:
    dists = {"x": d.Uniform(-1, 1), "lr": d.LogUniformValues(1e-5, 0.1), "k": d.IntUniform(1, 8),
             "c": d.Categorical(["a", "b", "c"])}
    records = []
    for k in range(500):
        s = bayes.suggest(dists, "minimize", [], {}, seed=k)  # random points, quickly
        records.append(bayes.Record(s.engine, "completed", float(k % 17)))
    s = bayes.suggest(dists, "minimize", records, {}, seed=1)
    assert s.inputs["completed"] == 500 and s.inputs["ms"] < 1000  # the bench measures it


# -- the extra ---------------------------------------------------------------------------------


def test_without_optuna_a_bayes_spec_is_refused_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "optuna" else real(name, *a))
    with pytest.raises(SpecError) as e:
        bowl_spec(tmp_path, "bayes", 5)
    assert str(e.value).endswith(".yaml:4: method: bayes needs Optuna: "
                                 "pip install 'hypero[bayes]'")
    assert "\n" not in str(e.value)
    bowl_spec(tmp_path, "random", 5)  # the other methods do not need it


def test_optuna_is_not_imported_outside_the_bayes_path() -> None:
    code = ("import sys, hypero, hypero.spec, hypero.runner, hypero.tasks, hypero.dispatcher, "
            "hypero.cli, hypero._forked; assert 'optuna' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- bayes beats random, through the worker's own code path ----------------------------------------


def _run_inline(target: Target, sp: spec.Spec, seed: int) -> list[float]:
    """Run the sweep's trials one after the other through the worker's Supervisor (claim,
    suggestion, forked trial, record) in this process; their losses in order."""
    with target.connect() as conn:
        _, ids = dispatcher.create(conn, sp, seed=seed)
        sup = Supervisor(conn.store, Settings(db=target.url, schema=target.schema), "inline")
        for h in ids:
            assert sup.run(h, [], lambda _: None) == "completed"
        res = conn.store.docs("result", ids)
    return [res[h]["loss"] for h in ids]


def test_bayes_finds_a_better_best_of_n_than_random_across_seeds(
    sqlite_target: Target, tmp_path: Path
) -> None:
    n, seeds = 40, range(8)
    best = {m: [min(_run_inline(sqlite_target, bowl_spec(tmp_path, m, n, battery=f"b {m} {s}"),
                                seed=s)) for s in seeds] for m in ("random", "bayes")}
    wins = sum(b < r for b, r in zip(best["bayes"], best["random"], strict=True))
    assert wins >= 7, best  # a sign test: P(>= 7 of 8 | no difference) = 3.5 %
    assert statistics.median(best["bayes"]) < statistics.median(best["random"]), best


# -- real workers, no controller ------------------------------------------------------------------


def test_detached_bayes_sweep_on_four_concurrent_workers(
    postgresql_target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    target, queue, n = postgresql_target, unique("q"), 14
    env = clean_env({**target.env(), "TRIAL_SLEEP": "0.3"})
    names = [procs.worker(redis_clean_url, queue, env, concurrency=2) for _ in range(2)]
    path = tmp_path / "bayes.yaml"
    path.write_text(BOWL.format(battery="bayes e2e", trial=trial("adaptive.py:bowl"),
                                method="bayes", n=n, queue=queue, target=""))
    wait_ready(celery_for(redis_clean_url, queue, target), names, procs)
    r = hypero_cli(["run", str(path), "--detach", "--broker", redis_clean_url], env)
    assert r.returncode == 0, r.stderr  # the dispatcher is gone: workers alone go on
    with target.connect() as conn:
        (row,) = sweeps.sweeps_of(conn.store)
        counts = wait_final(conn, int(row["id"]), procs, timeout=120)
        ids = sweeps.trial_ids(conn.store, int(row["id"]))
        params, metas = conn.store.docs("param", ids), conn.store.docs("meta", ids)
        results = conn.store.docs("result", ids)
    assert counts["completed"] == n == len(ids), counts  # run_cap exact
    points = [(p["x"], p["lr"], p["depth"]) for p in params.values()]
    assert len(set(points)) == n  # no two trials share a suggestion
    for h in ids:
        p, m = params[h], metas[h]
        assert -1 <= p["x"] <= 1 and 1e-5 <= p["lr"] <= 0.1 and p["depth"] in range(1, 9)
        assert 0 <= p["noise_seed"] <= 1  # define-by-run: sampled in the trial, recorded
        assert results[h]["loss"] == pytest.approx(loss_of(p["x"], p["lr"], p["depth"]))
        sug = m["hypero.suggestion"]  # what the suggestion was made from
        assert sug["sampler"] == "tpe" and set(sug["engine"]) == {"x", "lr", "depth"}
        assert sug["completed"] + sug["running"] <= n - 1
    seen = sorted(m["hypero.suggestion"]["completed"] + m["hypero.suggestion"]["running"]
                  for m in metas.values())
    assert seen == list(range(n))  # one at a time, each seeing every earlier one
    assert max(m["hypero.suggestion"]["running"] for m in metas.values()) >= 2  # in flight


def test_target_reached_stops_new_trials(
    target: Target, redis_clean_url: str, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    env = clean_env(target.env())
    names = [procs.worker(redis_clean_url, queue, env, concurrency=1)]
    celery = celery_for(redis_clean_url, queue, target)
    wait_ready(celery, names, procs)
    sp = bowl_spec(tmp_path, "bayes", 30, queue, target=0.05, battery="target e2e")
    with target.connect() as conn:
        sid = dispatcher.dispatch(conn, sp, celery, seed=3)
        counts = wait_final(conn, sid, procs, timeout=120)
        ids = sweeps.trial_ids(conn.store, sid, ["completed"])
        losses = [conn.store.docs("result", ids)[h]["loss"] for h in ids]
        rows = [conn.store.experiment(h) for h in sweeps.trial_ids(conn.store, sid)]
    assert counts["completed"] + counts["cancelled"] == 30 and counts["cancelled"] > 0, counts
    # the last trial that ran is the first to reach the target; none started after it
    assert min(losses[:-1]) > 0.05 >= losses[-1], losses
    cancelled = [r for r in rows if r["state"] == "cancelled"]
    assert all("metric.target reached" in str(r["error"]) for r in cancelled)


def test_worker_without_a_suggestion_fails_the_trial_not_the_worker(
    sqlite_target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = bowl_spec(tmp_path, "bayes", 1)
    monkeypatch.setattr(bayes, "require", lambda sampler="tpe": "bayes needs Optuna: "
                        "pip install 'hypero[bayes]'")
    with sqlite_target.connect() as conn:
        _, (h,) = dispatcher.create(conn, sp, seed=1)
        sup = Supervisor(conn.store, Settings(db=sqlite_target.url, schema="hyper"), "w")
        assert sup.run(h, [], lambda _: None) == "error"
        row = conn.store.experiment(h)
    assert row["state"] == "failed" and "hypero[bayes]" in row["error"]
