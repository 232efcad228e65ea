"""``hypero.trial`` called in this process (tests/test_sweeps_e2e.py runs it under Celery)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import hypero
from tests.conftest import Target


def test_trial_hands_a_hex_and_records_the_returned_results(target: Target) -> None:
    @hypero.trial("decorated", "v1", db=target.url, schema=target.schema)
    def task(hex: hypero.Experiment, x: int, scale: int = 2) -> dict[str, Any]:
        """Doubles."""
        assert isinstance(hex, hypero.Experiment)
        hex.hyper_param("x", x)
        return {"y": x * scale, "hex": hex.id}

    assert list(inspect.signature(task).parameters) == ["x", "scale"]
    assert task.__name__ == "task" and task.__doc__ == "Doubles."
    out = task(3, scale=5)
    assert out["y"] == 15
    with target.connect() as conn:
        bat = conn.battery("decorated")
        assert bat.version == "v1" and bat.experiments() == [out["hex"]]
        assert bat.get_result([out["hex"]])[out["hex"]] == {"y": 15, "hex": out["hex"]}
        assert bat.get_param([out["hex"]])[out["hex"]] == {"x": 3}
        assert conn.store.experiment(out["hex"])["state"] == "completed"


def test_trial_that_raises_is_failed_and_the_error_propagates(target: Target) -> None:
    seen: list[int] = []

    @hypero.trial("decorated", db=target.url, schema=target.schema)
    def task(hex: hypero.Experiment) -> None:
        seen.append(hex.id)
        raise KeyError("nope")

    @hypero.trial("decorated", db=target.url, schema=target.schema)
    def not_a_dict(hex: hypero.Experiment) -> Any:
        seen.append(hex.id)
        return 42

    with pytest.raises(KeyError):
        task()
    with pytest.raises(TypeError, match="returns a dict of results or None, not int"):
        not_a_dict()
    with target.connect() as conn:
        rows = [conn.store.experiment(h) for h in seen]
    assert [r["state"] for r in rows] == ["failed", "failed"]
    assert "KeyError: 'nope'" in rows[0]["error"]
    assert "TypeError" in rows[1]["error"]
