"""The worker's side of ``method: bayes``, ``metric.target`` and hyperband early termination.

No central process: the worker that claims a trial of a bayes sweep suggests its parameters
(:func:`assign`), the worker that records a completed trial stops the sweep's queued trials once
``metric.target`` is reached (:func:`after_completed`), and the worker that runs a trial judges
it at each hyperband bracket (:func:`prune`, and :class:`ProgramJudge` for ``program:`` trials,
whose points reach the database through their own connection).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hypero import sweeps
from hypero.errors import HyperoError
from hypero.hyperband import Judge
from hypero.store import Store

if TYPE_CHECKING:
    from hypero.runner import TrialConfig

log = logging.getLogger("hypero.worker")
PROGRAM_POLL = 1.0  # seconds between reads of a program trial's points under hyperband


class TargetReached(HyperoError):
    """Raised when a bayes trial is claimed after the sweep reached ``metric.target``."""


def objective(result: Mapping[str, Any], curve: Sequence[tuple[float, float]],
              name: str) -> float | None:
    """A trial's value of the metric: its result ``name`` if a number, else the last value it
    logged (W&B's summary), else None."""
    value = result.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    valid = [v for _, v in curve if not math.isnan(v)]
    return valid[-1] if valid else None


def reaches(value: float | None, metric: Mapping[str, Any]) -> bool:
    target = metric.get("target")
    if value is None or target is None or math.isnan(value):
        return False
    return bool(value >= target if metric.get("goal") == "maximize" else value <= target)


# -- bayes ----------------------------------------------------------------------------------------


def assign(store: Store, cfg: TrialConfig, row: Mapping[str, Any], attempt: int) -> bool:
    """Write the claimed bayes trial's suggested parameters (once); False if fenced.

    Raises :class:`TargetReached` if a completed trial already reached ``metric.target``, and
    :class:`hypero.ConfigError` if Optuna is missing on this worker.
    """
    from hypero import bayes
    from hypero.distributions import from_dict

    metric = cfg.metric or {}
    name, goal = str(metric.get("name")), str(metric.get("goal", "minimize"))
    dists = {n: from_dict(p, param=n) for n, p in cfg.parameters.items()}
    index = row["trial_index"] if row["trial_index"] is not None else row["id"]
    seed = (cfg.seed * 1_000_003 + int(index)) % 2**31  # distinct per trial of the sweep

    def make(others: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        records = []
        for o in others:
            value = objective(o["result"], o["curve"], name) if o["state"] == "completed" else None
            if o["state"] == "completed" and reaches(value, metric):
                raise TargetReached(f"metric.target reached by trial {o['id']}")
            sug = o["meta"].get("hypero.suggestion")
            if isinstance(sug, dict) and isinstance(sug.get("engine"), dict):
                records.append(bayes.Record(sug["engine"], o["state"], value, o["curve"]))
        s = bayes.suggest(dists, goal, records, cfg.bayes, seed)
        return s.params, {"hypero.suggestion": {**s.inputs, "engine": s.engine}}

    return bool(sweeps.suggest(store, int(row["sweep_id"]), int(row["id"]), attempt, name, make))


# -- metric.target --------------------------------------------------------------------------------


def after_completed(store: Store, cfg: TrialConfig, hex_id: int, sweep_id: int) -> int:
    """Once a completed trial reaches ``metric.target``, no new trial of the sweep starts: its
    queued trials are cancelled. How many were."""
    metric = cfg.metric or {}
    if metric.get("target") is None:
        return 0
    name = str(metric["name"])
    result = store.docs("result", [hex_id]).get(hex_id, {})
    curve = store.metrics([hex_id], [name])[hex_id].get(name, [])
    if not reaches(objective(result, [(float(s), v) for s, v in curve], name), metric):
        return 0
    n = sweeps.stop_new_trials(store, sweep_id, f"metric.target reached by trial {hex_id}")
    if n:
        log.info("hypero: trial %s reached metric.target; %d queued trials cancelled", hex_id, n)
    return n


# -- hyperband ------------------------------------------------------------------------------------


def judge(cfg: TrialConfig) -> Judge | None:
    """A :class:`Judge` for one trial of a sweep with hyperband, else None."""
    if not cfg.early_terminate or not cfg.metric:
        return None
    return Judge(cfg.early_terminate, str(cfg.metric["name"]),
                 str(cfg.metric.get("goal", "minimize")))


def prune(store: Store, j: Judge, row: Mapping[str, Any]) -> dict[str, Any] | None:
    """Judge the trial at the highest bracket it reached: the decision (for ``hypero.pruned``
    meta) if it must stop, else None. One query per bracket; None if the database is away."""
    bracket = j.reached()
    if bracket is None or row["sweep_id"] is None:
        return None
    sweep_id, hex_id = int(row["sweep_id"]), int(row["id"])
    try:
        d = j.judge(bracket, lambda b: sweeps.values_at(store, sweep_id, hex_id, j.metric, b))
    except HyperoError as e:  # keep running: a trial is never stopped on missing data
        log.warning("hypero: trial %s not judged at bracket %s: %s", hex_id, bracket, e)
        return None
    if d is None or not d.stop:
        return None
    return d.as_meta(j.goal)


class ProgramJudge:
    """Hyperband for a ``program:`` trial: reads its points from the database once a second."""

    def __init__(self, store: Store, j: Judge, row: Mapping[str, Any]) -> None:
        self.store, self.j, self.row = store, j, row
        self.due = time.monotonic() + PROGRAM_POLL

    def tick(self) -> dict[str, Any] | None:
        """The pruning decision, when one is due and says stop; else None."""
        if time.monotonic() < self.due:
            return None
        self.due = time.monotonic() + PROGRAM_POLL
        hex_id = int(self.row["id"])
        try:
            got = self.store.metrics([hex_id], [self.j.metric])[hex_id].get(self.j.metric, [])
        except HyperoError:
            return None
        self.j.add([(self.j.metric, float(s), v) for s, v in got])
        return prune(self.store, self.j, self.row)
