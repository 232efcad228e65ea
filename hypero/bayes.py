"""``method: bayes``: Optuna's samplers as a pure suggestion engine fed from hypero's records.

Nothing here is a controller. The worker that claims a trial of a bayes sweep calls
:func:`suggest` with the sweep's other trials (their engine values, state and objective) and
writes what it returns before the trial runs; a lock on the sweep row serialises suggestions,
so that each one sees every earlier one as running (constant liar) and no two are the same.

Every spec distribution maps to an Optuna distribution over an *engine value* and back:
bounds, log scale, integers and steps natively (``int_uniform`` → ``IntDistribution``,
``q_uniform`` → integer multiples of ``q``, ``*log_uniform*`` → ``FloatDistribution(log=True)``),
unbounded or shaped priors (``normal``, ``log_normal``, ``beta``, weighted categoricals) through
their inverse CDF of a uniform engine value, so the prior the engine samples from is exactly the
spec's. Categorical values are chosen by index, so any JSON value (lists, dicts) is allowed.

Optuna is imported only when a suggestion is made (``pip install 'hypero[bayes]'``).
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hypero import distributions as d
from hypero.errors import ConfigError

EXTRA = "pip install 'hypero[bayes]'"
_EPS = 1e-6  # engine values of inverse-CDF priors stay inside (eps, 1 - eps)
DEFAULT_STARTUP = 10


def require(sampler: str = "tpe") -> str | None:
    """Why a bayes sweep cannot run here (the missing extra), or None."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        return f"bayes needs Optuna: {EXTRA}"
    if sampler == "gp" and (importlib.util.find_spec("torch") is None
                            or importlib.util.find_spec("scipy") is None):
        return "bayes sampler gp needs PyTorch and SciPy: pip install 'hypero[bayes-gp]'"
    return None


@dataclass(frozen=True)
class Record:
    """One earlier trial as the engine sees it."""

    engine: Mapping[str, Any]  # engine values by parameter name
    state: str  # running | completed | pruned (others are not given)
    value: float | None = None  # the objective of a completed trial
    curve: Sequence[tuple[float, float]] = ()  # (step, value) of the metric, for pruned ones


@dataclass(frozen=True)
class Suggestion:
    """Parameter values (as the trial sees them), the engine's values, and what it was fed."""

    params: dict[str, Any]
    engine: dict[str, Any]
    inputs: dict[str, Any]


# -- distributions ------------------------------------------------------------------------------


def _inv_beta(a: float, b: float) -> Callable[[float], float]:
    """The inverse CDF of Beta(a, b), by bisection on its regularised incomplete beta."""
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)

    def cf(x: float, a: float, b: float) -> float:  # Lentz's continued fraction
        tiny = 1e-300
        c, dd = 1.0, 1.0 - (a + b) * x / (a + 1)
        dd = 1.0 / (dd if abs(dd) > tiny else tiny)
        h = dd
        for m in range(1, 300):
            for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                        -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
                dd = 1.0 + num * dd
                dd = 1.0 / (dd if abs(dd) > tiny else tiny)
                c = 1.0 + num / c if abs(1.0 + num / c) > tiny else tiny
                h *= dd * c
            if abs(dd * c - 1.0) < 1e-14:
                break
        return h

    def cdf(x: float) -> float:
        if x <= 0.0:
            return 0.0
        if x >= 1.0:
            return 1.0
        front = math.exp(log_norm + a * math.log(x) + b * math.log1p(-x))
        if x < (a + 1) / (a + b + 2):
            return front * cf(x, a, b) / a
        return 1.0 - front * cf(1 - x, b, a) / b

    def inv(u: float) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid) < u else (lo, mid)
        return (lo + hi) / 2

    return inv


Space = dict[str, tuple[Any, Callable[[Any], Any]]]


def engine_space(dists: Mapping[str, d.Distribution]) -> Space:
    """``{name: (Optuna distribution, engine value → parameter value)}`` for every declared
    parameter that is not a constant."""
    from optuna.distributions import CategoricalDistribution as Cat
    from optuna.distributions import FloatDistribution as Float
    from optuna.distributions import IntDistribution as Int

    out: dict[str, tuple[Any, Callable[[Any], Any]]] = {}
    unit = Float(_EPS, 1 - _EPS)
    for name, dist in dists.items():
        q = getattr(dist, "q", None)

        def quantised(f: Callable[[Any], float], q: Any = q) -> Callable[[Any], Any]:
            return lambda x: d._quantise(f(x), q)

        if isinstance(dist, d.Constant):
            continue
        if isinstance(dist, d.Categorical):
            if dist.probabilities is None:
                out[name] = (Cat(list(range(len(dist.values)))), _pick(dist.values))
            else:
                out[name] = (unit, _weighted(dist.values, dist.probabilities))
        elif isinstance(dist, d.IntUniform):
            out[name] = (Int(int(dist.min), int(dist.max)), int)
        elif isinstance(dist, d.QUniform):
            lo, hi = round(dist.min / dist.q), round(dist.max / dist.q)
            out[name] = (Int(lo, hi), _steps(dist.q))
        elif isinstance(dist, d.Uniform):
            out[name] = (Float(float(dist.min), float(dist.max)), float)
        elif isinstance(dist, d.LogUniform | d.QLogUniform):
            space = Float(math.exp(dist.min), math.exp(dist.max), log=True)
            out[name] = (space, quantised(float) if q is not None else float)
        elif isinstance(dist, d.LogUniformValues | d.QLogUniformValues | d.InvLogUniformValues):
            space = Float(float(dist.min), float(dist.max), log=True)
            out[name] = (space, quantised(float) if q is not None else float)
        elif isinstance(dist, d.InvLogUniform):  # 1/X log-uniform <=> X log-uniform
            out[name] = (Float(math.exp(-dist.max), math.exp(-dist.min), log=True), float)
        elif isinstance(dist, d.Normal):
            out[name] = (unit, _normal(dist))
        elif isinstance(dist, d.Beta):
            inv = _inv_beta(float(dist.a), float(dist.b))
            out[name] = (unit, quantised(inv) if q is not None else inv)
        else:  # pragma: no cover (every kind of distributions.KINDS is handled above)
            raise TypeError(f"{name}: no engine mapping for {dist.kind}")
    return out


