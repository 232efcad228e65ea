"""Sweep specs: W&B files load unchanged; every bad spec is one line naming file, line and key."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from hypero import distributions as d
from hypero.errors import SpecError
from hypero.spec import DEFAULT_COMMAND, Spec, load, load_trial, loads, parse_duration

MNIST = """\
import sys

def train(hex):
    return {"acc": 0.9}

def evaluate(hex):
    pass

raise SystemExit("validation must not run user code")
"""

# A W&B sweep file as W&B documents it: program + command + nested parameters + every
# distribution + W&B-only keys.
WANDB = """\
program: train.py
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - --config=${args_json_file}
  - ${args}
name: wandb sweep
description: every distribution
project: mnist
entity: team
method: random
run_cap: 20
metric:
  name: val_loss
  goal: minimize
  target: 0.01
early_terminate:
  type: hyperband
  max_iter: 27
  s: 2
parameters:
  epochs: {value: 10}
  optimizer: {values: [adam, sgd]}
  decay: {values: [linear, adaptive], probabilities: [0.8, 0.2]}
  layers: {min: 1, max: 4}
  dropout: {min: 0.0, max: 0.5}
  lr: {distribution: log_uniform_values, min: 1e-5, max: 1e-1}
  lr_exp: {distribution: log_uniform, min: -11.5, max: -2.3}
  width: {distribution: q_uniform, min: 32, max: 256, q: 32}
  batch: {distribution: q_log_uniform_values, min: 16, max: 256, q: 8}
  batch_exp: {distribution: q_log_uniform, min: 2, max: 5, q: 1}
  wd: {distribution: inv_log_uniform_values, min: 1e-6, max: 1e-2}
  wd_exp: {distribution: inv_log_uniform, min: 4, max: 13}
  noise: {distribution: normal, mu: 0, sigma: 0.1}
  steps: {distribution: q_normal, mu: 100, sigma: 10, q: 5}
  scale: {distribution: log_normal, mu: 0, sigma: 1}
  units: {distribution: q_log_normal, mu: 4, sigma: 0.5, q: 1}
  mix: {distribution: beta, a: 2, b: 5}
  mix_q: {distribution: q_beta, a: 2, b: 5, q: 0.05}
  plain_normal: {distribution: normal}
  model:
    parameters:
      kind: {values: [mlp, cnn]}
      head:
        parameters:
          size: {values: [64, 128]}
"""

DESIGN_EXAMPLE = """\
battery: MNIST MLP
version: "v2: fixed dropout bug"
trial: mnist.py:train
method: random
run_cap: 100
metric: {name: valid_acc, goal: maximize}
parameters:
  lr:         {distribution: log_uniform_values, min: 1.0e-5, max: 0.1}
  decay:      {values: [linear, adaptive], probabilities: [0.8, 0.2]}
  saturate:   {distribution: normal, mu: 600, sigma: 200}
  depth:      {distribution: int_uniform, min: 1, max: 7}
  batch_size: {value: 32}
