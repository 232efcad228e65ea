"""Sampling distributions, named and parameterised as in W&B Sweeps.

Each distribution validates its arguments in the constructor (``ValueError`` naming the
parameter and the values), samples with a caller-owned :class:`random.Random`, lists its grid
points when it has a finite set of them, and round-trips through a JSON-able dict.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

Number = int | float
_MAX_GRID = 1_000_000  # values one parameter may give a grid
_MAX_EXP = 709  # math.exp overflows above ~709.78


def _plain(v: Any) -> Any:
    """numpy/torch integer and float scalars as Python ints and floats; anything else as is."""
    if isinstance(v, bool | int | float | str | bytes):
        return v
    if not hasattr(v, "__index__") and not hasattr(v, "__float__"):
        return v
    try:
        return int(v.__index__()) if hasattr(v, "__index__") else float(v)
    except (TypeError, ValueError):
        return v


def _num(param: str, field: str, v: Any) -> float:
    v = _plain(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{param}: {field} must be a number (got {v!r})")
    if math.isnan(v):
        raise ValueError(f"{param}: {field} must not be NaN")
    return v


def _step(param: str, q: Any) -> Number:
    """The quantisation step ``q`` of a ``q_*`` distribution: a number > 0."""
    q = _plain(q)
    if _num(param, "q", q) <= 0:
        raise ValueError(f"{param}: q must be > 0 (got {q!r})")
    return q  # type: ignore[no-any-return]


def _quantise(x: float, q: Number) -> Number:
    v = round(x / q) * q
    # an integer step gives integer values (batch sizes, layer widths)
    return int(v) if isinstance(q, int) else _tidy(v)


def _tidy(v: float) -> float:
    """Drop float noise from a multiple of a step: 3 * 0.1 is 0.3, not 0.30000000000000004."""
    return float(f"{v:.15g}")


def _grid_key(v: Any) -> str:
    """Equal grid values share a key (W&B's rule: 3.0 is 3), but True is not 1."""
    def norm(x: Any) -> Any:
        if isinstance(x, float) and x.is_integer():
            return int(x)
        if isinstance(x, list | tuple):
            return [norm(i) for i in x]
        if isinstance(x, dict):
            return {str(k): norm(i) for k, i in x.items()}
        return x

    return json.dumps(norm(v), sort_keys=True, default=repr)


class Distribution:
    """Base class: ``sample(rng)``, ``grid()`` and ``to_dict()``; see the subclasses."""

    kind: ClassVar[str] = ""
    continuous: ClassVar[bool] = True

    def __init__(self, param: str = "parameter") -> None:
        self.param = param

    def sample(self, rng: random.Random) -> Any:
        raise NotImplementedError

    def grid(self) -> list[Any]:
        """The finite list of values a grid search visits; ``ValueError`` if continuous."""
        raise ValueError(
            f"{self.param}: grid search needs a finite set of values, "
            f"but distribution {self.kind} is continuous"
        )

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k != "param" and not k.startswith("_")}
        return {"distribution": self.kind, **d}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Distribution) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


class Constant(Distribution):
    kind = "constant"
    continuous = False

    def __init__(self, value: Any, param: str = "parameter") -> None:
        super().__init__(param)
        self.value = value

    def sample(self, rng: random.Random) -> Any:
        return self.value

    def grid(self) -> list[Any]:
        return [self.value]


class Categorical(Distribution):
    kind = "categorical"
    continuous = False

    def __init__(
        self, values: Sequence[Any], probabilities: Sequence[Number] | None = None,
        param: str = "parameter",
    ) -> None:
        super().__init__(param)
        if isinstance(values, str | bytes | Mapping):
            raise ValueError(f"{param}: choices must be a list (got {values!r})")
        values = list(values)
        if not values:
            raise ValueError(f"{param}: choices must not be empty")
        self.values = values
        self._cum: list[float] | None = None
        self.probabilities: list[float] | None = None
        if probabilities is not None:
            w = [_num(param, "probs", p) for p in probabilities]
            if len(w) != len(values):
                raise ValueError(
                    f"{param}: probs must have one weight per choice "
                    f"(got {len(w)} weights for {len(values)} choices)"
                )
            if any(p < 0 or math.isinf(p) for p in w):
                raise ValueError(f"{param}: probs must be finite and >= 0 (got {list(w)})")
            total = math.fsum(w)
            if total <= 0:
                raise ValueError(f"{param}: probs must not all be zero (got {list(w)})")
            self.probabilities = [p / total for p in w]
            acc, cum = 0.0, []
            for p in self.probabilities:
                acc += p
                cum.append(acc)
            self._cum = cum

    def sample(self, rng: random.Random) -> Any:
        if self._cum is None:
            return self.values[int(rng.random() * len(self.values))]
        u = rng.random() * self._cum[-1]
        for i, c in enumerate(self._cum):
            if u < c:
                return self.values[i]
        return self.values[-1]

    def grid(self) -> list[Any]:
        if self.probabilities is not None:
            raise ValueError(f"{self.param}: grid search does not take probabilities")
        seen: dict[str, Any] = {}
        for v in self.values:  # duplicates collapse, first occurrence kept
            seen.setdefault(_grid_key(v), v)
        return list(seen.values())


