"""Shape tests of every W&B distribution: KS or chi-square against the exact law, fixed seeds.

Each test would fail for the usual wrong formula (linear instead of log, exponent bounds read
as values, an exclusive upper bound, a variance taken for a standard deviation, unnormalised
weights); some assert that power directly.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hypero import distributions as d

N = 20_000
KS_CRIT = 1.95 / math.sqrt(N)  # Kolmogorov-Smirnov at alpha = 0.001


def draw(dist: d.Distribution, n: int = N, seed: int = 7) -> list[Any]:
    rng = random.Random(seed)
    return [dist.sample(rng) for _ in range(n)]


def ks(samples: Sequence[float], cdf: Callable[[float], float]) -> float:
    xs = sorted(samples)
    n = len(xs)
    return max(max(abs((i + 1) / n - cdf(x)), abs(i / n - cdf(x))) for i, x in enumerate(xs))


def chi2_ok(samples: Sequence[Any], pmf: dict[Any, float]) -> bool:
    """Chi-square goodness of fit at alpha = 0.001; cells expecting < 5 are pooled."""
    n = len(samples)
    counts = Counter(samples)
    assert set(counts) <= set(pmf), f"values outside the support: {set(counts) - set(pmf)}"
    cells: list[tuple[float, float]] = []
    pool_o = pool_e = 0.0
    for value, p in sorted(pmf.items(), key=lambda kv: kv[1], reverse=True):
        if n * p >= 5:
            cells.append((counts[value], n * p))
        else:
            pool_o, pool_e = pool_o + counts[value], pool_e + n * p
    if pool_e > 0:
        cells.append((pool_o, pool_e))
    stat = sum((o - e) ** 2 / e for o, e in cells)
    df = len(cells) - 1
    z = 3.09  # Wilson-Hilferty approximation of the chi-square 0.999 quantile
    crit = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return stat < crit


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def beta_cdf(x: float, a: int, b: int) -> float:
    """The regularised incomplete beta function for integer a, b (a binomial tail)."""
    x = min(max(x, 0.0), 1.0)
    m = a + b - 1
    return sum(math.comb(m, j) * x**j * (1 - x) ** (m - j) for j in range(a, m + 1))


def quantised_pmf(cdf: Callable[[float], float], q: float, ks_range: range) -> dict[Any, float]:
    return {k * q: cdf((k + 0.5) * q) - cdf((k - 0.5) * q) for k in ks_range}


# --- continuous ---------------------------------------------------------------------------

def test_uniform_is_flat_between_its_bounds() -> None:
    xs = draw(d.Uniform(2, 5))
    assert all(2 <= x <= 5 for x in xs)
    assert ks(xs, lambda x: (x - 2) / 3) < KS_CRIT
    assert ks(xs, lambda x: (x - 2) / 4) > KS_CRIT  # the test can tell [2, 5] from [2, 6]


def test_log_uniform_takes_exponent_bounds() -> None:
    a, b = math.log(1e-5), math.log(0.1)
    xs = draw(d.LogUniform(a, b))
    assert all(1e-5 * 0.999999 <= x <= 0.1 * 1.000001 for x in xs)
    assert ks(xs, lambda x: (math.log(x) - a) / (b - a)) < KS_CRIT
    assert ks(xs, lambda x: (x - 1e-5) / (0.1 - 1e-5)) > 0.5  # linear would fail badly


def test_log_uniform_values_takes_value_bounds() -> None:
    xs = draw(d.LogUniformValues(1e-5, 0.1))
    a, b = math.log(1e-5), math.log(0.1)
    assert all(1e-5 <= x <= 0.1 for x in xs)
    assert ks(xs, lambda x: (math.log(x) - a) / (b - a)) < KS_CRIT
    # the median is the geometric mean 1e-3, not the arithmetic midpoint 0.05
    assert sorted(xs)[N // 2] == pytest.approx(1e-3, rel=0.05)


def test_log_uniform_with_value_bounds_by_mistake_stays_near_one() -> None:
    xs = draw(d.LogUniform(1e-5, 0.1), n=500)  # exponents: exp(1e-5)..exp(0.1)
    assert all(1.0 <= x <= math.exp(0.1) for x in xs)


def test_inv_log_uniform_is_exp_of_minus_uniform_exponent() -> None:
    xs = draw(d.InvLogUniform(1, 5))  # log(1/X) ~ U(1, 5)
    assert all(math.exp(-5) * 0.999999 <= x <= math.exp(-1) * 1.000001 for x in xs)
    assert ks(xs, lambda x: (5 + math.log(x)) / 4) < KS_CRIT
    assert ks(xs, lambda x: (math.log(x) - 1) / 4) > KS_CRIT  # exp(+U) is not it


def test_inv_log_uniform_values_spans_its_value_bounds() -> None:
    xs = draw(d.InvLogUniformValues(0.01, 1))
    assert all(0.01 * 0.999999 <= x <= 1.000001 for x in xs)
    lo = math.log(0.01)
    assert ks(xs, lambda x: (math.log(x) - lo) / -lo) < KS_CRIT


def test_normal_has_mu_and_sigma_as_standard_deviation() -> None:
    xs = draw(d.Normal(600, 200))
    assert ks(xs, lambda x: phi((x - 600) / 200)) < KS_CRIT
    assert ks(xs, lambda x: phi((x - 600) / math.sqrt(200))) > 0.3  # sigma is not a variance


def test_log_normal_is_exp_of_a_normal() -> None:
    xs = draw(d.LogNormal(1, 0.5))
    assert all(x > 0 for x in xs)
    assert ks(xs, lambda x: phi((math.log(x) - 1) / 0.5)) < KS_CRIT
    assert ks(xs, lambda x: phi((x - 1) / 0.5)) > KS_CRIT


def test_beta_matches_its_cdf_and_moments() -> None:
    xs = draw(d.Beta(2, 5))
    assert all(0 <= x <= 1 for x in xs)
    assert ks(xs, lambda x: beta_cdf(x, 2, 5)) < KS_CRIT
    assert ks(xs, lambda x: beta_cdf(x, 5, 2)) > 0.3  # a and b are not swapped
    mean = sum(xs) / N
    assert mean == pytest.approx(2 / 7, abs=5 * math.sqrt(10 / (49 * 8) / N))


# --- discrete -----------------------------------------------------------------------------

def test_int_uniform_includes_both_bounds() -> None:
    xs = draw(d.IntUniform(1, 7))
    assert set(xs) == set(range(1, 8))
    assert all(type(x) is int for x in xs)
    assert chi2_ok(xs, {k: 1 / 7 for k in range(1, 8)})


def test_q_uniform_rounds_to_multiples_of_q() -> None:
    xs = draw(d.QUniform(0, 1, 0.25))
    # round(U(0, 1) / 0.25) * 0.25: the end points get half a step each
    assert chi2_ok(xs, {0.0: 0.125, 0.25: 0.25, 0.5: 0.25, 0.75: 0.25, 1.0: 0.125})


def test_q_uniform_with_integer_q_gives_integers() -> None:
    xs = draw(d.QUniform(0, 10, 3))
    assert all(type(x) is int for x in xs)
    assert chi2_ok(xs, {0: 0.15, 3: 0.3, 6: 0.3, 9: 0.25})


def test_q_log_uniform_values_is_a_quantised_log_uniform() -> None:
    lo, hi = math.log(16), math.log(256)

    def cdf(x: float) -> float:
        return min(max((math.log(max(x, 1e-300)) - lo) / (hi - lo), 0.0), 1.0)

    xs = draw(d.QLogUniformValues(16, 256, 8))
    assert all(type(x) is int and x % 8 == 0 for x in xs)
    assert chi2_ok(xs, {int(k): p for k, p in quantised_pmf(cdf, 8, range(2, 33)).items()})


def test_q_log_uniform_takes_exponent_bounds() -> None:
    hi = math.log(100)

    def cdf(x: float) -> float:
        return min(max(math.log(max(x, 1e-300)) / hi, 0.0), 1.0)

    xs = draw(d.QLogUniform(0, hi, 1))
    assert min(xs) == 1 and max(xs) == 100
    assert chi2_ok(xs, {int(k): p for k, p in quantised_pmf(cdf, 1, range(1, 101)).items()})


def test_q_normal_is_a_rounded_normal() -> None:
    xs = draw(d.QNormal(10, 3, 2))
    assert all(type(x) is int and x % 2 == 0 for x in xs)
    pmf = quantised_pmf(lambda x: phi((x - 10) / 3), 2, range(-10, 21))
    assert chi2_ok(xs, {int(k): p for k, p in pmf.items()})


def test_q_log_normal_is_a_rounded_log_normal() -> None:
    def cdf(x: float) -> float:
        return phi((math.log(x) - 2) / 0.5) if x > 0 else 0.0

    xs = draw(d.QLogNormal(2, 0.5, 1))
    pmf = quantised_pmf(cdf, 1, range(0, 200))
    assert chi2_ok(xs, {int(k): p for k, p in pmf.items()})


def test_q_beta_gives_tidy_multiples_of_a_float_q() -> None:
    xs = draw(d.QBeta(2, 5, 0.1))
    support = {round(k * 0.1, 10) for k in range(11)}
    assert set(xs) <= support  # 0.3, never 0.30000000000000004
    pmf = quantised_pmf(lambda x: beta_cdf(x, 2, 5), 0.1, range(11))
    assert chi2_ok(xs, {round(k, 10): p for k, p in pmf.items()})


def test_constant_is_always_its_value() -> None:
    assert set(map(str, draw(d.Constant([1, 2]), n=100))) == {"[1, 2]"}


def test_categorical_without_weights_is_uniform() -> None:
    xs = draw(d.Categorical(["a", "b", "c", "d", "e"]))
    assert chi2_ok(xs, dict.fromkeys("abcde", 0.2))


def test_categorical_weights_are_normalised_frequencies() -> None:
    xs = draw(d.Categorical(["a", "b", "c", "d"], [1, 2, 3, 4]))
    assert chi2_ok(xs, {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4})
    assert not chi2_ok(xs, dict.fromkeys("abcd", 0.25))


def test_seed_weights_are_valid_and_normalised() -> None:
    dist = d.Categorical(["a", "b", "c", "d"], [0.001, 0.0001, 0.0001, 10000])
    assert dist.probabilities is not None
    assert math.fsum(dist.probabilities) == pytest.approx(1.0)
    assert dist.probabilities[3] == pytest.approx(1 - 1.2e-7)
    assert set(draw(dist, n=5000)) == {"d"}
    small = d.Categorical(["a", "b", "c", "d"], [0.001, 0.0001, 0.0001, 0])
    assert chi2_ok(draw(small), {"a": 10 / 12, "b": 1 / 12, "c": 1 / 12, "d": 0.0})


def test_same_seed_same_samples() -> None:
    for dist in (d.Normal(), d.LogUniformValues(1, 10), d.Categorical([1, 2, 3], [1, 1, 2])):
        assert draw(dist, 50, seed=3) == draw(dist, 50, seed=3)
        assert draw(dist, 50, seed=3) != draw(dist, 50, seed=4)


# --- grids --------------------------------------------------------------------------------

def test_grids_follow_wandb() -> None:
    assert d.IntUniform(1, 4).grid() == [1, 2, 3, 4]
    assert d.QUniform(0, 1, 0.25).grid() == [0.0, 0.25, 0.5, 0.75]
    assert d.QUniform(0, 10, 3).grid() == [0, 3, 6, 9]
    assert d.QUniform(1, 1.3, 0.1).grid() == [1.0, 1.1, 1.2]  # float error cannot add max
    assert d.QUniform(0.5, 3, 1).grid() == [0.5, 1.5, 2.5]  # np.arange: not rounded to q
    assert d.Constant(5).grid() == [5]
    assert d.Categorical([1, 2, 1, 3.0, 3, True, "1", [1], [1.0]]).grid() == [
        1, 2, 3.0, True, "1", [1]]


@pytest.mark.parametrize("dist", [
    d.Uniform(0, 1), d.LogUniformValues(1, 2), d.Normal(), d.Beta(), d.QNormal(0, 1, 1),
    d.QLogUniformValues(1, 100, 1),
])
def test_grid_refuses_continuous(dist: d.Distribution) -> None:
    with pytest.raises(ValueError, match=r"^parameter: grid search needs a finite set"):
        dist.grid()


def test_grid_refuses_weights_and_huge_grids() -> None:
    with pytest.raises(ValueError, match="lr: grid search does not take probabilities"):
        d.Categorical([1, 2], [1, 1], param="lr").grid()
    with pytest.raises(ValueError, match="x: q=1e-09 gives"):
        d.QUniform(0, 1, 1e-9, param="x").grid()


@pytest.mark.parametrize("kind", sorted(d.KINDS))
def test_to_dict_round_trips(kind: str) -> None:
    examples: dict[str, dict[str, Any]] = {
        "constant": {"value": {"a": [1]}}, "categorical": {"values": [1, "x"]},
        "int_uniform": {"min": 1, "max": 3}, "normal": {"mu": 1, "sigma": 2},
        "q_normal": {"mu": 1, "sigma": 2, "q": 0.5}, "log_normal": {},
        "q_log_normal": {"q": 2}, "beta": {"a": 2, "b": 3}, "q_beta": {"q": 0.1},
    }
    args = examples.get(kind, {"min": 1, "max": 2, **({"q": 1} if kind.startswith("q_") else {})})
    dist = d.KINDS[kind](**args)
    assert d.from_dict(dist.to_dict()) == dist
    weighted = d.Categorical(["a", "b"], [1, 3])
    assert d.from_dict(weighted.to_dict()).to_dict()["probabilities"] == [0.25, 0.75]


# --- every ValueError of DESIGN §3, naming the parameter ----------------------------------

BAD: list[tuple[Callable[[], Any], str]] = [
    (lambda: d.Uniform(5, 1, param="lr"), r"lr: min must be <= max \(got min=5, max=1\)"),
    (lambda: d.IntUniform(7, 1, param="depth"), "depth: min must be <= max"),
    (lambda: d.IntUniform(1, 7.5, param="depth"), "depth: min and max must be integers"),
    (lambda: d.QUniform(2, 1, 1, param="x"), "x: min must be <= max"),
    (lambda: d.QUniform(0, 1, 0, param="x"), r"x: q must be > 0 \(got 0\)"),
    (lambda: d.LogUniform(0, -1, param="lr"), "lr: min must be <= max"),
    (lambda: d.LogUniform(0, 1000, param="lr"), "lr: min and max are exponents"),
    (lambda: d.LogUniformValues(0, 0.1, param="lr"), r"lr: min must be > 0 .*\(got 0\)"),
    (lambda: d.LogUniformValues(-1, 0.1, param="lr"), "lr: min must be > 0"),
    (lambda: d.QLogUniformValues(0, 10, 1, param="bs"), "bs: min must be > 0"),
    (lambda: d.InvLogUniformValues(0, 1, param="w"), "w: min must be > 0"),
    (lambda: d.Uniform(0, math.inf, param="x"), "x: bounds must be finite"),
    (lambda: d.Uniform(math.nan, 1, param="x"), "x: min must not be NaN"),
    (lambda: d.Uniform("0", 1, param="x"), "x: min must be a number"),  # type: ignore[arg-type]
    (lambda: d.Uniform(True, 2, param="x"), "x: min must be a number"),
    (lambda: d.Categorical([], param="decay"), "decay: choices must not be empty"),
    (lambda: d.Categorical("abc", param="decay"), "decay: choices must be a list"),
    (lambda: d.Categorical([1, 2], [1, -1], param="decay"), "decay: probs must be finite and >= 0"),
    (lambda: d.Categorical([1, 2], [0, 0], param="decay"), "decay: probs must not all be zero"),
    (lambda: d.Categorical([1, 2], [1], param="decay"), "decay: probs must have one weight per"),
    (lambda: d.Categorical([1, 2], [1, math.inf], param="decay"), "decay: probs must be finite"),
    (lambda: d.Normal(0, -1, param="sat"), r"sat: sigma \(std\) must be >= 0 \(got -1\)"),
    (lambda: d.LogNormal(0, -1, param="sat"), r"sat: sigma \(std\) must be >= 0"),
    (lambda: d.QNormal(0, -1, 1, param="sat"), r"sat: sigma \(std\) must be >= 0"),
    (lambda: d.QLogNormal(0, 1, -2, param="sat"), "sat: q must be > 0"),
    (lambda: d.Beta(0, 1, param="p"), r"p: a must be > 0 \(got 0\)"),
    (lambda: d.QBeta(1, -1, 0.1, param="p"), "p: b must be > 0"),
    (lambda: d.from_dict({"distribution": "gaussian"}, param="g"), "g: unknown distribution"),
]


@pytest.mark.parametrize(("make", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_arguments_raise_value_error_naming_the_parameter(
    make: Callable[[], Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        make()


def test_equal_bounds_are_allowed_by_the_hex_api() -> None:
    assert draw(d.Uniform(3, 3), n=3) == [3, 3, 3]
    assert draw(d.IntUniform(2, 2), n=3) == [2, 2, 2]
