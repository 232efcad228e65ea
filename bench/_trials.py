"""Trial functions the benchmark's sweeps run (importable as ``bench._trials:NAME``)."""

from __future__ import annotations

import math
import time
from typing import Any

REPORTS = 10


def score(lr: float, depth: int, optimizer: str) -> float:
    return -math.log10(lr) + 0.1 * depth + (0.05 if optimizer == "adam" else 0.0)


def noop(hex: Any) -> dict[str, float]:
    """Three sampled parameters, ten logged points, one result: no work at all."""
    lr = hex.log_uniform_values("lr", 1e-5, 0.1)
    depth = hex.randint("depth", 1, 8)
    optimizer = hex.categorical("optimizer", ["adam", "sgd", "rmsprop"])
    value = score(lr, depth, optimizer)
    for step in range(REPORTS):
        hex.log(step=step, loss=value + 1.0 / (step + 1))
    return {"valid": value}


def sleeper(hex: Any) -> dict[str, float]:
    """Runs for a minute (a trial whose worker host will die under it)."""
    hex.log_uniform_values("lr", 1e-5, 0.1)
    for step in range(600):
        hex.log(step=step, loss=1.0 / (step + 1))
        time.sleep(0.1)
    return {"valid": 1.0}
