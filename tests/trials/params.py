"""Trials for tests/test_runner.py: what a trial does with its declared parameters."""

from __future__ import annotations

from typing import Any


def resample_and_override(hex: Any) -> dict[str, float]:
    """Asks for its declared params again (the dispatcher's values come back), overrides one
    with ``set_param(update=True)`` and samples one the spec does not declare."""
    lr = hex.log_uniform_values("lr", 1e-5, 0.1)
    depth = hex.randint("depth", 1, 8)
    hex.set_param({"depth": depth + 100}, update=True)
    hex.uniform("extra", 0.0, 1.0)
    return {"lr_seen": lr, "depth_seen": float(depth)}
