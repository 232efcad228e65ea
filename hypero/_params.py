"""The ``parameters:`` block of a sweep spec: W&B's distributions, defaults and inference.

Without ``distribution``, W&B infers one from the keys (its JSON schema, wandb/sweeps
``config/schema.json``): ``value`` -> constant, ``values`` -> categorical (with
``probabilities`` -> categorical_w_probabilities), ``min``/``max`` both integers ->
int_uniform, else uniform. Every other distribution must be named. Nested ``parameters:``
blocks flatten to ``outer.inner``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    ValidationError,
)

from hypero import distributions as d
from hypero._yamldoc import Invalid, KeyPath, dotted


def _number(v: Any) -> int | float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"must be a number (got {v!r})")
    if math.isnan(v):
        raise ValueError("must be a number (got NaN)")
    return v


def _positive(v: int | float) -> int | float:
    if v <= 0:
        raise ValueError(f"must be > 0 (got {v!r})")
    return v


def _not_negative(v: int | float) -> int | float:
    if v < 0:
        raise ValueError(f"must be >= 0 (got {v!r})")
    return v


Num = Annotated[int | float, PlainValidator(_number)]
Positive = Annotated[int | float, PlainValidator(_number), AfterValidator(_positive)]
NotNegative = Annotated[int | float, PlainValidator(_number), AfterValidator(_not_negative)]


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Constant(_Param):
    distribution: Literal["constant"] = "constant"
    value: Any


class _Categorical(_Param):
    # W&B spells the weighted form `categorical_w_probabilities`; hypero also takes it under
    # `categorical`, and normalises the weights (W&B wants them to sum to 1).
    distribution: Literal["categorical", "categorical_w_probabilities"] = "categorical"
    values: list[Any] = Field(min_length=1)
    probabilities: list[NotNegative] | None = None


class _IntUniform(_Param):
    distribution: Literal["int_uniform"] = "int_uniform"
    min: StrictInt
    max: StrictInt


class _Bounded(_Param):
    distribution: str = ""
    min: Num
    max: Num


class _QBounded(_Bounded):
    # W&B's schema default is 1.0; an int keeps quantised values integers, which is what a W&B
    # program sees anyway (the W&B backend serialises 3.0 as 3)
    q: Positive = 1


class _Normal(_Param):
    distribution: str = ""
    mu: Num = 0.0
    sigma: NotNegative = 1.0


class _QNormal(_Normal):
    q: Positive = 1


class _Beta(_Param):
    distribution: str = ""
    a: Positive = 1.0
    b: Positive = 1.0


class _QBeta(_Beta):
    q: Positive = 1


MODELS: dict[str, type[_Param]] = {
    "constant": _Constant, "categorical": _Categorical,
    "categorical_w_probabilities": _Categorical, "int_uniform": _IntUniform,
    "uniform": _Bounded, "q_uniform": _QBounded,
    "log_uniform": _Bounded, "log_uniform_values": _Bounded,
    "q_log_uniform": _QBounded, "q_log_uniform_values": _QBounded,
    "inv_log_uniform": _Bounded, "inv_log_uniform_values": _Bounded,
    "normal": _Normal, "q_normal": _QNormal, "log_normal": _Normal, "q_log_normal": _QNormal,
    "beta": _Beta, "q_beta": _QBeta,
}
_KEYS = sorted({k for m in MODELS.values() for k in m.model_fields} | {"parameters"})
_EXPONENT_BOUNDS = {"log_uniform": "log_uniform_values", "q_log_uniform": "q_log_uniform_values",
                    "inv_log_uniform": "inv_log_uniform_values"}


def suggest(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest known word, else ``""``."""
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass
class Parameters:
    """The flattened distributions, the key path each came from, and notes (path, text)."""

    dists: dict[str, d.Distribution] = field(default_factory=dict)
    paths: dict[str, KeyPath] = field(default_factory=dict)
    notes: list[tuple[KeyPath, str]] = field(default_factory=list)


def parse_parameters(block: Any, path: KeyPath = ("parameters",)) -> Parameters:
    """Validate a ``parameters:`` mapping and build its distributions; raises :class:`Invalid`."""
    out = Parameters()
    _parse_block(block, path, "", out)
    return out


def _parse_block(block: Any, path: KeyPath, prefix: str, out: Parameters) -> None:
    if not isinstance(block, dict):
        raise Invalid(path, f"must be a mapping of parameter names (got {block!r})")
    if not block:
        raise Invalid(path, "must name at least one parameter")
    for name, cfg in block.items():
        here = (*path, name)
        if not name:
            raise Invalid(here, "a parameter name must not be empty")
        full = f"{prefix}{name}"
        if isinstance(cfg, dict) and "parameters" in cfg:
            extra = sorted(set(cfg) - {"parameters"})
            if extra:
                raise Invalid((*here, extra[0]), "a nested parameters block takes no other keys")
            _parse_block(cfg["parameters"], (*here, "parameters"), f"{full}.", out)
            continue
        if full in out.dists:
            raise Invalid(here, f"parameter {full!r} is defined twice "
                                f"(also at {dotted(out.paths[full])})")
        out.dists[full] = _parse_one(full, cfg, here, out)
        out.paths[full] = here