def _steps(q: Any) -> Callable[[Any], Any]:
    """``k`` multiples of ``q``, as the spec's sampler quantises them (ints for an int q)."""
    return lambda k: d._quantise(int(k) * q, q)


def _pick(values: list[Any]) -> Callable[[Any], Any]:
    return lambda i: values[int(i)]


def _weighted(values: list[Any], weights: list[float]) -> Callable[[Any], Any]:
    """A uniform engine value through the cumulative weights: the spec's prior exactly."""
    cum = [math.fsum(weights[:k + 1]) for k in range(len(values))]
    return lambda u: values[min(bisect.bisect_right(cum, float(u) * cum[-1]), len(values) - 1)]


def _normal(dist: d.Normal) -> Callable[[Any], Any]:
    if dist.sigma == 0:
        f: Callable[[float], float] = lambda u: float(dist.mu)  # noqa: E731
    else:
        f = statistics.NormalDist(dist.mu, dist.sigma).inv_cdf
    if isinstance(dist, d.LogNormal | d.QLogNormal):
        g = f
        f = lambda u: math.exp(g(u))  # noqa: E731
    if isinstance(dist, d.QNormal):  # q_normal and q_log_normal
        q = dist.q
        return lambda u: d._quantise(f(u), q)
    return f


# -- suggestions --------------------------------------------------------------------------------


def _sampler(cfg: Mapping[str, Any], seed: int) -> Any:
    import optuna

    startup = cfg.get("n_startup_trials")
    startup = DEFAULT_STARTUP if startup is None else int(startup)
    if cfg.get("sampler", "tpe") == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                      constant_liar=True)


def suggest(
    dists: Mapping[str, d.Distribution], goal: str, records: Sequence[Record],
    cfg: Mapping[str, Any] | None = None, seed: int = 0,
) -> Suggestion:
    """The next trial's parameters from the earlier trials ``records``.

    ``dists`` are the spec's declared distributions, ``goal`` the metric's (``minimize`` or
    ``maximize``), ``cfg`` the spec's ``bayes:`` block. Running trials are constant liars: TPE
    takes them as running (Optuna's ``constant_liar``); the GP sampler, which ignores running
    trials, gets them as completed with the worst value seen so far.
    Raises :class:`ConfigError` naming the extra when Optuna is missing.
    """
    cfg = dict(cfg or {})
    why = require(str(cfg.get("sampler", "tpe")))
    if why:
        raise ConfigError(why)
    import optuna
    from optuna.trial import TrialState, create_trial

    t0 = time.perf_counter()
    space = engine_space(dists)
    optuna_dists = {n: s for n, (s, _) in space.items()}
    gp = cfg.get("sampler", "tpe") == "gp"
    done = [r.value for r in records if r.state == "completed" and r.value is not None
            and math.isfinite(r.value)]
    worst = (max(done) if goal == "minimize" else min(done)) if done else None
    trials = []
    for r in records:
        params = {n: r.engine[n] for n in optuna_dists if n in r.engine}
        if len(params) != len(optuna_dists):
            continue  # a trial from before the spec changed, or not suggested yet
        try:
            for n, v in params.items():
                if not optuna_dists[n]._contains(optuna_dists[n].to_internal_repr(v)):
                    raise ValueError(n)
        except (ValueError, TypeError):
            continue
        state, value, inter = TrialState.COMPLETE, r.value, None
        if r.state == "completed" and value is not None and not math.isnan(value):
            value = value if math.isfinite(value) else worst
        elif r.state == "pruned":
            state, value = TrialState.PRUNED, None
            inter = {int(s): v for s, v in r.curve if math.isfinite(v)}
        elif r.state == "running" and gp:
            value = worst  # the constant liar, by hand: GP ignores running trials
        elif r.state == "running":
            state, value = TrialState.RUNNING, None
        else:
            continue
        if state == TrialState.COMPLETE and value is None:
            continue
        trials.append(create_trial(state=state, value=value, intermediate_values=inter,
                                   params=params, distributions=optuna_dists))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for multivariate TPE
        direction: Literal["minimize", "maximize"] = (
            "maximize" if goal == "maximize" else "minimize")
        study = optuna.create_study(direction=direction, sampler=_sampler(cfg, seed))
        study.add_trials(trials)
        trial = study.ask(optuna_dists)
    engine = dict(trial.params)
    params = {n: dist.value for n, dist in dists.items() if isinstance(dist, d.Constant)}
    params.update({n: to_value(engine[n]) for n, (_, to_value) in space.items()})
    counts = {s: sum(r.state == s for r in records) for s in ("completed", "running", "pruned")}
    inputs = {
        "sampler": str(cfg.get("sampler", "tpe")), "seed": seed, "used": len(trials),
        **counts, "best": (min(done) if goal == "minimize" else max(done)) if done else None,
        "ms": round((time.perf_counter() - t0) * 1000, 1),
    }
    return Suggestion(params=params, engine=engine, inputs=inputs)