early_terminate: {type: hyperband, min_iter: 3, eta: 3}
queue: gpu
resources: {gpus: 1}
retries: 2
max_attempts: 3
timeout: 6h
lease: 60s
"""


@pytest.fixture(autouse=True)
def sweeps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "mnist.py").write_text(MNIST)
    (folder / "train.py").write_text("print('training')\n")
    return folder


def spec_of(text: str, name: str = "x.yaml") -> Spec:
    Path("sweeps", name).write_text(dedent(text))
    return load(f"sweeps/{name}")


def problem(text: str) -> str:
    with pytest.raises(SpecError) as info:
        spec_of(text)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- accepted files -----------------------------------------------------------------------

def test_a_wandb_sweep_file_loads_unchanged(sweeps: Path) -> None:
    spec = spec_of(WANDB)
    assert spec.program == str(sweeps / "train.py")
    assert spec.command == ["${env}", "${interpreter}", "${program}",
                            "--config=${args_json_file}", "${args}"]
    assert spec.trial is None and spec.trial_ref is None
    assert spec.battery == "wandb sweep" and spec.description == "every distribution"
    assert spec.run_cap == 20 and spec.method == "random"
    assert spec.metric is not None and spec.metric.target == 0.01
    assert spec.early_terminate == {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3,
                                    "strict": False}
    kinds = {name: dist.kind for name, dist in spec.parameters.items()}
    assert kinds == {
        "epochs": "constant", "optimizer": "categorical", "decay": "categorical",
        "layers": "int_uniform", "dropout": "uniform", "lr": "log_uniform_values",
        "lr_exp": "log_uniform", "width": "q_uniform", "batch": "q_log_uniform_values",
        "batch_exp": "q_log_uniform", "wd": "inv_log_uniform_values",
        "wd_exp": "inv_log_uniform", "noise": "normal", "steps": "q_normal",
        "scale": "log_normal", "units": "q_log_normal", "mix": "beta", "mix_q": "q_beta",
        "plain_normal": "normal", "model.kind": "categorical", "model.head.size": "categorical",
    }
    assert spec.parameters["lr"] == d.LogUniformValues(1e-5, 0.1)
    assert spec.parameters["plain_normal"] == d.Normal(0.0, 1.0)  # W&B's defaults
    assert spec.parameters["decay"].to_dict()["probabilities"] == [0.8, 0.2]
    assert spec.notes[:2] == ["sweeps/x.yaml:10: project: ignored (W&B-only key)",
                              "sweeps/x.yaml:11: entity: ignored (W&B-only key)"]
    assert any(n.startswith("sweeps/x.yaml:29: parameters.lr_exp: log_uniform: min and max "
                            "are base-e exponents") for n in spec.notes)


def test_the_design_example_loads(sweeps: Path) -> None:
    spec = spec_of(DESIGN_EXAMPLE)
    assert (spec.battery, spec.version) == ("MNIST MLP", "v2: fixed dropout bug")
    assert spec.trial == "mnist.py:train"
    assert spec.trial_ref == (str(sweeps / "mnist.py"), "train")
    assert spec.program is None and spec.command is None
    assert spec.metric is not None and (spec.metric.name, spec.metric.goal) == ("valid_acc",
                                                                                "maximize")
    assert spec.parameters["depth"] == d.IntUniform(1, 7)
    assert spec.parameters["saturate"] == d.Normal(600, 200)
    assert spec.parameters["batch_size"] == d.Constant(32)
    assert spec.early_terminate == {"type": "hyperband", "min_iter": 3, "eta": 3,
                                    "strict": False}
    assert (spec.queue, spec.resources, spec.retries, spec.max_attempts) == ("gpu", {"gpus": 1},
                                                                             2, 3)
    assert (spec.timeout, spec.lease) == (6 * 3600, 60)
    assert spec.path == sweeps / "x.yaml" and spec.base_dir == sweeps
    assert spec.notes == []


def test_defaults() -> None:
    spec = spec_of("trial: mnist.py:train\n", name="my_sweep.yaml")
    assert spec.battery == "my_sweep" and spec.version == "Initial battery version"
    assert (spec.method, spec.run_cap, spec.metric, spec.parameters) == ("random", None, None, {})
    assert (spec.queue, spec.resources, spec.retries, spec.max_attempts) == ("hypero",
                                                                             {"gpus": 0}, 0, 3)
    assert (spec.timeout, spec.lease, spec.bayes, spec.early_terminate) == (None, 60.0, None, None)
    assert spec_of("trial: mnist.py:train\nname: N\n").battery == "N"
    assert spec_of("trial: mnist.py:train\nname: N\nbattery: B\n").battery == "B"
    assert spec_of("trial: mnist.py:train\nversion: 2\n").version == "2"


def test_program_gets_wandb_default_command(sweeps: Path) -> None:
    spec = spec_of("program: train.py\nparameters: {x: {value: 1}}\n")
    assert spec.command == DEFAULT_COMMAND == ["${env}", "${interpreter}", "${program}", "${args}"]
    assert spec.program == str(sweeps / "train.py")
    command_only = spec_of("command: [python, -c, pass, '${args_no_hyphens}', '${envvar:HOME}']\n")
    assert command_only.program is None and command_only.command is not None


def test_numbers_like_1e_5_are_numbers() -> None:
    spec = spec_of("""\
        trial: mnist.py:train
        parameters:
          lr: {min: 1e-5, max: 1E-1}
          wd: {values: [1e-4, 1.0e5, 2.5e+3, -3e2, .5e1, 1_000, 1.5, "1e-3"]}
          eps: {value: 1e-8}
        """)
    assert spec.parameters["lr"] == d.Uniform(1e-5, 0.1)
    assert spec.parameters["wd"] == d.Categorical([1e-4, 1e5, 2500.0, -300.0, 5.0, 1000, 1.5,
                                                   "1e-3"])
    assert spec.parameters["eps"] == d.Constant(1e-8)


def test_int_bounds_infer_int_uniform_and_float_bounds_uniform() -> None:
    spec = spec_of("""\
        trial: mnist.py:train
        parameters:
          a: {min: 1, max: 7}
          b: {min: 1, max: 7.0}
          c: {min: 1.0, max: 7}
          e: {values: [1, 2], distribution: categorical}
        """)
    assert [p.kind for p in spec.parameters.values()] == ["int_uniform", "uniform", "uniform",
                                                          "categorical"]


def test_weights_are_normalised_with_a_note() -> None:
    spec = spec_of("""\
        trial: mnist.py:train
        parameters:
          decay: {values: [a, b, c, d], probabilities: [0.001, 0.0001, 0.0001, 10000]}
        """)
    weights = spec.parameters["decay"].to_dict()["probabilities"]
    assert sum(weights) == pytest.approx(1.0) and weights[3] == pytest.approx(1, abs=1e-6)
    assert spec.notes == ["sweeps/x.yaml:3: parameters.decay.probabilities: weights normalised "
                          "(they sum to 10000; W&B wants 1)"]


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), (1.5, 1.5), ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("6h", 21600.0),
    ("1d", 86400.0), ("1h30m", 5400.0), ("1d2h3m4s", 93784.0), ("1.5h", 5400.0), (" 2 m ", 120.0),
])
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6 hours", "30m1h", "1h1h", "0", 0, -5, "5x", True, None,
                                  float("inf"), "h"])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match="must be a duration > 0"):
        parse_duration(text)


def test_yaml_base60_duration_reads_as_seconds() -> None:
    assert spec_of("trial: mnist.py:train\ntimeout: 1:30:00\n").timeout == 5400.0


def test_retries_raise_the_default_max_attempts() -> None:
    assert spec_of("trial: mnist.py:train\nretries: 5\n").max_attempts == 6


def test_trial_as_a_module(sweeps: Path) -> None:
    assert spec_of("trial: json:dumps\n").trial_ref == ("json", "dumps")
    assert spec_of("trial: os.path:join\n").trial_ref == ("os.path", "join")
    # a module only the spec's directory holds is loaded by location
    assert spec_of("trial: mnist:train\n").trial_ref == (str(sweeps / "mnist.py"), "train")


def test_load_trial_from_a_file_and_a_module(sweeps: Path) -> None:
    (sweeps / "helper.py").write_text("VALUE = 41\n")
    (sweeps / "good.py").write_text("import helper\n\ndef train(hex):\n"
                                    "    return helper.VALUE + 1\n")
    spec = spec_of("trial: good.py:train\n")
    assert spec.trial_ref is not None
    fn = load_trial(spec.trial_ref)
    assert fn(None) == 42
    assert load_trial(spec.trial_ref) is fn  # loaded once
    assert load_trial(("json", "dumps")) is json.dumps
    with pytest.raises(SpecError, match="trial: nope is not defined in json"):
        load_trial(("json", "nope"))
    with pytest.raises(SystemExit):  # the user's module runs only now
        load_trial((str(sweeps / "mnist.py"), "train"))
    assert not any(m.startswith("hypero_trial_mnist") for m in sys.modules)


def test_to_json_round_trips() -> None:
    spec = spec_of(WANDB)
    document = json.loads(json.dumps(spec.to_json()))
    assert document["raw"]["parameters"]["lr"] == {"distribution": "log_uniform_values",
                                                   "min": 1e-5, "max": 0.1}
    again = Spec.from_json(document)
    assert again.parameters == spec.parameters
    assert again.to_json() == spec.to_json()


def test_raw_keeps_dates_as_text() -> None:
    spec = spec_of("trial: mnist.py:train\ndescription: 2024-01-31\n")
    assert spec.raw["description"] == "2024-01-31" and spec.description == "2024-01-31"


def test_error_points_at_a_key() -> None:
    spec = spec_of("trial: mnist.py:train\n\nmethod: random\nparameters:\n  a: {value: 1}\n")
    assert str(spec.error("boom", key="method")) == "sweeps/x.yaml:3: method: boom"
    assert str(spec.error("boom", key="parameters.a.value")) == (
        "sweeps/x.yaml:5: parameters.a.value: boom")


def test_loads_without_a_path_uses_the_working_directory() -> None:
    Path("t.py").write_text("def f(hex):\n    pass\n")
    spec = loads("trial: t.py:f\n")
    assert spec.path is None and spec.battery == "sweep"
    with pytest.raises(SpecError, match=r"^<string>:1: trial: file nope.py not found"):
        loads("trial: nope.py:f\n")


def test_bayes_and_its_options_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hypero.bayes.require", lambda sampler="tpe": None)  # torch or not
    spec = spec_of("trial: mnist.py:train\nmethod: bayes\nmetric: {name: loss}\n"
                   "bayes: {sampler: gp}\n")
    assert spec.bayes == {"sampler": "gp"} and spec.metric is not None
    assert spec.metric.goal == "minimize"
    ignored = spec_of("trial: mnist.py:train\nbayes: {sampler: tpe}\n")
    assert ignored.notes == ["sweeps/x.yaml:2: bayes: ignored (method is random)"]


# --- refused files: exact file:line: key: prefix ------------------------------------------

BAD = [
    ("""\
     trial: mnist.py:train
     parameters:
       lr:
         distribution: uniform
         max: 0.01
         min: 0.1
     """, "sweeps/x.yaml:6: parameters.lr.min: must be < max (got 0.1 >= 0.01)"),
    ("trial: mnist.py:train\nparameters:\n  depth: {min: 3, max: 3}\n",
     "sweeps/x.yaml:3: parameters.depth.min: must be < max (got 3 >= 3)"),
    ("trial: mnist.py:train\nparameters:\n  lr:\n    distribution: log_uniform_values\n"
     "    min: 0\n    max: 1\n",
     "sweeps/x.yaml:5: parameters.lr.min: must be > 0 for log_uniform_values (got 0)"),
    ("trial: mnist.py:train\nrun_caps: 5\n",
     "sweeps/x.yaml:2: run_caps: unknown key; did you mean 'run_cap'?"),
    ("trial: mnist.py:train\nparameters:\n  opt:\n    valeus: [a, b]\n",
     "sweeps/x.yaml:4: parameters.opt.valeus: unknown key; did you mean 'values'?"),
    ("trial: mnist.py:train\nparameters:\n  lr: {distribution: loguniform, min: 0, max: 1}\n",
     "sweeps/x.yaml:3: parameters.lr.distribution: unknown distribution 'loguniform'; "
     "did you mean 'log_uniform'?"),
    ("trial: mnist.py:train\nparameters:\n  x:\n    distribution: uniform\n    min: 0\n"
     "    max: 1\n    q: 0.1\n",
     "sweeps/x.yaml:7: parameters.x.q: uniform takes no 'q' (it takes distribution, min, max)"),
    ("trial: mnist.py:train\nparameters:\n  x: {mu: 0, sigma: 1}\n",
     "sweeps/x.yaml:3: parameters.x: mu/sigma need a distribution: normal, log_normal"),
    ("trial: mnist.py:train\nparameters:\n  x: {}\n",
     "sweeps/x.yaml:3: parameters.x: give value, values, min and max, or a distribution"),
    ("trial: mnist.py:train\nparameters:\n  x:\n    values: [a, b]\n"
     "    probabilities: [0.5, 0.3, 0.2]\n",
     "sweeps/x.yaml:5: parameters.x.probabilities: needs one weight per value "
     "(got 3 weights for 2 values)"),
    ("trial: mnist.py:train\nparameters:\n  x:\n    values: [a, b]\n    probabilities:\n"
     "      - 0.5\n      - -0.5\n",
     "sweeps/x.yaml:7: parameters.x.probabilities[1]: must be >= 0 (got -0.5)"),
    ("trial: mnist.py:train\nparameters:\n  x: {values: [a, b], probabilities: [0, 0]}\n",
     "sweeps/x.yaml:3: parameters.x.probabilities: must not all be zero"),
    ("trial: mnist.py:train\nparameters:\n  x: {values: []}\n",
     "sweeps/x.yaml:3: parameters.x.values: must have at least 1 item (got [])"),
    ("trial: mnist.py:train\nparameters:\n  n: {distribution: normal, sigma: -1}\n",
     "sweeps/x.yaml:3: parameters.n.sigma: must be >= 0 (got -1)"),
    ("trial: mnist.py:train\nparameters:\n  n: {distribution: q_uniform, min: 0, max: 1, q: 0}\n",
     "sweeps/x.yaml:3: parameters.n.q: must be > 0 (got 0)"),
    ("trial: mnist.py:train\nparameters:\n  n: {distribution: beta, a: 0}\n",
     "sweeps/x.yaml:3: parameters.n.a: must be > 0 (got 0)"),
    ("trial: mnist.py:train\nparameters:\n  n: {distribution: int_uniform, min: 1, max: 7.5}\n",
     "sweeps/x.yaml:3: parameters.n.max: must be a valid integer (got 7.5)"),
    ("trial: mnist.py:train\nparameters:\n  n: {min: low, max: 1}\n",
     "sweeps/x.yaml:3: parameters.n.min: must be a number (got 'low')"),
    ("trial: mnist.py:train\nparameters:\n  n: {min: 0}\n",
     "sweeps/x.yaml:3: parameters.n.max: required key missing"),
    ("trial: mnist.py:train\nparameters:\n  lr: 0.1\n",
     "sweeps/x.yaml:3: parameters.lr: must be a mapping such as {value: 0.1}"),
    ("trial: mnist.py:train\nparameters:\n  lr: {distribution: log_uniform, min: 0, max: 1e4}\n",
     "sweeps/x.yaml:3: parameters.lr: min and max are exponents for log_uniform"),
    ("trial: mnist.py:train\nparameters:\n  model:\n    parameters:\n      a: {value: 1}\n"
     "    value: 3\n",
     "sweeps/x.yaml:6: parameters.model.value: a nested parameters block takes no other keys"),
    ("trial: mnist.py:train\nparameters:\n  model:\n    parameters: {}\n",
     "sweeps/x.yaml:4: parameters.model.parameters: must name at least one parameter"),
    ("trial: mnist.py:train\nparameters:\n  a.b: {value: 1}\n  a:\n    parameters:\n"
     "      b: {value: 2}\n",
     "sweeps/x.yaml:6: parameters.a.parameters.b: parameter 'a.b' is defined twice "
     "(also at parameters.a.b)"),
    ("trial: mnist.py:train\nparameters:\n  1: {value: 1}\n",
     "sweeps/x.yaml:3: parameters.1: keys must be strings: quote this key"),
    ("trial: mnist.py:train\nparameters: [lr]\n",
     "sweeps/x.yaml:2: parameters: must be a valid dictionary"),
    ("trial: mnist.py:train\nmethod: grid\nparameters:\n  a: {values: [1, 2]}\n"
     "  lr: {min: 0.1, max: 1.0}\n",
     "sweeps/x.yaml:5: parameters.lr: grid search needs a finite set of values, but uniform "
     "is continuous"),
    ("trial: mnist.py:train\nmethod: grid\nparameters:\n  lr:\n"
     "    distribution: q_log_uniform_values\n    min: 1\n    max: 10\n",
     "sweeps/x.yaml:4: parameters.lr: grid search needs a finite set of values, but "
     "q_log_uniform_values is continuous"),
    ("trial: mnist.py:train\nmethod: grid\nparameters:\n  a:\n    values: [1, 2]\n"
     "    probabilities: [0.5, 0.5]\n",
     "sweeps/x.yaml:6: parameters.a.probabilities: grid search takes no probabilities"),
    ("trial: mnist.py:train\nmethod: custom\n",
     "sweeps/x.yaml:2: method: must be 'random', 'grid' or 'bayes' (got 'custom')"),
    ("trial: mnist.py:train\n\nmethod: bayes\n",
     "sweeps/x.yaml:3: method: bayes needs a metric"),
    ("trial: mnist.py:train\nearly_terminate: {type: hyperband, min_iter: 3}\n",
     "sweeps/x.yaml:2: early_terminate: hyperband needs a metric"),
    ("trial: mnist.py:train\nmetric: {name: loss}\nearly_terminate:\n  type: hyperband\n"
     "  max_iter: 27\n",
     "sweeps/x.yaml:3: early_terminate: hyperband needs min_iter, or max_iter and s"),
    ("trial: mnist.py:train\nmetric: {name: loss}\nearly_terminate:\n  type: hyperband\n"
     "  min_iter: 3\n  eta: 1\n",
     "sweeps/x.yaml:6: early_terminate.eta: must be > 1 (got 1)"),
    ("trial: mnist.py:train\nmetric: {name: loss}\nearly_terminate:\n  type: median\n",
     "sweeps/x.yaml:4: early_terminate.type: must be 'hyperband' (got 'median')"),
    ("trial: mnist.py:train\nmetric:\n  name: acc\n  goal: maximise\n",
     "sweeps/x.yaml:4: metric.goal: must be 'minimize' or 'maximize' (got 'maximise')"),
    ("trial: mnist.py:train\nmetric: val_loss\n",
     "sweeps/x.yaml:2: metric: must be a valid dictionary (got 'val_loss')"),
    ("trial: mnist.py:train\nmetric:\n  goal: maximize\n",
     "sweeps/x.yaml:2: metric.name: required key missing"),
    ("trial: mnist.py:train\nmetric:\n  name: acc\n  nmae: x\n",
     "sweeps/x.yaml:4: metric.nmae: unknown key; did you mean 'name'?"),
    ("name: x\ntrial: nope.py:train\n",
     "sweeps/x.yaml:2: trial: file nope.py not found (looked for "),
    ("trial: mnist.py:trian\n",
     "sweeps/x.yaml:1: trial: mnist.py defines no function 'trian'; did you mean 'train'?"),
    ("trial: mnist.py\n",
     "sweeps/x.yaml:1: trial: must be 'file.py:function' or 'package.module:function' "
     "(got 'mnist.py')"),
    ("trial: no_such_module_xyz.sub:f\n",
     "sweeps/x.yaml:1: trial: module no_such_module_xyz.sub not found"),
    ("trial: json:nope\n", "sweeps/x.yaml:1: trial: json defines no function 'nope'"),
    ("trial: mnist.py:train\nprogram: train.py\n",
     "sweeps/x.yaml:2: program: give trial (a function) or program (a W&B script), not both"),
    ("name: x\nparameters: {a: {value: 1}}\n",
     "sweeps/x.yaml:1: trial: missing: give trial (file.py:function or package.module:function)"
     " or program"),
    ("program: nope.py\n", "sweeps/x.yaml:1: program: file nope.py not found"),
    ("program: train.py\ncommand:\n  - python\n  - ${program}\n  - ${arg}\n",
     "sweeps/x.yaml:5: command[2]: unknown macro ${arg}; did you mean ${args}?"),
    ("command: [python, '${program}']\n",
     "sweeps/x.yaml:1: command[1]: uses ${program} but the spec gives no program"),
    ("program: train.py\ncommand: [python, [a]]\n",
     "sweeps/x.yaml:2: command[1]: must be a string (got ['a'])"),
    ("trial: mnist.py:train\nrun_cap: 0\n",
     "sweeps/x.yaml:2: run_cap: must be > 0 (got 0)"),
    ("trial: mnist.py:train\nrun_cap: ten\n",
     "sweeps/x.yaml:2: run_cap: must be a valid integer (got 'ten')"),
    ("trial: mnist.py:train\nrun_cap: 5\ntrials: 5\n",
     "sweeps/x.yaml:3: trials: trials is an alias of run_cap: give only one"),
    ("trial: mnist.py:train\nresources:\n  gpus: -1\n",
     "sweeps/x.yaml:3: resources.gpus: must be >= 0 (got -1)"),
    ("trial: mnist.py:train\nresources:\n  gpu: 1\n",
     "sweeps/x.yaml:3: resources.gpu: unknown key; did you mean 'gpus'?"),
    ("trial: mnist.py:train\nretries: -1\n",
     "sweeps/x.yaml:2: retries: must be >= 0 (got -1)"),
    ("trial: mnist.py:train\nretries: 3\nmax_attempts: 3\n",
     "sweeps/x.yaml:3: max_attempts: must be > retries, since it counts every attempt "
     "(got 3 <= retries 3)"),
    ("trial: mnist.py:train\ntimeout: 6 hours\n",
     "sweeps/x.yaml:2: timeout: must be a duration > 0: seconds, or like 90s, 5m, 6h, 1d, "
     "1h30m (got '6 hours')"),
    ("trial: mnist.py:train\nlease: 0\n", "sweeps/x.yaml:2: lease: must be a duration > 0"),
    ("trial: mnist.py:train\nqueue: ''\n",
     "sweeps/x.yaml:2: queue: must have at least 1 character (got '')"),
    ("trial: mnist.py:train\nbayes: {sampler: cmaes}\n",
     "sweeps/x.yaml:2: bayes.sampler: must be 'tpe' or 'gp' (got 'cmaes')"),
    ("trial: mnist.py:train\nparameters:\n  a: {value: 1}\n  a: {value: 2}\n",
     "sweeps/x.yaml:4: parameters.a: duplicate key (first given on line 3)"),
    ("trial: mnist.py:train\nparameters:\n  a: {value: [1, 2}\n",
     "sweeps/x.yaml:3: YAML syntax error: expected ',' or ']', but got '}' (column 19)"),
    ("trial: mnist.py:train\n  parameters: 1\n",
     "sweeps/x.yaml:2: YAML syntax error: mapping values are not allowed here (column 13)"),
    ("- trial\n", "sweeps/x.yaml:1: a sweep spec must be a YAML mapping of keys (got list)"),
    ("", "sweeps/x.yaml:1: a sweep spec must be a YAML mapping of keys (got an empty file)"),
    ("trial: mnist.py:train\ndescription: !!binary aGVsbG8=\n",
     "sweeps/x.yaml:2: description: tag:yaml.org,2002:binary is not a JSON value"),
    ("trial: mnist.py:train\ndescription: !!set {a, b}\n",
     "sweeps/x.yaml:2: description: tag:yaml.org,2002:set is not a JSON value"),
    ("trial: mnist.py:train\nparameters: &p\n  a: {value: *p}\n",
     "sweeps/x.yaml:3: parameters.a.value: a YAML alias refers to itself"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[e.split(": ", 1)[-1][:60] for _, e in BAD])
def test_bad_specs_name_file_line_and_key(text: str, expected: str) -> None:
    assert problem(text).startswith(expected)


def test_spec_error_carries_file_line_and_key() -> None:
    with pytest.raises(SpecError) as info:
        spec_of("trial: mnist.py:train\nparameters:\n  lr: {min: 2.0, max: 1.0}\n")
    assert (info.value.file, info.value.line, info.value.key) == (
        "sweeps/x.yaml", 3, "parameters.lr.min")


def test_an_unreadable_file() -> None:
    with pytest.raises(SpecError, match=r"^sweeps/none.yaml: cannot read the spec"):
        load("sweeps/none.yaml")


def test_a_syntax_error_in_the_trial_file(sweeps: Path) -> None:
    (sweeps / "broken.py").write_text("def train(hex):\n    return (\n")
    assert problem("trial: broken.py:train\n").startswith(
        "sweeps/x.yaml:1: trial: broken.py:")


def test_the_first_problem_in_the_file_is_reported() -> None:
    text = "trial: mnist.py:train\nretries: -1\nrun_cap: 0\nmetric: {goal: up}\n"
    assert problem(text).startswith("sweeps/x.yaml:2: retries:")
