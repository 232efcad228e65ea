"""Every spec in sweeps/ validates, and the plan it makes has the size it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypero import dispatcher, search
from hypero.spec import load

SWEEPS = sorted((Path(__file__).parent.parent / "sweeps").glob("*.yaml"))


def test_there_are_examples() -> None:
    names = {p.name for p in SWEEPS}
    assert {"quickstart.yaml", "wandb_program.yaml", "grid.yaml", "gpu_torch.yaml"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_example_validates(path: Path) -> None:
    spec = load(path)
    n = dispatcher.trial_count(spec)
    plans = list(search.plan(spec, 1, n))
    assert len(plans) == n > 0
    assert all(set(p) == set(spec.parameters) for p in plans)


def test_grid_example_size() -> None:
    spec = load(Path(__file__).parent.parent / "sweeps" / "grid.yaml")
    assert dispatcher.trial_count(spec) == 3 * 2 * 2 * 2


def test_wandb_example_is_a_program_sweep() -> None:
    spec = load(Path(__file__).parent.parent / "sweeps" / "wandb_program.yaml")
    assert spec.program is not None and spec.program.endswith("wandb_train.py")
    assert "model.width" in spec.parameters and "model.depth" in spec.parameters
    assert any("project" in note for note in spec.notes)
