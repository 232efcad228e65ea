"""Trial plans: exact grids (W&B's rules) and seeded random samples inside their distributions."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from hypero import distributions as d
from hypero.errors import SpecError
from hypero.search import grid_size, plan
from hypero.spec import Spec, load
from tests.test_spec import WANDB


@pytest.fixture(autouse=True)
def sweeps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "mnist.py").write_text("def train(hex):\n    pass\n")
    (folder / "train.py").write_text("")
    return folder


def spec_of(text: str) -> Spec:
    Path("sweeps/x.yaml").write_text(dedent(text))
    return load("sweeps/x.yaml")


GRID = """\
    trial: mnist.py:train
    method: grid
    parameters:
      opt: {values: [sgd, adam, sgd, 1, 1.0, true]}
      depth: {min: 1, max: 3}
      frac: {distribution: q_uniform, min: 0, max: 1, q: 0.25}
      width: {distribution: q_uniform, min: 32, max: 128, q: 32}
      seed: {value: 7}
      model:
        parameters:
          act: {values: [relu, tanh]}
    """


def test_grid_is_every_combination_exactly_once() -> None:
    spec = spec_of(GRID)
    runs = list(plan(spec, seed=0))
    axes: dict[str, list[Any]] = {
        "depth": [1, 2, 3],  # int_uniform: both ends
        "frac": [0.0, 0.25, 0.5, 0.75],  # q_uniform: max excluded
        "model.act": ["relu", "tanh"],
        "opt": ["sgd", "adam", 1, True],  # duplicates collapse; 1.0 is 1; True is not 1
        "seed": [7],
        "width": [32, 64, 96],
    }
    assert grid_size(spec) == len(runs) == math.prod(len(v) for v in axes.values()) == 288
    key = [tuple(sorted(r.items(), key=lambda kv: kv[0])) for r in runs]
    assert len(set(map(repr, key))) == len(runs)
    expected = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    assert runs == expected  # W&B's order: names sorted, the last one varies fastest
    assert all(type(r["width"]) is int and type(r["depth"]) is int for r in runs)


def test_run_cap_and_count_cap_the_grid() -> None:
    spec = spec_of(GRID + "run_cap: 10\n")
    runs = list(plan(spec, seed=0))
    assert len(runs) == 10 and runs == list(plan(spec_of(GRID), seed=0))[:10]
    assert len(list(plan(spec, seed=0, count=3))) == 3
    assert len(list(plan(spec, seed=0, count=1000))) == 288
    assert grid_size(spec) == 288  # the whole grid, before run_cap


def test_a_grid_of_constants_is_one_trial() -> None:
    spec = spec_of("trial: mnist.py:train\nmethod: grid\nparameters: {a: {value: [1, 2]}}\n")
    assert list(plan(spec, seed=0)) == [{"a": [1, 2]}]
    assert list(plan(spec_of("trial: mnist.py:train\nmethod: grid\n"), seed=0)) == [{}]


def test_random_plan_is_deterministic_for_a_seed() -> None:
    spec = spec_of(WANDB)
    first = list(plan(spec, seed=11))
    assert len(first) == spec.run_cap == 20
    assert first == list(plan(spec, seed=11))
    assert first != list(plan(spec, seed=12))
    assert list(plan(spec, seed=11, count=5)) == first[:5]  # a longer plan extends a shorter one
    assert all(set(run) == set(spec.parameters) for run in first)


def inside(dist: d.Distribution, v: Any) -> bool:
    """Whether v can come from dist (quantised values may round past a bound by q / 2)."""
    p: dict[str, Any] = dist.to_dict()
    q: float = p.get("q", 0)
    lo: float = p.get("min", 0)
    hi: float = p.get("max", 0)
    kind = dist.kind
    if kind == "constant":
        return bool(v == p["value"])
    if kind == "categorical":
        return bool(v in p["values"])
    if kind in ("int_uniform", "uniform", "q_uniform", "log_uniform_values",
                "q_log_uniform_values", "inv_log_uniform_values"):
        ok = lo - q / 2 - 1e-12 <= v <= hi + q / 2 + 1e-12
        return bool(ok) and (kind != "int_uniform" or type(v) is int)
    if kind in ("log_uniform", "q_log_uniform"):
        return bool(math.exp(lo) - q / 2 - 1e-12 <= v <= math.exp(hi) + q / 2 + 1e-12)
    if kind == "inv_log_uniform":
        return bool(math.exp(-hi) - 1e-12 <= v <= math.exp(-lo) + 1e-12)
    if kind in ("log_normal", "q_log_normal"):
        return bool(v >= 0)
    if kind in ("beta", "q_beta"):
        return bool(-q / 2 <= v <= 1 + q / 2)
    return isinstance(v, int | float) and math.isfinite(v)  # normal, q_normal


def test_every_random_value_is_inside_its_distribution() -> None:
    spec = spec_of(WANDB)
    for run in plan(spec, seed=3, count=2000):
        for name, value in run.items():
            dist = spec.parameters[name]
            assert inside(dist, value), (name, value)
            if "q" in dist.to_dict():
                q = dist.to_dict()["q"]
                assert abs(value / q - round(value / q)) < 1e-9, (name, value)


def test_random_weights_are_followed() -> None:
    spec = spec_of("trial: mnist.py:train\nrun_cap: 4000\nparameters:\n"
                   "  decay: {values: [linear, adaptive], probabilities: [0.8, 0.2]}\n")
    share = sum(r["decay"] == "linear" for r in plan(spec, seed=5)) / 4000
    assert share == pytest.approx(0.8, abs=0.03)


def test_trials_is_run_caps_alias() -> None:
    spec = spec_of("trial: mnist.py:train\ntrials: 7\nparameters: {a: {min: 0, max: 9}}\n")
    assert spec.run_cap == 7 and len(list(plan(spec, seed=1))) == 7


def test_random_needs_a_count() -> None:
    spec = spec_of("trial: mnist.py:train\n\nmethod: random\nparameters: {a: {min: 0, max: 9}}\n")
    with pytest.raises(SpecError, match=r"^sweeps/x.yaml:3: method: random search needs"):
        plan(spec, seed=1)
    assert len(list(plan(spec, seed=1, count=4))) == 4


def test_bayes_plans_empty_trials_for_the_workers_to_fill() -> None:
    spec = spec_of("trial: mnist.py:train\nmetric: {name: loss}\nmethod: bayes\nrun_cap: 5\n"
                   "parameters: {lr: {min: 0.0, max: 1.0}}\n")
    assert list(plan(spec, seed=1)) == [{}] * 5
    spec.run_cap = None
    with pytest.raises(SpecError, match=r"^sweeps/x.yaml:3: method: bayes search needs"):
        plan(spec, seed=1)  # raised at the call, not at the first next()


def test_grid_size_of_a_continuous_spec_names_the_parameter() -> None:
    spec = spec_of("trial: mnist.py:train\nparameters:\n  a: {values: [1, 2]}\n"
                   "  lr: {min: 0.0, max: 1.0}\n")
    with pytest.raises(SpecError, match=r"^sweeps/x.yaml:4: parameters.lr: grid search needs"):
        grid_size(spec)


def test_plan_of_a_rebuilt_spec_is_the_same() -> None:
    spec = spec_of(WANDB)
    again = Spec.from_json(spec.to_json())
    assert list(plan(again, seed=9)) == list(plan(spec, seed=9))
    grid = spec_of(GRID)
    assert list(plan(Spec.from_json(grid.to_json()), seed=0)) == list(plan(grid, seed=0))
