"""The hyper-experiment: its state, sampling by name, recording results, metadata and curves."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hypero
from tests.conftest import Target
from tests.test_battery import HOSTILE, IDS

N = 3000  # draws per shape test: tolerances below are about 5 standard errors


@pytest.fixture
def sq(sqlite_target: Target) -> Iterator[hypero.Connection]:
    """A SQLite store, for tests whose subject is not the backend."""
    with sqlite_target.connect() as c:
        yield c


@pytest.fixture
def hex(conn: hypero.Connection) -> hypero.Experiment:
    return conn.battery("hex tests", "v1").experiment()


def draws(conn: hypero.Connection, sample: Callable[[hypero.Experiment, str], Any]) -> list[Any]:
    """N values, one per parameter name, all in one hex; checks that they were stored as drawn."""
    h = conn.battery("shapes", "v1").experiment()
    values = [sample(h, f"p{i}") for i in range(N)]
    h.close()
    assert conn.experiment(h.id).get_param() == {f"p{i}": v for i, v in enumerate(values)}
    return values


# -- state -----------------------------------------------------------------------------------------


def test_new_hex_is_running_then_completed_on_close(
    conn: hypero.Connection, target: Target
) -> None:
    h = conn.battery("state", "v1").experiment()
    assert h.state == "running" and h.error is None
    h.close()
    with target.connect() as other:
        assert other.experiment(h.id).state == "completed"
        assert other.experiment(h.id).error is None
    h.close()  # closing twice changes nothing
    assert h.state == "completed"


def test_with_block_completes(conn: hypero.Connection) -> None:
    with conn.battery("state", "v1").experiment() as h:
        assert h.state == "running"
    assert h.state == "completed"


def _train_that_diverges() -> None:
    raise RuntimeError("loss diverged at epoch 42")


def test_exception_in_with_block_fails_with_traceback(
    conn: hypero.Connection, target: Target
) -> None:
    with pytest.raises(RuntimeError, match="epoch 42"), \
            conn.battery("state", "v1").experiment() as h:
        h.uniform("lr", 0.0, 1.0)
        _train_that_diverges()
    with target.connect() as other:
        again = other.experiment(h.id)
        assert again.state == "failed"
        assert again.error is not None
        assert again.error.startswith("Traceback (most recent call last):")
        assert "_train_that_diverges" in again.error
        assert again.error.rstrip().endswith("RuntimeError: loss diverged at epoch 42")
        assert list(again.get_param()) == ["lr"]  # what was sampled before the failure is kept
    h.close()  # a later close does not turn a failure into a success
    assert h.state == "failed"


def test_checkpoint_dir_is_per_battery_and_hex(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ckpt"
    monkeypatch.setenv("HYPERO_CHECKPOINTS", str(root))
    with target.connect() as conn:
        h = conn.battery("ckpt", "v1").experiment()
        assert not root.exists()
        path = h.checkpoint_dir
        assert path == root / str(h.battery_id) / str(h.id)
        assert path.is_dir()
        (path / "model.pt").write_text("weights")
        assert (conn.experiment(h.id).checkpoint_dir / "model.pt").read_text() == "weights"


# -- sampling --------------------------------------------------------------------------------------


def test_every_method_returns_a_value_in_range_and_stores_it(
    hex: hypero.Experiment, target: Target
) -> None:
    got = {
        "uniform": hex.uniform("dropout", 0.0, 0.5),
        "log_uniform": hex.log_uniform("lr", math.log(1e-5), math.log(0.1)),
        "log_uniform_values": hex.log_uniform_values("lr2", 1e-5, 0.1),
        "normal": hex.normal("saturate", 600, 200),
        "categorical": hex.categorical("lr decay", ["linear", "adaptive"], probs=[0.8, 0.2]),
        "randint": hex.randint("depth", 1, 7),
        "hyper_param": hex.hyper_param("batch size", 32),
    }
    assert 0.0 <= got["uniform"] <= 0.5
    assert 1e-5 * (1 - 1e-12) <= got["log_uniform"] <= 0.1 * (1 + 1e-12)
    assert 1e-5 <= got["log_uniform_values"] <= 0.1
    assert isinstance(got["normal"], float)
    assert got["categorical"] in ("linear", "adaptive")
    assert type(got["randint"]) is int and 1 <= got["randint"] <= 7
    assert got["hyper_param"] == 32
    hex.close()
    with target.connect() as other:
        assert other.experiment(hex.id).get_param() == {
            "dropout": got["uniform"], "lr": got["log_uniform"],
            "lr2": got["log_uniform_values"], "saturate": got["normal"],
            "lr decay": got["categorical"], "depth": got["randint"], "batch size": 32,
        }


def test_same_name_twice_returns_the_first_value(
    hex: hypero.Experiment, conn: hypero.Connection, target: Target
) -> None:
    first = {
        "u": hex.uniform("u", 0.0, 1.0),
        "lu": hex.log_uniform("lu", -5.0, -1.0),
        "luv": hex.log_uniform_values("luv", 1e-3, 1.0),
        "n": hex.normal("n", 0.0, 1.0),
        "c": hex.categorical("c", list(range(100))),
        "r": hex.randint("r", 0, 10**9),
        "bs": hex.hyper_param("bs", 32),
    }

    def ask_again(h: hypero.Experiment) -> dict[str, Any]:
        return {  # other bounds, other choices: the recorded value wins
            "u": h.uniform("u", 5.0, 6.0),
            "lu": h.log_uniform("lu", 1.0, 2.0),
            "luv": h.log_uniform_values("luv", 10.0, 20.0),
            "n": h.normal("n", 1000.0, 1.0),
            "c": h.categorical("c", ["other"]),
            "r": h.randint("r", -5, -1),
            "bs": h.hyper_param("bs", 64),
        }

    assert ask_again(hex) == first
    assert hex.uniform("bs", 0.0, 1.0) == 32  # whatever the method, the name decides
    # reopened on the same connection before anything was closed or flushed
    assert ask_again(conn.experiment(hex.id)) == first
    hex.close()
    with target.connect() as other:
        assert ask_again(other.experiment(hex.id)) == first
        assert other.experiment(hex.id).get_param() == first


BAD_ARGUMENTS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("uniform", (1.0, 0.0), {}),
    ("log_uniform", (0.0, -1.0), {}),
    ("log_uniform_values", (0.1, 1e-5), {}),
    ("log_uniform_values", (0.0, 1.0), {}),
    ("log_uniform_values", (-1.0, 1.0), {}),
    ("log_uniform_values", (-2.0, -1.0), {}),
    ("randint", (7, 1), {}),
    ("normal", (0.0, -1.0), {}),
    ("categorical", ([],), {}),
    ("categorical", (["a", "b"],), {"probs": [-1.0, 2.0]}),
    ("categorical", (["a", "b"],), {"probs": [0.0, 0.0]}),
    ("categorical", (["a", "b"],), {"probs": [1.0]}),
    ("categorical", (["a", "b"],), {"probs": [1.0, 1.0, 1.0]}),
]


@pytest.mark.parametrize(
    ("method", "args", "kwargs"), BAD_ARGUMENTS,
    ids=[f"{m}{a}{k or ''}" for m, a, k in BAD_ARGUMENTS],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(
    sq: hypero.Connection, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    h = sq.battery("bad", "v1").experiment()
    with pytest.raises(ValueError, match="learning rate №2"):
        getattr(h, method)("learning rate №2", *args, **kwargs)
    assert h.get_param() == {}  # nothing recorded


def test_negative_log_uniform_exponents_are_fine(hex: hypero.Experiment) -> None:
    assert math.exp(-10) <= hex.log_uniform("lr", -10.0, -9.0) <= math.exp(-9)
    assert hex.normal("fixed", 3.0, 0.0) == 3.0  # std 0 is a constant, not an error
    assert hex.uniform("point", 2.0, 2.0) == 2.0
    assert hex.randint("one", 4, 4) == 4


# -- sampling: the shape of the distributions ------------------------------------------------------


def test_log_uniform_bounds_are_exponents(sq: hypero.Connection) -> None:
    a, b = math.log(1e-5), math.log(0.1)
    xs = draws(sq, lambda h, n: h.log_uniform(n, a, b))
    logs = [math.log(x) for x in xs]
    assert 1e-5 * (1 - 1e-9) <= min(xs) < 2e-5 and 0.05 < max(xs) <= 0.1 * (1 + 1e-9)
    assert statistics.fmean(logs) == pytest.approx((a + b) / 2, abs=0.25)
    assert statistics.pstdev(logs) == pytest.approx((b - a) / math.sqrt(12), abs=0.15)
    # the log-midpoint of 1e-5 .. 0.1 is 1e-3: half the draws lie below it (linear: 1 %)
    assert sum(x < 1e-3 for x in xs) / N == pytest.approx(0.5, abs=0.05)
    assert sum(x < 1e-4 for x in xs) / N == pytest.approx(0.25, abs=0.04)


def test_log_uniform_values_bounds_are_values(sq: hypero.Connection) -> None:
    xs = draws(sq, lambda h, n: h.log_uniform_values(n, 1e-5, 0.1))
    logs = [math.log(x) for x in xs]
    assert 1e-5 <= min(xs) < 2e-5 and 0.05 < max(xs) <= 0.1
    assert statistics.fmean(logs) == pytest.approx(math.log(1e-3), abs=0.25)
    assert sum(x < 1e-3 for x in xs) / N == pytest.approx(0.5, abs=0.05)
    assert sum(x < 1e-2 for x in xs) / N == pytest.approx(0.75, abs=0.04)


def test_uniform_shape(sq: hypero.Connection) -> None:
    xs = draws(sq, lambda h, n: h.uniform(n, 0.0, 0.5))
    assert 0.0 <= min(xs) < 0.01 and 0.49 < max(xs) <= 0.5
    assert statistics.fmean(xs) == pytest.approx(0.25, abs=0.013)
    assert statistics.pstdev(xs) == pytest.approx(0.5 / math.sqrt(12), abs=0.01)


def test_normal_shape(sq: hypero.Connection) -> None:
    xs = draws(sq, lambda h, n: h.normal(n, 600, 200))
    assert statistics.fmean(xs) == pytest.approx(600, abs=20)
    assert statistics.pstdev(xs) == pytest.approx(200, abs=15)  # std, not variance
    assert sum(400 <= x <= 800 for x in xs) / N == pytest.approx(0.6827, abs=0.045)


def test_randint_covers_both_ends_evenly(sq: hypero.Connection) -> None:
    xs = draws(sq, lambda h, n: h.randint(n, 1, 7))
    assert all(type(x) is int for x in xs)
    counts = Counter(xs)
    assert sorted(counts) == [1, 2, 3, 4, 5, 6, 7]
    for k in range(1, 8):
        assert counts[k] / N == pytest.approx(1 / 7, abs=0.035), counts


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        ([0.8, 0.2], {"linear": 0.8, "adaptive": 0.2}),
        ([1, 3], {"linear": 0.25, "adaptive": 0.75}),  # weights, normalised
        (None, {"linear": 0.5, "adaptive": 0.5}),
        ([0, 5], {"adaptive": 1.0}),
    ],
)
def test_categorical_frequencies(
    sq: hypero.Connection, probs: list[float] | None, expected: dict[str, float]
) -> None:
    xs = draws(sq, lambda h, n: h.categorical(n, ["linear", "adaptive"], probs=probs))
    counts = Counter(xs)
    assert set(counts) == set(expected)
    for choice, p in expected.items():
        assert counts[choice] / N == pytest.approx(p, abs=0.04)


def test_categorical_takes_the_seeds_weights(sq: hypero.Connection) -> None:
    xs = draws(sq, lambda h, n: h.categorical(n, ["a", "b", "c", "d"],
                                              probs=[0.001, 0.0001, 0.0001, 10000]))
    assert Counter(xs) == {"d": N}


# -- recording -------------------------------------------------------------------------------------


def test_result_maxima_and_learning_curve(hex: hypero.Experiment, target: Target) -> None:
    hex.result_maxima(0.91, 0.85, 0.84)
    hex.result_learning_curve((0.5, 0.8, 0.91), [0.4, 0.7, 0.85], np.array([0.4, 0.69, 0.84]))
    with target.connect() as other:
        assert other.experiment(hex.id).get_result() == {
            "train": 0.91, "valid": 0.85, "test": 0.84,
            "train_curve": [0.5, 0.8, 0.91], "valid_curve": [0.4, 0.7, 0.85],
            "test_curve": [0.4, 0.69, 0.84],
        }


def test_partial_maxima_record_only_what_is_given(hex: hypero.Experiment) -> None:
    hex.result_maxima(valid=0.5)
    hex.result_learning_curve(valid=[0.1, 0.5])
    assert hex.get_result() == {"valid": 0.5, "valid_curve": [0.1, 0.5]}
    with pytest.raises(hypero.Conflict, match="valid"):
        hex.result_maxima(valid=0.6)
    hex.result_maxima(valid=0.6, test=0.55, update=True)
    assert hex.get_result() == {"valid": 0.6, "test": 0.55, "valid_curve": [0.1, 0.5]}


def test_meta_helpers(hex: hypero.Experiment, target: Target) -> None:
    hex.meta_name("rnn-attention-3")
    hex.meta_hostname("gpu-host-1")
    hex.meta_dataset("Mnist")
    hex.meta_savepath("/data/save/rnn-attention-3.dat")
    hex.meta_data("gpu", "A100")
    hex.meta_data("devices", [0, 1])
    expected = {"name": "rnn-attention-3", "hostname": "gpu-host-1", "dataset": "Mnist",
                "savepath": "/data/save/rnn-attention-3.dat", "gpu": "A100", "devices": [0, 1]}
    with target.connect() as other:
        assert other.experiment(hex.id).get_meta() == expected
    with pytest.raises(hypero.Conflict, match="hostname"):
        hex.meta_hostname("gpu-host-2")
    hex.meta_hostname("gpu-host-2", update=True)
    assert hex.get_meta() == {**expected, "hostname": "gpu-host-2"}


@pytest.mark.parametrize("kind", ["param", "meta", "result"])
def test_set_get_conflict_per_key(hex: hypero.Experiment, target: Target, kind: str) -> None:
    set_, get = getattr(hex, f"set_{kind}"), getattr(hex, f"get_{kind}")
    set_({"a": 1, "b": [1, 2]})
    set_({"c": "x"})  # a new key merges in
    with pytest.raises(hypero.Conflict, match="'a'") as e:
        set_({"a": 2, "d": 4})
    assert isinstance(e.value, hypero.HyperoError)
    assert "update=True" in str(e.value)
    assert get() == {"a": 1, "b": [1, 2], "c": "x"}  # the refused call wrote nothing
    set_({"a": 2, "d": 4}, update=True)
    with target.connect() as other:
        assert getattr(other.experiment(hex.id), f"get_{kind}")() == {
            "a": 2, "b": [1, 2], "c": "x", "d": 4,
        }


def test_set_param_and_sampling_share_one_document(hex: hypero.Experiment) -> None:
    lr = hex.uniform("lr", 0.0, 1.0)
    with pytest.raises(hypero.Conflict, match="lr"):
        hex.set_param({"lr": 0.5})
    hex.set_param({"momentum": 0.9})
    assert hex.uniform("momentum", 0.0, 0.1) == 0.9  # a set value is what sampling returns
    hex.set_param({"lr": 0.5}, update=True)
    assert hex.uniform("lr", 0.0, 1.0) == 0.5
    assert hex.get_param() == {"lr": 0.5, "momentum": 0.9}
    assert lr != 0.5


# -- streamed curve points -------------------------------------------------------------------------


def test_log_steps_and_values(hex: hypero.Experiment, target: Target) -> None:
    hex.log(loss=1.0)  # default steps: 0, 1, ...
    hex.log(loss=0.5, acc=0.1)
    hex.log(step=10, loss=0.25)
    hex.log(loss=0.125)  # after 10 comes 11
    hex.log(step=11.5, acc=np.float32(0.5))
    hex.log(step=0, loss=0.75)  # the same step again: the last value wins
    expected = {
        "loss": [(0, 0.75), (1, 0.5), (10, 0.25), (11, 0.125)],
        "acc": [(1, 0.1), (11.5, 0.5)],
    }
    assert hex.get_metrics() == expected
    assert hex.get_metrics(names=["acc"]) == {"acc": expected["acc"]}
    hex.close()
    with target.connect() as other:
        assert other.experiment(hex.id).get_metrics() == expected
        assert other.battery("hex tests").get_metrics([hex.id], names=["loss"]) == {
            hex.id: {"loss": expected["loss"]}
        }


@pytest.mark.parametrize("bad", ["abc", "0.5", None, [1.0], {"v": 1}, b"1"])
def test_log_refuses_values_that_are_not_numbers(sq: hypero.Connection, bad: Any) -> None:
    h = sq.battery("log", "v1").experiment()
    with pytest.raises(ValueError, match="valid_acc"):
        h.log(step=0, train_loss=0.3, valid_acc=bad)
    h.log(step=1, train_loss=0.2)
    assert h.get_metrics() == {"train_loss": [(1, 0.2)]}  # the refused call recorded nothing


def test_numpy_steps_are_numbers(sq: hypero.Connection) -> None:
    h = sq.battery("log", "v1").experiment()
    for epoch in np.arange(2):
        h.log(step=epoch, loss=float(epoch))
    h.log(step=np.float32(2.5), loss=2.5)
    h.log(loss=3.5)
    assert h.get_metrics() == {"loss": [(0, 0.0), (1, 1.0), (2.5, 2.5), (3.5, 3.5)]}


@pytest.mark.parametrize("bad", ["3", math.nan, math.inf, True, None, [1]])
def test_log_refuses_steps_that_are_not_numbers(sq: hypero.Connection, bad: Any) -> None:
    h = sq.battery("log", "v1").experiment()
    if bad is None:  # None means "the next step"
        h.log(step=bad, loss=1.0)
        assert h.get_metrics() == {"loss": [(0, 1.0)]}
        return
    with pytest.raises(ValueError, match="step"):
        h.log(step=bad, loss=1.0)
    assert h.get_metrics() == {}


# -- hostile names ---------------------------------------------------------------------------------


def test_hostile_keys_and_metric_names_are_data(conn: hypero.Connection, target: Target) -> None:
    h = conn.battery("hostile keys", "v1").experiment()
    for i, name in enumerate(HOSTILE):
        assert h.hyper_param(name, i) == i
        h.log(step=i, **{name: float(i)})
    h.set_meta({name: name for name in HOSTILE})
    h.set_result({name: [name, i] for i, name in enumerate(HOSTILE)})
    h.close()
    with target.connect() as other:
        again = other.experiment(h.id)
        assert again.get_param() == {name: i for i, name in enumerate(HOSTILE)}
        assert again.get_meta() == {name: name for name in HOSTILE}
        assert again.get_result() == {name: [name, i] for i, name in enumerate(HOSTILE)}
        assert again.get_metrics() == {name: [(i, float(i))] for i, name in enumerate(HOSTILE)}
        assert again.get_metrics(names=[HOSTILE[2]]) == {HOSTILE[2]: [(2, 2.0)]}
        assert other.battery("hostile keys").experiments() == [h.id]


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_hostile_names_sample_and_reopen(sq: hypero.Connection, name: str) -> None:
    h = sq.battery(name, name).experiment()
    v = h.categorical(name, [name, "other"], probs=[1, 0])
    assert v == name
    assert sq.experiment(h.id).categorical(name, ["x"]) == name