class _Bounded(Distribution):
    """A distribution on [min, max]; ``log_bounds`` means the bounds are values that must be > 0."""

    log_bounds: ClassVar[bool] = False
    exponent_bounds: ClassVar[bool] = False
    is_int: ClassVar[bool] = False

    def __init__(self, min: Number, max: Number, param: str = "parameter") -> None:
        super().__init__(param)
        min, max = _plain(min), _plain(max)
        lo, hi = _num(param, "min", min), _num(param, "max", max)
        if self.is_int and not (isinstance(min, int) and isinstance(max, int)):
            raise ValueError(f"{param}: min and max must be integers (got {min!r}, {max!r})")
        if lo > hi:
            raise ValueError(f"{param}: min must be <= max (got min={min!r}, max={max!r})")
        if self.log_bounds and lo <= 0:
            raise ValueError(f"{param}: min must be > 0 for {self.kind} (got {min!r})")
        if math.isinf(lo) or math.isinf(hi):
            raise ValueError(f"{param}: bounds must be finite (got {min!r}, {max!r})")
        if self.exponent_bounds and (abs(lo) > _MAX_EXP or abs(hi) > _MAX_EXP):
            raise ValueError(f"{param}: min and max are exponents for {self.kind} and must be "
                             f"within ±{_MAX_EXP} (got {min!r}, {max!r}); "
                             f"{self.kind}_values takes values")
        self.min, self.max = min, max


class IntUniform(_Bounded):
    kind = "int_uniform"
    continuous = False
    is_int = True

    def sample(self, rng: random.Random) -> int:
        return rng.randint(int(self.min), int(self.max))

    def grid(self) -> list[Any]:
        if int(self.max) - int(self.min) >= _MAX_GRID:
            raise ValueError(f"{self.param}: int_uniform from {self.min} to {self.max} gives more "
                             f"than {_MAX_GRID} grid values")
        return list(range(int(self.min), int(self.max) + 1))


class Uniform(_Bounded):
    kind = "uniform"

    def sample(self, rng: random.Random) -> float:
        return self.min + (self.max - self.min) * rng.random()


class _Quantised(_Bounded):
    def __init__(self, min: Number, max: Number, q: Number = 1, param: str = "parameter") -> None:
        super().__init__(min, max, param)
        self.q = _step(param, q)


class QUniform(_Quantised):
    kind = "q_uniform"
    continuous = False

    def sample(self, rng: random.Random) -> Number:
        return _quantise(self.min + (self.max - self.min) * rng.random(), self.q)

    def grid(self) -> list[Any]:
        # W&B's np.arange(min, max, q): min, min + q, ... strictly below max, not rounded to q;
        # the tolerance keeps a max that float error puts a hair above min + n*q out
        n = math.ceil((self.max - self.min) / self.q - 1e-9)
        if n > _MAX_GRID:
            raise ValueError(f"{self.param}: q={self.q!r} gives {n} grid values (at most "
                             f"{_MAX_GRID}); use a larger q")
        if all(isinstance(x, int) for x in (self.min, self.max, self.q)):
            return list(range(int(self.min), int(self.max), int(self.q)))
        return [_tidy(self.min + i * self.q) for i in range(n)]


class LogUniform(_Bounded):
    """exp(U(min, max)): the bounds are exponents (the seed's and W&B's ``log_uniform``)."""

    kind = "log_uniform"
    exponent_bounds = True

    def sample(self, rng: random.Random) -> float:
        return math.exp(self.min + (self.max - self.min) * rng.random())


