"""Trial parameter sets from a spec: ``random`` samples and the ``grid``'s combinations.

Both follow W&B Sweeps: parameters are taken in sorted name order (a grid's last name varies
fastest); a grid expands int_uniform inclusively and q_uniform up to but excluding max, and
collapses duplicate values. A ``bayes`` trial starts with no parameters: the worker that claims
it asks :mod:`hypero.bayes` for them, from the trials before it.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from typing import Any

from hypero.spec import Spec

__all__ = ["grid_size", "plan"]


def plan(spec: Spec, seed: int, count: int | None = None) -> Iterator[dict[str, Any]]:
    """The parameter sets of a sweep's trials, ``{flattened name: value}`` each.

    ``random``: ``count`` (default ``spec.run_cap``) independent samples, the same for the
    same ``seed``. ``grid``: every combination once, the first ``count`` (default
    ``spec.run_cap``, else all) of them; ``seed`` is unused. ``bayes``: ``count`` empty sets,
    filled in by the worker that claims each trial. Raises :class:`SpecError` at once for a
    random or bayes sweep with no count.
    """
    cap = count if count is not None else spec.run_cap
    if cap is not None and cap < 0:
        raise ValueError(f"count must be >= 0 (got {cap})")
    if spec.method == "grid":
        return itertools.islice(_grid(spec), cap)
    if cap is None:
        raise spec.error(f"{spec.method} search needs a number of trials: set run_cap "
                         "(or trials)", key="method")
    if spec.method == "bayes":
        return iter([{} for _ in range(cap)])
    return _random(spec, random.Random(seed), cap)


def grid_size(spec: Spec) -> int:
    """How many combinations the full grid has (before ``run_cap``); :class:`SpecError` if a
    parameter has no finite set of values."""
    return math.prod(len(values) for _, values in _axes(spec))


def _random(spec: Spec, rng: random.Random, count: int) -> Iterator[dict[str, Any]]:
    names = _ordered(spec)
    for _ in range(count):
        yield {name: spec.parameters[name].sample(rng) for name in names}


def _grid(spec: Spec) -> Iterator[dict[str, Any]]:
    axes = _axes(spec)
    names = [name for name, _ in axes]
    for combo in itertools.product(*(values for _, values in axes)):
        yield dict(zip(names, combo, strict=True))


def _ordered(spec: Spec) -> list[str]:
    # W&B sorts the names of each nesting level; "outer.inner" sorts as ("outer", "inner")
    return sorted(spec.parameters, key=lambda name: name.split("."))


def _axes(spec: Spec) -> list[tuple[str, list[Any]]]:
    axes = []
    for name in _ordered(spec):
        try:
            axes.append((name, spec.parameters[name].grid()))
        except ValueError as e:
            raise spec.error(str(e).removeprefix(f"{name}: "), key=f"parameters.{name}") from None
    return axes
