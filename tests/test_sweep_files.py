"""Every spec in sweeps/ validates, and the plan it makes has the size it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypero import dispatcher, search
from hypero.spec import load

SWEEPS = sorted((Path(__file__).parent.parent / "sweeps").glob("*.yaml"))


def test_there_are_examples() -> None:
    names = {p.name for p in SWEEPS}
    assert {"quickstart.yaml", "wandb_program.yaml", "grid.yaml", "gpu_torch.yaml",
            "wandb_bayes.yaml"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_example_validates(path: Path) -> None:
    spec = load(path)
    n = dispatcher.trial_count(spec)
    plans = list(search.plan(spec, 1, n))
    assert len(plans) == n > 0
    declared = set() if spec.method == "bayes" else set(spec.parameters)  # workers suggest them
    assert all(set(p) == declared for p in plans)


def test_grid_example_size() -> None:
    spec = load(Path(__file__).parent.parent / "sweeps" / "grid.yaml")
    assert dispatcher.trial_count(spec) == 3 * 2 * 2 * 2


def test_wandb_example_is_a_program_sweep() -> None:
    spec = load(Path(__file__).parent.parent / "sweeps" / "wandb_program.yaml")
    assert spec.program is not None and spec.program.endswith("wandb_train.py")
    assert "model.width" in spec.parameters and "model.depth" in spec.parameters
    assert any("project" in note for note in spec.notes)


def test_wandb_bayes_example_uses_bayes_and_hyperband() -> None:
    from hypero.bayes import engine_space
    from hypero.hyperband import brackets

    spec = load(Path(__file__).parent.parent / "sweeps" / "wandb_bayes.yaml")
    assert spec.method == "bayes" and spec.program is not None
    assert spec.early_terminate is not None and brackets(spec.early_terminate)[:3] == [1, 3, 9]
    assert spec.metric is not None and spec.metric.target == 0.02
    assert set(engine_space(spec.parameters)) == {"lr", "optimizer", "batch_size",
                                                   "model.dropout", "model.depth"}
    assert any("project" in note for note in spec.notes)
    from hypero.bayes import suggest

    params = suggest(spec.parameters, "minimize", [], {}, seed=1).params  # nested: outer.inner
    assert 0 <= params["model.dropout"] <= 0.5 and params["model.depth"] in range(1, 7)
    assert params["batch_size"] % 16 == 0 and params["optimizer"] in ("adam", "sgd")