def _parse_one(name: str, cfg: Any, path: KeyPath, out: Parameters) -> d.Distribution:
    if not isinstance(cfg, dict):
        raise Invalid(path, f"must be a mapping such as {{value: {cfg!r}}} or {{values: [...]}} "
                            f"(got {cfg!r})")
    for key in cfg:
        if key not in _KEYS:
            raise Invalid((*path, key), f"unknown key{suggest(key, _KEYS)}")
    kind = infer_kind(cfg, path)
    model = MODELS[kind]
    for key in cfg:
        if key not in model.model_fields:
            raise Invalid((*path, key), f"{kind} takes no {key!r} (it takes "
                                        f"{', '.join(model.model_fields)})")
    fields = validate_model(model, cfg, path).model_dump(exclude={"distribution"})
    _check(kind, fields, path, out)
    if kind in _EXPONENT_BOUNDS:
        out.notes.append((path, f"{kind}: min and max are base-e exponents (values "
                                f"exp(min)..exp(max)); {_EXPONENT_BOUNDS[kind]} takes values"))
    if kind == "categorical" and fields["probabilities"] is None:
        fields.pop("probabilities")
    cls = d.Categorical if kind == "categorical_w_probabilities" else d.KINDS[kind]
    try:
        return cls(**fields, param=name)
    except ValueError as e:  # a rule the checks above missed: still one precise line
        raise Invalid(path, str(e).removeprefix(f"{name}: ")) from None


def infer_kind(cfg: dict[str, Any], path: KeyPath) -> str:
    """W&B's choice of distribution for a parameter mapping (see the module docstring)."""
    if "distribution" in cfg:
        kind = cfg["distribution"]
        if not isinstance(kind, str) or kind not in MODELS:
            raise Invalid((*path, "distribution"), f"unknown distribution {kind!r}"
                          f"{suggest(str(kind), MODELS)}")
        return kind
    if "value" in cfg:
        return "constant"
    if "values" in cfg:
        return "categorical_w_probabilities" if "probabilities" in cfg else "categorical"
    if "min" in cfg or "max" in cfg:
        ints = all(isinstance(cfg.get(k), int) and not isinstance(cfg.get(k), bool)
                   for k in ("min", "max"))
        return "int_uniform" if ints else "uniform"
    for keys, kinds in ((("mu", "sigma"), "normal, log_normal, q_normal or q_log_normal"),
                        (("a", "b"), "beta or q_beta"),
                        (("q",), "q_uniform, q_log_uniform_values, q_normal, ...")):
        if any(k in cfg for k in keys):
            raise Invalid(path, f"{'/'.join(keys)} need a distribution: {kinds} "
                                "(W&B infers none from them)")
    raise Invalid(path, "give value, values, min and max, or a distribution")


def _check(kind: str, f: dict[str, Any], path: KeyPath, out: Parameters) -> None:
    """W&B's rules that a single field's type cannot express."""
    if "min" in f and "max" in f:
        if f["min"] >= f["max"]:
            raise Invalid((*path, "min"), f"must be < max (got {f['min']!r} >= {f['max']!r})")
        if kind.endswith("_values") and f["min"] <= 0:
            raise Invalid((*path, "min"), f"must be > 0 for {kind} (got {f['min']!r})")
        if any(math.isinf(f[k]) for k in ("min", "max")):
            raise Invalid((*path, "max"), f"bounds must be finite (got {f['min']!r}, {f['max']!r})")
    weights = f.get("probabilities")
    if weights is not None:
        here = (*path, "probabilities")
        if len(weights) != len(f["values"]):
            raise Invalid(here, f"needs one weight per value (got {len(weights)} weights for "
                                f"{len(f['values'])} values)")
        total = math.fsum(weights)
        if total <= 0 or math.isinf(total):
            raise Invalid(here, f"must not all be zero and must be finite (got {weights!r})")
        if not math.isclose(total, 1.0, rel_tol=1e-6):
            out.notes.append((here, f"weights normalised (they sum to {total:g}; W&B wants 1)"))


def validate_model(model: type[_Param], cfg: dict[str, Any], path: KeyPath) -> _Param:
    """``model.model_validate(cfg)``, its first error raised as :class:`Invalid`."""
    try:
        return model.model_validate(cfg)
    except ValidationError as e:
        err = e.errors()[0]
        raise Invalid((*path, *err["loc"]), pydantic_message(err, model.model_fields)) from None


def pydantic_message(err: Any, known: Iterable[str] = ()) -> str:
    """One of pydantic's error dicts in hypero's words: ``must be ... (got ...)``."""
    kind, msg = err["type"], str(err["msg"])
    if kind == "missing":
        return "required key missing"
    if kind == "extra_forbidden":
        return f"unknown key{suggest(str(err['loc'][-1]), set(known))}"
    msg = msg.removeprefix("Value error, ")
    # "Input should be ...", "List should have at least 1 item after validation, not 0"
    msg = re.sub(r"^(Input|List|String|Dictionary) should ", "must ", msg)
    msg = re.sub(r"( after validation)?, not \d+$", "", msg)
    msg = re.sub(r" or instance of \w+$", "", msg)  # "a valid dictionary or instance of Metric"
    for words, sign in (("greater than or equal to", ">="), ("less than or equal to", "<="),
                        ("greater than", ">"), ("less than", "<")):
        msg = msg.replace(f"must be {words} ", f"must be {sign} ")
    if "(got " not in msg and "input" in err:
        msg += f" (got {err['input']!r})"
    return msg
