"""Trial functions for the sweep tests: quick, deterministic, and telling what they saw."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def train(hex: Any) -> dict[str, Any]:
    """Sample declared and undeclared params, log a short curve, return results."""
    lr = hex.log_uniform_values("lr", 1e-6, 1.0)  # declared: the dispatcher's value comes back
    depth = hex.randint("depth", 1, 100)
    extra = hex.uniform("extra", 0.0, 1.0)  # undeclared: sampled here and recorded
    for step in range(3):
        hex.log(step=step, loss=lr * (3 - step), acc=step / 3)
    hex.set_meta({"seen": {"lr": lr, "depth": depth, "pid": os.getpid()}})
    return {"valid": extra + depth, "lr_seen": lr}


def grid(hex: Any) -> dict[str, Any]:
    a = hex.categorical("a", ["x", "y"])
    b = hex.randint("b", 0, 9)
    return {"combo": f"{a}{b}"}


def flaky(hex: Any) -> dict[str, Any]:
    """Raises when k == 1 (every attempt); completes otherwise."""
    k = hex.randint("k", 0, 2)
    hex.log(step=0, k=k)
    if k == 1:
        raise RuntimeError(f"k=1 is refused (attempt {hex.attempt})")
    return {"k": k}


def gpu(hex: Any) -> dict[str, Any]:
    """Record the devices this trial sees and when it held them."""
    hex.randint("i", 0, 1000)
    t0 = time.time()
    time.sleep(float(os.environ.get("TRIAL_SLEEP", "0.8")))
    return {"cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "t0": t0, "t1": time.time()}


def slow(hex: Any) -> dict[str, Any]:
    """Sleep ``sleep`` seconds, counting its runs in the metadata."""
    seconds = hex.uniform("sleep", 0.0, 1.0)
    hex.set_meta({"ran_at": time.time()})
    time.sleep(seconds)
    return {"slept": seconds}


def suicide(hex: Any) -> None:
    """Kill the trial's own process: an attempt lost, never a result."""
    hex.log(step=0, alive=1.0)
    hex.flush()
    os.kill(os.getpid(), signal.SIGKILL)
