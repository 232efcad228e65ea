"""Sweep specs: a superset of the W&B Sweeps YAML, loaded and validated before anything runs.

Every problem raises :class:`hypero.errors.SpecError` naming the file, the line and the dotted
key (``sweeps/x.yaml:12: parameters.lr.min: must be < max (got 0.1 >= 0.01)``). W&B keys that
hypero does not use (``project``, ``entity``, ``controller``, ...) are accepted and listed in
:attr:`Spec.notes`. See DESIGN §4 for the keys and their defaults.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from hypero import distributions
from hypero._params import Num, Parameters, parse_parameters, pydantic_message, suggest
from hypero._trial import load_trial, resolve_program, resolve_trial
from hypero._yamldoc import Document, Invalid, KeyPath, dotted, parse
from hypero.distributions import Distribution
from hypero.errors import SpecError

__all__ = ["DEFAULT_COMMAND", "Metric", "Spec", "load", "load_trial", "loads", "parse_duration"]

DEFAULT_VERSION = "Initial battery version"
DEFAULT_QUEUE = "hypero"
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]  # W&B agent's default
MACROS = ("env", "interpreter", "program", "args", "args_no_hyphens", "args_no_boolean_flags",
          "args_json", "args_json_file")
_MACRO_RE = re.compile(r"\$\{([^}]*)\}")
# real W&B top-level keys (wandb/sweeps config/schema.json) that hypero has no use for
WANDB_ONLY = ("project", "entity", "controller", "apiVersion", "kind", "job", "image_uri",
              "metrics", "scheduler")

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d*)?)d)?(?:(\d+(?:\.\d*)?)h)?"
                          r"(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?$")


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string such as ``90s``, ``5m``, ``6h``, ``1d``,
    ``1h30m``; ``ValueError`` unless finite and > 0."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        match = _DURATION_RE.match(text)
        if re.fullmatch(r"\d+(\.\d*)?", text):
            seconds = float(text)
        elif text and match:
            parts = zip(match.groups(), "dhms", strict=True)
            seconds = sum(float(n) * _UNITS[u] for n, u in parts if n)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a duration > 0: seconds, or like 90s, 5m, 6h, 1d, 1h30m "
                         f"(got {value!r})")
    return seconds


def _scalar_text(v: Any) -> Any:
    # `version: 2` or `battery: 2024` mean text
    return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def _above_one(v: int | float) -> int | float:
    if v <= 1:
        raise ValueError(f"must be > 1 (got {v!r})")
    return v


Duration = Annotated[float, PlainValidator(parse_duration)]
Text = Annotated[str, BeforeValidator(_scalar_text), Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Metric(_Strict):
    """The metric a sweep optimises (W&B's ``metric``); ``goal`` defaults to minimize."""

    name: str = Field(min_length=1)
    goal: Literal["minimize", "maximize"] = "minimize"
    target: Num | None = None
    impute: Literal["latest", "best", "worst"] | None = None  # W&B bayes only: ignored
    impute_while_running: Literal["latest", "best", "worst", "false"] | StrictBool | None = None


class _Hyperband(_Strict):
    type: Literal["hyperband"]
    min_iter: StrictInt | None = Field(default=None, ge=1)
    max_iter: StrictInt | None = Field(default=None, ge=1)
    s: StrictInt | None = Field(default=None, ge=1)
    eta: Annotated[Num, AfterValidator(_above_one)] = 3
    strict: StrictBool = False  # W&B: absent means the conservative (best-so-far) rule

    @model_validator(mode="after")
    def _bands(self) -> _Hyperband:
        if self.min_iter is None and (self.max_iter is None or self.s is None):
            raise ValueError("hyperband needs min_iter, or max_iter and s")
        return self


class _Resources(_Strict):
    gpus: StrictInt = Field(default=0, ge=0)


class _Bayes(_Strict):
    sampler: Literal["tpe", "gp"] = "tpe"
    n_startup_trials: StrictInt | None = Field(default=None, ge=0)
    seed: StrictInt | None = None


class _Document(_Strict):
    battery: Text | None = None
    version: Text = DEFAULT_VERSION
    name: Text | None = None
    description: str | None = None
    trial: str | None = None
    program: str | None = None
    command: list[Any] | None = None
    method: Literal["random", "grid", "bayes"] = "random"
    run_cap: StrictInt | None = Field(default=None, gt=0)
    trials: StrictInt | None = Field(default=None, gt=0)
    metric: Metric | None = None
    parameters: dict[str, Any] | None = None
    early_terminate: _Hyperband | None = None
    queue: str = Field(default=DEFAULT_QUEUE, min_length=1)
    resources: _Resources = _Resources()
    retries: StrictInt = Field(default=0, ge=0)
    max_attempts: StrictInt | None = Field(default=None, ge=1)
    timeout: Duration | None = None
    lease: Duration = 60.0
    bayes: _Bayes | None = None


_NESTED: dict[str, type[BaseModel]] = {"metric": Metric, "early_terminate": _Hyperband,
                                       "resources": _Resources, "bayes": _Bayes}


@dataclass
class Spec:
    """A validated sweep spec; see DESIGN §4. Build one with :func:`load` or :func:`loads`."""

    path: Path | None
    base_dir: Path
    battery: str
    version: str
    name: str | None
    description: str | None
    trial: str | None
    trial_ref: tuple[str, str] | None
    program: str | None
    command: list[str] | None
    method: str
    run_cap: int | None
    metric: Metric | None
    parameters: dict[str, Distribution]
    early_terminate: dict[str, Any] | None
    queue: str = DEFAULT_QUEUE
    resources: dict[str, Any] = field(default_factory=lambda: {"gpus": 0})
    retries: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    lease: float = 60.0
    bayes: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    _lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _file: str | None = field(default=None, repr=False, compare=False)

    def error(self, message: str, key: str | None = None) -> SpecError:
        """A :class:`SpecError` pointing at ``key`` (dotted, e.g. ``"method"``) in this file."""
        line = None
        if self._lines:
            probe = key or ""
            while probe and probe not in self._lines:  # a missing key: its parent's line
                parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
                probe = parent if parent != probe else ""
            line = self._lines.get(probe)
        file = self._file or (str(self.path) if self.path is not None else None)
        return SpecError(message, file=file, line=line, key=key)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description: the resolved fields and the document as given (``raw``)."""
        return {
            "path": str(self.path) if self.path is not None else None,
            "base_dir": str(self.base_dir), "battery": self.battery, "version": self.version,
            "name": self.name, "description": self.description, "trial": self.trial,
            "trial_ref": list(self.trial_ref) if self.trial_ref else None,
            "program": self.program, "command": self.command, "method": self.method,
            "run_cap": self.run_cap,
            "metric": self.metric.model_dump(exclude_none=True) if self.metric else None,
            "parameters": {n: p.to_dict() for n, p in self.parameters.items()},
            "early_terminate": self.early_terminate, "queue": self.queue,
            "resources": self.resources, "retries": self.retries,
            "max_attempts": self.max_attempts, "timeout": self.timeout, "lease": self.lease,
            "bayes": self.bayes, "notes": self.notes, "raw": self.raw,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Spec:
        """Rebuild a spec from :meth:`to_json` (no file-system checks; a worker's view)."""
        return cls(
            path=Path(d["path"]) if d.get("path") else None, base_dir=Path(d["base_dir"]),
            battery=d["battery"], version=d["version"], name=d.get("name"),
            description=d.get("description"), trial=d.get("trial"),
            trial_ref=(d["trial_ref"][0], d["trial_ref"][1]) if d.get("trial_ref") else None,
            program=d.get("program"), command=d.get("command"), method=d["method"],
            run_cap=d.get("run_cap"),
            metric=Metric.model_validate(d["metric"]) if d.get("metric") else None,
            parameters={n: distributions.from_dict(p, param=n)
                        for n, p in d["parameters"].items()},
            early_terminate=d.get("early_terminate"), queue=d["queue"],
            resources=d["resources"], retries=d["retries"], max_attempts=d["max_attempts"],
            timeout=d.get("timeout"), lease=d["lease"], bayes=d.get("bayes"),
            notes=list(d.get("notes", [])), raw=d.get("raw", {}),
        )


def load(path: str | os.PathLike[str]) -> Spec:
    """Read and validate a sweep spec file; raises :class:`SpecError` (file, line, key)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise SpecError(f"cannot read the spec: {reason}", file=str(path)) from None
    return loads(text, path=path)


def loads(text: str, path: str | os.PathLike[str] | None = None) -> Spec:
    """Validate a sweep spec given as text; ``path`` names it in messages and anchors
    relative ``trial``/``program`` paths (default: the working directory)."""
    doc = parse(text, str(path) if path is not None else "<string>")
    try:
        return _build(doc, Path(path).absolute() if path is not None else None)
    except Invalid as e:
        raise doc.error(e.path, e.message) from None


def _build(doc: Document, path: Path | None) -> Spec:
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else type(doc.data).__name__
        raise Invalid((), f"a sweep spec must be a YAML mapping of keys (got {got})")
    notes: list[str] = []
    m = _validate(doc, _known_keys(doc, notes))
    base_dir = path.parent if path is not None else Path.cwd()
    params = parse_parameters(m.parameters) if m.parameters is not None else Parameters()
    notes += [doc.note(p, text) for p, text in params.notes]
    trial_ref, program, command = _runner(m, base_dir, doc, notes)
    _check_method(m, params)
    run_cap, max_attempts = _counts(m)
    notes += _ignored(m, doc)
    stem = path.stem if path is not None else "sweep"
    return Spec(
        path=path, base_dir=base_dir, battery=m.battery or m.name or stem, version=m.version,
        name=m.name, description=m.description, trial=m.trial, trial_ref=trial_ref,
        program=program, command=command, method=m.method, run_cap=run_cap, metric=m.metric,
        parameters=params.dists,
        early_terminate=m.early_terminate.model_dump(exclude_none=True)
        if m.early_terminate else None,
        queue=m.queue, resources=m.resources.model_dump(), retries=m.retries,
        max_attempts=max_attempts, timeout=m.timeout, lease=m.lease,
        bayes=m.bayes.model_dump(exclude_none=True) if m.bayes else None,
        notes=notes, raw=doc.data, _lines={dotted(p): n for p, n in doc.lines.items()},
        _file=doc.file,
    )


def _ignored(m: _Document, doc: Document) -> list[str]:
    """Notes for accepted keys that change nothing here."""
    notes = [doc.note(("metric", k), "ignored (W&B-only key)")
             for k in ("impute", "impute_while_running")
             if m.metric is not None and k in m.metric.model_fields_set]
    if m.bayes is not None and m.method != "bayes":
        notes.append(doc.note(("bayes",), f"ignored (method is {m.method})"))
    return notes


def _known_keys(doc: Document, notes: list[str]) -> dict[str, Any]:
    """The document without W&B-only keys (noted); unknown keys refused with a suggestion."""
    known = set(_Document.model_fields)
    kept: dict[str, Any] = {}
    for key, value in doc.data.items():
        if key in WANDB_ONLY:
            notes.append(doc.note((key,), "ignored (W&B-only key)"))
        elif key not in known:
            raise Invalid((key,), f"unknown key{suggest(key, known | set(WANDB_ONLY))}")
        else:
            kept[key] = value
    return kept


def _validate(doc: Document, fields: dict[str, Any]) -> _Document:
    try:
        return _Document.model_validate(fields)
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda err: doc.line(tuple(err["loc"])))
        err = errors[0]
        loc: KeyPath = tuple(err["loc"])
        nested = _NESTED.get(str(loc[0])) if len(loc) > 1 else _Document
        known = nested.model_fields if nested is not None else ()
        raise Invalid(loc, pydantic_message(err, known)) from None


def _runner(m: _Document, base_dir: Path, doc: Document,
            notes: list[str]) -> tuple[tuple[str, str] | None, str | None, list[str] | None]:
    """(trial_ref, program, command): exactly one of a trial function or a W&B program."""
    if m.trial is not None and (m.program is not None or m.command is not None):
        other = "program" if m.program is not None else "command"
        raise Invalid((other,), f"give trial (a function) or {other} (a W&B script), not both")
    if m.trial is not None:
        try:
            ref, note = resolve_trial(m.trial, base_dir)
        except ValueError as e:
            raise Invalid(("trial",), str(e)) from None
        if note:
            notes.append(doc.note(("trial",), note))
        return ref, None, None
    if m.program is None and m.command is None:
        raise Invalid(("trial",), "missing: give trial (file.py:function or "
                                  "package.module:function) or program (a script, W&B style)")
    program = None
    if m.program is not None:
        try:
            program = resolve_program(m.program, base_dir)
        except ValueError as e:
            raise Invalid(("program",), str(e)) from None
    command = _command(m.command, program) if m.command is not None else list(DEFAULT_COMMAND)
    return None, program, command


def _command(items: list[Any], program: str | None) -> list[str]:
    """W&B's ``command``: strings (numbers taken as text) with known ``${macro}`` names."""
    out = []
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise Invalid(("command", i), f"must be a string (got {item!r})")
        for name in _MACRO_RE.findall(str(item)):
            if name.startswith("envvar:") and name[7:]:
                continue
            if name not in MACROS:
                hint = suggest(name, MACROS).replace(" '", " ${").replace("'?", "}?")
                raise Invalid(("command", i), f"unknown macro ${{{name}}}{hint}")
            if name == "program" and program is None:
                raise Invalid(("command", i), "uses ${program} but the spec gives no program")
        out.append(str(item))
    return out


def _check_method(m: _Document, params: Parameters) -> None:
    """W&B: bayes and hyperband need a metric; grid takes finite, unweighted parameters."""
    if m.method == "bayes" and m.metric is None:
        raise Invalid(("method",), "bayes needs a metric (metric: {name: ..., goal: ...})")
    if m.method == "bayes":
        from hypero.bayes import require

        missing = require(m.bayes.sampler if m.bayes is not None else "tpe")
        if missing:
            raise Invalid(("bayes", "sampler") if m.bayes is not None and m.bayes.sampler == "gp"
                          else ("method",), missing)
    if m.early_terminate is not None and m.metric is None:
        raise Invalid(("early_terminate",), "hyperband needs a metric "
                                            "(metric: {name: ..., goal: ...})")
    if m.method != "grid":
        return
    for name, dist in params.dists.items():
        where = params.paths[name]
        if isinstance(dist, distributions.Categorical) and dist.probabilities is not None:
            raise Invalid((*where, "probabilities"), "grid search takes no probabilities")
        if dist.continuous:
            raise Invalid(where, f"grid search needs a finite set of values, but {dist.kind} "
                                 "is continuous (use values, int_uniform or q_uniform)")


def _counts(m: _Document) -> tuple[int | None, int]:
    """(run_cap, max_attempts): `trials` is run_cap's alias; attempts cover the retries."""
    if m.run_cap is not None and m.trials is not None:
        raise Invalid(("trials",), "trials is an alias of run_cap: give only one")
    if m.max_attempts is None:
        return m.run_cap or m.trials, max(3, m.retries + 1)
    if m.retries >= m.max_attempts:
        raise Invalid(("max_attempts",), f"must be > retries, since it counts every attempt "
                                         f"(got {m.max_attempts} <= retries {m.retries})")
    return m.run_cap or m.trials, m.max_attempts