class LogUniformValues(_Bounded):
    kind = "log_uniform_values"
    log_bounds = True

    def sample(self, rng: random.Random) -> float:
        a, b = math.log(self.min), math.log(self.max)
        return min(max(math.exp(a + (b - a) * rng.random()), self.min), self.max)


class QLogUniform(_Quantised):
    kind = "q_log_uniform"
    exponent_bounds = True

    def sample(self, rng: random.Random) -> Number:
        return _quantise(math.exp(self.min + (self.max - self.min) * rng.random()), self.q)


class QLogUniformValues(_Quantised):
    kind = "q_log_uniform_values"
    log_bounds = True

    def sample(self, rng: random.Random) -> Number:
        a, b = math.log(self.min), math.log(self.max)
        return _quantise(math.exp(a + (b - a) * rng.random()), self.q)


class InvLogUniform(_Bounded):
    """X with log(1/X) ~ U(min, max): the bounds are exponents."""

    kind = "inv_log_uniform"
    exponent_bounds = True

    def sample(self, rng: random.Random) -> float:
        return math.exp(-(self.min + (self.max - self.min) * rng.random()))


class InvLogUniformValues(_Bounded):
    """X with log(1/X) uniform between log(1/max) and log(1/min): bounds are values of X."""

    kind = "inv_log_uniform_values"
    log_bounds = True

    def sample(self, rng: random.Random) -> float:
        a, b = math.log(1 / self.max), math.log(1 / self.min)
        return 1.0 / math.exp(a + (b - a) * rng.random())


class Normal(Distribution):
    kind = "normal"

    def __init__(self, mu: Number = 0.0, sigma: Number = 1.0, param: str = "parameter") -> None:
        super().__init__(param)
        _num(param, "mu", mu)
        if _num(param, "sigma", sigma) < 0:
            raise ValueError(f"{param}: sigma (std) must be >= 0 (got {sigma!r})")
        self.mu, self.sigma = mu, sigma

    def _draw(self, rng: random.Random) -> float:
        return rng.gauss(self.mu, self.sigma)

    def sample(self, rng: random.Random) -> Any:
        return self._draw(rng)


class QNormal(Normal):
    kind = "q_normal"

    def __init__(
        self, mu: Number = 0.0, sigma: Number = 1.0, q: Number = 1, param: str = "parameter"
    ) -> None:
        super().__init__(mu, sigma, param)
        self.q = _step(param, q)

    def sample(self, rng: random.Random) -> Number:
        return _quantise(self._draw(rng), self.q)


class LogNormal(Normal):
    kind = "log_normal"

    def sample(self, rng: random.Random) -> float:
        return math.exp(self._draw(rng))


class QLogNormal(QNormal):
    kind = "q_log_normal"

    def sample(self, rng: random.Random) -> Number:
        return _quantise(math.exp(self._draw(rng)), self.q)


class Beta(Distribution):
    kind = "beta"

    def __init__(self, a: Number = 1.0, b: Number = 1.0, param: str = "parameter") -> None:
        super().__init__(param)
        for f, v in (("a", a), ("b", b)):
            if _num(param, f, v) <= 0:
                raise ValueError(f"{param}: {f} must be > 0 (got {v!r})")
        self.a, self.b = a, b

    def sample(self, rng: random.Random) -> Any:
        return rng.betavariate(self.a, self.b)


class QBeta(Beta):
    kind = "q_beta"

    def __init__(
        self, a: Number = 1.0, b: Number = 1.0, q: Number = 1, param: str = "parameter"
    ) -> None:
        super().__init__(a, b, param)
        self.q = _step(param, q)

    def sample(self, rng: random.Random) -> Number:
        return _quantise(rng.betavariate(self.a, self.b), self.q)


KINDS: dict[str, type[Distribution]] = {
    c.kind: c
    for c in (
        Constant, Categorical, IntUniform, Uniform, QUniform, LogUniform, LogUniformValues,
        QLogUniform, QLogUniformValues, InvLogUniform, InvLogUniformValues, Normal, QNormal,
        LogNormal, QLogNormal, Beta, QBeta,
    )
}


def from_dict(d: dict[str, Any], param: str = "parameter") -> Distribution:
    """Rebuild a distribution from :meth:`Distribution.to_dict` output."""
    d = dict(d)
    kind = d.pop("distribution")
    if kind not in KINDS:
        raise ValueError(f"{param}: unknown distribution {kind!r}")
    if kind == "categorical" and d.get("probabilities") is None:
        d.pop("probabilities", None)
    return KINDS[kind](**d, param=param)
