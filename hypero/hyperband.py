"""``early_terminate: {type: hyperband}``: W&B's rule, decided by the worker that runs a trial.

Brackets are at ``min_iter * eta**k`` (or ``max_iter / eta**k`` for ``k = 1..s``), as integers,
W&B's way. The iteration is the ``step`` of ``hex.log``: a trial reaches bracket ``b`` with its
first point of the metric at a step >= ``b``, and its value there is that point's. When a trial
reaches a bracket, the trials that reached it before (its own value included) give the
threshold ``sorted(values)[int(n / eta)]`` (lower is better; negated for ``maximize``); the trial
is stopped when its value is worse — its value at the bracket with ``strict: true``, else the best
value it logged so far (W&B's conservative default). NaN points are skipped, as W&B does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_MAX_BRACKETS = 64


def brackets(cfg: Mapping[str, Any]) -> list[int]:
    """The bracket iterations of an ``early_terminate`` block, ascending."""
    eta = float(cfg.get("eta", 3))
    if cfg.get("min_iter") is not None:
        out: list[int] = []
        band = float(cfg["min_iter"])
        while len(out) < _MAX_BRACKETS and band < 2**53:
            out.append(int(band))
            band *= eta
        return sorted(set(out))
    band, out = float(cfg["max_iter"]), []
    for _ in range(int(cfg["s"])):
        band /= eta
        if band < 1:
            break
        out.append(int(band))
    return sorted(set(out))


def at(curve: Sequence[tuple[float, float]], bracket: float) -> tuple[float, float] | None:
    """``(value at the bracket, best value up to it)`` of a curve sorted by step (values
    already negated for ``maximize``), or None if the curve has not reached the bracket."""
    best = math.inf
    for step, value in curve:
        if math.isnan(value):
            continue
        best = min(best, value)
        if step >= bracket:
            return value, best
    return None


@dataclass
class Decision:
    bracket: int
    stop: bool
    value: float
    threshold: float
    trials: int

    def as_meta(self, goal: str) -> dict[str, Any]:
        sign = -1.0 if goal == "maximize" else 1.0
        return {"bracket": self.bracket, "value": sign * self.value,
                "threshold": sign * self.threshold, "trials": self.trials}


def decide(own: tuple[float, float], others: Sequence[float], bracket: int, eta: float,
           strict: bool) -> Decision:
    """W&B's rule at one bracket; ``own`` from :func:`at`, ``others`` their values at it (all
    in lower-is-better form)."""
    values = sorted([own[0], *others])
    threshold = values[int(len(values) / eta)]
    mine = own[0] if strict else own[1]
    return Decision(bracket, mine > threshold, mine, threshold, len(values))


@dataclass
class Judge:
    """Follows one trial's curve of the metric and decides at each bracket it reaches."""

    cfg: Mapping[str, Any]
    metric: str
    goal: str = "minimize"
    curve: list[tuple[float, float]] = field(default_factory=list)
    passed: int = 0  # brackets already decided

    def __post_init__(self) -> None:
        self.bands = brackets(self.cfg)

    @property
    def gate(self) -> float:
        """The next bracket this trial has not been judged at (inf when none is left)."""
        return float(self.bands[self.passed]) if self.passed < len(self.bands) else math.inf

    def add(self, points: Sequence[tuple[str, float, float]]) -> None:
        sign = -1.0 if self.goal == "maximize" else 1.0
        mine = [(s, sign * v) for n, s, v in points if n == self.metric]
        if mine:
            self.curve = sorted(dict([*self.curve, *mine]).items())

    def reached(self) -> int | None:
        """The highest bracket the curve reached that is not judged yet (None if none)."""
        last = self.curve[-1][0] if self.curve else -math.inf
        new = [b for b in self.bands[self.passed:] if b <= last]
        if not new:
            return None
        self.passed = self.bands.index(new[-1]) + 1
        return new[-1]

    def judge(self, bracket: int, others: Callable[[int], Sequence[float]]) -> Decision | None:
        """Decide at ``bracket``; ``others(bracket)`` gives the other trials' values there as
        logged (raw, not negated). None if this trial has no valid value there."""
        own = at(self.curve, bracket)
        if own is None:
            return None
        sign = -1.0 if self.goal == "maximize" else 1.0
        theirs = [sign * v for v in others(bracket) if not math.isnan(v)]
        eta = float(self.cfg.get("eta", 3))
        return decide(own, theirs, bracket, eta, bool(self.cfg.get("strict", False)))
