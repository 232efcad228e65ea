"""Trials with a known optimum and learning curves, for bayes and hyperband tests and the bench."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import hypero

OPTIMUM = {"x": 0.3, "lr": 1e-3, "depth": 4}


def loss_of(x: float, lr: float, depth: int) -> float:
    """A smooth bowl with its minimum 0 at OPTIMUM: x on [-1, 1], lr log-scaled, depth an int."""
    return ((x - OPTIMUM["x"]) ** 2 + 0.1 * (math.log10(lr) - math.log10(OPTIMUM["lr"])) ** 2
            + 0.02 * (depth - OPTIMUM["depth"]) ** 2)


def bowl(hex: Any) -> dict[str, Any]:
    """The synthetic objective; an undeclared parameter is sampled here, define-by-run."""
    x, lr = hex.uniform("x", -1.0, 1.0), hex.log_uniform_values("lr", 1e-5, 1e-1)
    depth = hex.randint("depth", 1, 8)
    hex.uniform("noise_seed", 0.0, 1.0)  # undeclared: recorded, ignored by the engine
    time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
    return {"loss": loss_of(x, lr, depth)}


def curve(hex: Any) -> dict[str, Any]:
    """A learning curve: loss(step) = final + gap / step, logged at steps 1..epochs."""
    final, gap = hex.uniform("final", 0.0, 1.0), hex.uniform("gap", 0.0, 1.0)
    epochs = int(hex.hyper_param("epochs", 9))
    loss = math.inf
    try:
        for step in range(1, epochs + 1):
            loss = final + gap / step
            hex.log(step=step, loss=loss)
    except hypero.Pruned:
        hex.set_result({"should_stop": hex.should_stop(), "stopped_at": step})
        raise
    return {"loss": loss}
